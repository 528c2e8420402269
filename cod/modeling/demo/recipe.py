"""Fitting the demo teacher's head on 2 CPU cores: a logistic-regression probe on a frozen encoder's layers.

One forward pass over the sentences gives every layer's hidden states; each candidate layer is mean-pooled, a
logistic regression is fitted on each (strength and layer picked on validation accuracy), and the encoder is cut
after the chosen layer, so the saved model's last hidden state is exactly what the head was fitted on.
Why a middle-upper layer: all-mpnet-base-v2's last layer is tuned for semantic similarity, and sentiment reads
better a layer or two below (measured on the demo task with 4,000 train sentences: test accuracy 0.842 from layer
12, 0.858 from layer 11, 0.855 from layer 10). Fine-tuning the top two layers from the probe on cached states was
tried too and gave no gain (0.843 after two epochs) at several times the cost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from cod.modeling.heads import mean_pool
from cod.modeling.inference import length_sorted_batches

C_GRID = (0.0003, 0.001, 0.003, 0.01, 0.03)  # logistic-regression strengths tried, picked on validation accuracy


def pooled_layers(
    encoder,
    tokenizer,
    texts: Sequence[str],
    layers: Sequence[int],
    max_length: int,
    tick: Callable[[int], None],
    batch_size: int = 32,
) -> dict[int, np.ndarray]:
    """Mean-pooled hidden states of `texts` at each of `layers` (0 = embeddings): {layer: (n, H)}, input order."""
    out = {layer: np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32) for layer in layers}
    batches = length_sorted_batches(encoder, tokenizer, texts, max_length, batch_size, output_hidden_states=True)
    for idx, output, enc in batches:
        states = output.hidden_states  # L+1 of (b, s, H)
        for layer in layers:
            out[layer][idx] = mean_pool(states[layer], enc["attention_mask"]).float().cpu().numpy()
        tick(len(idx))
    return out


def fit_probe(train_x, train_y, val_x, val_y, num_labels: int, c_grid: Sequence[float] = C_GRID):
    """Logistic regression on standardised features, strength picked on validation; returns (W (L,H), b (L,), C,
    val acc)."""
    from sklearn.linear_model import LogisticRegression

    mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
    z_train, z_val = (train_x - mean) / std, (val_x - mean) / std
    best = None
    for c in c_grid:
        clf = LogisticRegression(C=c, max_iter=3000).fit(z_train, train_y)
        acc = float((clf.predict(z_val) == val_y).mean())
        if best is None or acc > best[0]:
            best = (acc, c, clf)
    acc, c, clf = best
    coef, intercept = clf.coef_, clf.intercept_
    if num_labels == 2 and coef.shape[0] == 1:  # binary: one score s; logits (-s/2, s/2) give the same softmax
        coef = np.concatenate([-coef / 2, coef / 2])
        intercept = np.concatenate([-intercept / 2, intercept / 2])
    # Fold the standardisation into the linear layer: w.(x-mean)/std + b = (w/std).x + (b - w.(mean/std)).
    weight = coef / std  # (L, H)
    bias = intercept - (coef * (mean / std)).sum(axis=1)  # (L,)
    return weight.astype(np.float32), bias.astype(np.float32), c, acc


def select_layer(features: dict[str, dict[int, np.ndarray]], labels: dict[str, np.ndarray], num_labels: int):
    """Fit a probe per candidate layer; return (layer, W, b, C, val acc, {layer: val acc}) of the best on
    validation."""
    best, by_layer = None, {}
    for layer in sorted(features["train"]):
        w, b, c, acc = fit_probe(
            features["train"][layer], labels["train"], features["validation"][layer], labels["validation"], num_labels
        )
        by_layer[layer] = acc
        if best is None or acc > best[4]:  # ties keep the lower layer: a smaller, faster teacher
            best = (layer, w, b, c, acc)
    return (*best, by_layer)


def truncate(encoder, num_layers: int):
    """Keep the encoder's first `num_layers` layers (its last hidden state becomes that layer's output)."""
    layers = encoder.encoder.layer
    if not 1 <= num_layers <= len(layers):
        raise ValueError(f"Cannot keep {num_layers} of {len(layers)} layers.")
    encoder.encoder.layer = layers[:num_layers]
    encoder.config.num_hidden_layers = num_layers
    return encoder


def accuracy(x: np.ndarray, y: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> float:
    """Accuracy of the linear head (weight (L,H), bias (L,)) on features x (n, H)."""
    return float(((x @ weight.T + bias).argmax(axis=1) == y).mean())
