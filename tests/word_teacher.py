"""A tiny real classifier whose verdicts tests can steer: logits = bias + the sum of hand-set per-word weights.

It is a torch module with a WordPiece tokenizer built from the test words, wrapped in the real `Teacher`, so a
"flip" in a test is the teacher's genuine verdict on the candidate text, not an assumption.
"""

from __future__ import annotations

import torch
from transformers import BertTokenizer, PretrainedConfig
from transformers.modeling_outputs import SequenceClassifierOutput

from cod.modeling.scoring import Teacher
from tests.tiny import WORDS

SENTIMENT = {  # (negative, positive) weight of each word
    "good": (-1.0, 1.0),
    "great": (-1.5, 1.5),
    "fun": (-0.5, 0.5),
    "brilliant": (-2.0, 2.0),
    "bad": (2.0, -2.0),
    "awful": (1.5, -1.5),
    "boring": (1.0, -1.0),
    "dull": (1.0, -1.0),
    "terrible": (2.5, -2.5),
    "not": (0.6, -0.6),
}
TOPICS = {  # (sports, politics, tech)
    "game": (2.0, 0.0, 0.0),
    "team": (1.5, 0.5, 0.0),
    "ball": (2.0, 0.0, 0.0),
    "vote": (0.0, 2.0, 0.0),
    "law": (0.0, 2.0, 0.0),
    "computer": (0.0, 0.0, 2.0),
    "phone": (0.0, 0.0, 1.5),
}


class WordWeights(torch.nn.Module):
    """Bag-of-words logits: (batch, seq) token ids -> (batch, num_labels)."""

    def __init__(self, vocab: dict[str, int], label_names, weights: dict[str, tuple[float, ...]], bias=None):
        super().__init__()
        self.config = PretrainedConfig(
            id2label=dict(enumerate(label_names)), label2id={n: i for i, n in enumerate(label_names)}
        )
        table = torch.zeros(len(vocab), len(label_names))  # (vocab, num_labels)
        for word, w in weights.items():
            table[vocab[word]] = torch.tensor(w)
        self.table = torch.nn.Parameter(table, requires_grad=False)
        self.bias = torch.nn.Parameter(torch.tensor(bias or [0.0] * len(label_names)), requires_grad=False)

    def forward(self, input_ids, attention_mask=None, **_):
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        logits = (self.table[input_ids] * mask[..., None]).sum(1) + self.bias  # (batch, num_labels)
        return SequenceClassifierOutput(logits=logits)


def word_teacher(kind: str = "sentiment") -> Teacher:
    """A `Teacher` over `WordWeights`: 'sentiment' (negative/positive) or 'topics' (sports/politics/tech)."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {w: i for i, w in enumerate(specials + sorted(set(WORDS)))}
    tokenizer = BertTokenizer(vocab=vocab)
    if kind == "sentiment":
        model = WordWeights(vocab, ("negative", "positive"), SENTIMENT, bias=[0.1, 0.0])
    else:
        model = WordWeights(vocab, ("sports", "politics", "tech"), TOPICS)
    return Teacher(model, tokenizer, name=f"word-{kind}", batch_size=8)
