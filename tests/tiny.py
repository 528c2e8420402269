"""Tiny models built in code (hidden size 32, a tokenizer made from the test words): offline, seconds to train."""

from __future__ import annotations

from pathlib import Path

WORDS = (
    "the a an this that film movie story plot acting it is was and but not no very so too quite "
    "good great fun lovely brilliant moving best enjoyable charming "
    "bad awful boring dull terrible worst tedious bland mess "
    "sports game team ball politics vote law tech computer phone . , !"
).split()


def make_tiny_classifier(
    path: str | Path,
    label_names: tuple[str, ...] = ("negative", "positive"),
    hidden: int = 32,
    layers: int = 2,
    seed: int = 0,
    words: tuple[str, ...] | list[str] = tuple(WORDS),
) -> Path:
    """Save a randomly initialised BERT sequence classifier and its WordPiece tokenizer to `path`."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {w: i for i, w in enumerate(specials + sorted(set(words)))}
    tokenizer = BertTokenizer(vocab=vocab)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={n: i for i, n in enumerate(label_names)},
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
