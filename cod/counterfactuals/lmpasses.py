"""Exact float32 log-likelihoods of many texts under a causal LM without running shared tokens twice
(`cod.counterfactuals.fluency.FluencyScorer`): a context (class-slor's "A positive text:") is run once and its
key/value cache reused, and an edit of a kept original runs only from the first token it changes, over the original's
cache (`Kept`). Each row of a batch brings its own cached past; the rows' pasts are zero-padded and masked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


def context_past(model, start: int, context: list[int]) -> list:
    """The LM's cache of the start token and `context` but its last token, ((heads, C, dim) keys, values) per
    layer (none without a context)."""
    import torch

    if not context:
        return []
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([[start, *context[:-1]]]), use_cache=True)
    return [(layer.keys[0], layer.values[0]) for layer in out.past_key_values.layers]


class Kept(NamedTuple):
    """An original's float32 pass after one prefix, kept for its edits: its token ids, each token's log-probability
    (T,), and the LM's cache of the start token, the prefix and its tokens, ((heads, 1 + C + T, dim) keys, values)
    per layer."""

    ids: list[int]
    logps: np.ndarray
    past: list


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many first ids `a` and `b` share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def length_batches(items: list, size: int) -> list[list]:
    """`items` in batches of `size`, by the length of what runs (shortest first: less padding)."""
    items = sorted(items, key=lambda item: (item[2] + len(item[3]), len(item[3])))
    return [items[b : b + size] for b in range(0, len(items), size)]


def continue_rows(model, start: int, items: list, keep: bool) -> tuple[list[np.ndarray], list]:
    """One float32 forward over several rows, each (past per layer ((heads, P, dim) keys, values), P, tokens):
    its tokens at positions P, P+1, ... after its own cached P positions. Returns each row's log-probabilities of
    its tokens but the first, (len - 1,), and with `keep` its whole cache (P + len positions) per layer."""
    import torch
    from transformers import DynamicCache

    lengths = [len(tokens) for _, _, tokens in items]
    width, past_len = max(lengths), max(p for _, p, _ in items)
    ids = torch.tensor([tokens + [start] * (width - n) for (_, _, tokens), n in zip(items, lengths)])
    mask = torch.tensor(
        [[1] * p + [0] * (past_len - p) + [1] * n + [0] * (width - n) for (_, p, _), n in zip(items, lengths)]
    )
    positions = torch.tensor([[p + j for j in range(width)] for _, p, _ in items])
    cache = None
    if past_len:  # each row's own past, zero-padded to the longest (masked)
        template = next(past for past, p, _ in items if p)
        layers = []
        for layer, pair in enumerate(template):
            blocks = [t.new_zeros((len(items), t.shape[0], past_len, t.shape[-1])) for t in pair]
            for row, (past, p, _) in enumerate(items):
                for block, t in zip(blocks, past[layer] if p else ()):
                    block[row, :, :p] = t[:, :p]
            layers.append(tuple(blocks))
        cache = DynamicCache(layers, config=model.config)
    with torch.inference_mode():
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=keep or cache is not None,
        )
        logits = out.logits[:, :-1].float()  # (b, width-1, V): row j predicts token j+1
        logp = logits.gather(-1, ids[:, 1:, None])[..., 0] - torch.logsumexp(logits, -1)  # (b, width-1)
    logps = [logp[row, : n - 1].numpy().astype(float) for row, n in enumerate(lengths)]
    pasts: list = [None] * len(items)
    if keep:
        layers = out.past_key_values.layers
        for row, ((_, p, _), n) in enumerate(zip(items, lengths)):
            own = [
                (t[row, :, :p], t[row, :, past_len : past_len + n]) for lay in layers for t in (lay.keys, lay.values)
            ]
            pairs = [torch.cat(parts, 1) for parts in own]  # (heads, p + n, dim) each
            pasts[row] = list(zip(pairs[::2], pairs[1::2]))
    return logps, pasts
