"""The training set of a distillation run: CoD pairs, the pair-aware batch sampler, cached teacher targets.

`build_training_set` turns the seeded k draw (and, with CoD, counterfactuals of its real half) into `TrainItem`s;
`PairBatchSampler` keeps each (original, counterfactual) pair in one mini-batch; `teacher_targets` asks the teacher
once per unique text (logits, and per-layer hidden states for LWD) so every epoch reuses them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from cod.config import DistillConfig
from cod.counterfactuals.base import Counterfactual
from cod.data.readers import Example
from cod.data.splits import cod_real_half
from cod.errors import DistillError
from cod.modeling.inference import length_sorted_batches, softmax

log = logging.getLogger(__name__)


class TrainItem(tuple):
    """(example, is_counterfactual, pair_id): a training example, whether it is a counterfactual, its pair."""

    __slots__ = ()

    def __new__(cls, example: Example, is_counterfactual: bool, pair_id: int):
        return super().__new__(cls, (example, bool(is_counterfactual), int(pair_id)))

    example = property(lambda self: self[0])
    is_counterfactual = property(lambda self: self[1])
    pair_id = property(lambda self: self[2])


@dataclass
class TrainingSet:
    """The items of a run and the counts of what was used, dropped or missing (nothing is dropped silently)."""

    items: list[TrainItem]
    real_examples: int = 0
    counterfactuals_used: int = 0
    counterfactuals_unflipped: int = 0  # teacher did not reach the target (kept or dropped per setting)
    counterfactuals_dropped: int = 0  # unflipped ones left out
    counterfactuals_missing: int = 0  # real examples with no usable counterfactual (none given, failed, empty)
    originals: dict[int, str] = field(default_factory=dict)  # pair_id -> original text (for the JSONL)

    def counts(self) -> dict[str, int]:
        """The counts as a flat dict (for metrics.json)."""
        return {
            "train_examples": len(self.items),
            "real_examples": self.real_examples,
            "counterfactuals_used": self.counterfactuals_used,
            "counterfactuals_unflipped": self.counterfactuals_unflipped,
            "counterfactuals_dropped": self.counterfactuals_dropped,
            "counterfactuals_missing": self.counterfactuals_missing,
            "unique_train_texts": len({it.example.text for it in self.items}),
        }


def cod_real(config: DistillConfig, examples: Sequence[Example]) -> list[Example]:
    """The real examples of a CoD run: the draw's first k/2 (the paper's budget), or all k with `cod_per_example`."""
    return list(examples) if config.cod_per_example else cod_real_half(examples)


def _chosen(usable: Sequence[Counterfactual], m: int) -> list[Counterfactual]:
    """The counterfactuals of one original that train: flipped ones first (distinct texts, up to m), else the first."""
    flipped: dict[str, Counterfactual] = {}
    for c in usable:
        if c.flipped:
            flipped.setdefault(c.counterfactual, c)
    return list(flipped.values())[:m] if flipped else list(usable[:1])


def build_training_set(
    config: DistillConfig,
    examples: Sequence[Example],
    counterfactuals: Sequence[Counterfactual] | None = None,
) -> TrainingSet:
    """The run's training items: k real examples, or with CoD the real half plus one counterfactual each.

    A counterfactual is matched to its original by text; its label is the teacher's argmax on it (`teacher_label`);
    one the teacher did not flip is kept only with `keep_unflipped`. Pair ids tie an original to its counterfactual.
    """
    examples = list(examples)
    if not examples:
        raise DistillError("No training examples: draw a few-shot set (k examples) first.")
    if any(e.text_pair is not None for e in examples):
        raise DistillError("Sentence-pair examples (text_pair) cannot be distilled: use single texts.")
    if not config.cod:
        items = [TrainItem(e, False, i) for i, e in enumerate(examples)]
        return TrainingSet(items=items, real_examples=len(items))

    real = cod_real(config, examples)
    by_text: dict[str, list[Counterfactual]] = {}
    for cf in counterfactuals or []:
        by_text.setdefault(cf.text, []).append(cf)
    ts = TrainingSet(items=[], real_examples=len(real))
    for pair_id, ex in enumerate(real):
        ts.items.append(TrainItem(ex, False, pair_id))
        ts.originals[pair_id] = ex.text
        usable = [
            c for c in by_text.get(ex.text, []) if c.counterfactual and not c.error and c.counterfactual_teacher_probs
        ]
        if not usable:
            ts.counterfactuals_missing += 1
            continue
        for cf in _chosen(usable, max(config.cod_per_example, 1)):
            if not cf.flipped:
                ts.counterfactuals_unflipped += 1
                if not config.keep_unflipped:
                    ts.counterfactuals_dropped += 1
                    continue
            ts.items.append(TrainItem(Example(cf.counterfactual, cf.teacher_label), True, pair_id))
            ts.counterfactuals_used += 1
    if counterfactuals is None or (ts.counterfactuals_used == 0 and ts.counterfactuals_dropped == 0):
        raise DistillError(
            f"CoD needs counterfactuals of the {len(real)} real examples (the first k/2 of the draw), "
            f"but none of the {len(counterfactuals or [])} given match their texts: propose counterfactuals for "
            "exactly these examples (or run without --cod)."
        )
    if ts.counterfactuals_missing:
        log.warning(
            "%d of %d real examples have no usable counterfactual: they train alone.",
            ts.counterfactuals_missing,
            len(real),
        )
    return ts


def refresh_verdicts(
    counterfactuals: Sequence[Counterfactual], logits_by_text: dict[str, np.ndarray]
) -> tuple[list[Counterfactual], int]:
    """Counterfactuals re-scored with this run's teacher logits (records may come from another teacher or run),
    and how many verdicts (teacher argmax) changed. Those without logits are returned unchanged."""
    out, changed = [], 0
    for c in counterfactuals:
        logits = logits_by_text.get(c.counterfactual) if c.counterfactual and not c.error else None
        if logits is None:
            out.append(c)
            continue
        new = replace(c, counterfactual_teacher_probs=[float(x) for x in softmax(logits)], edits=c.edits)
        changed += bool(c.counterfactual_teacher_probs) and new.teacher_label != c.teacher_label
        out.append(new)
    return out, changed


def candidate_texts(config: DistillConfig, examples: Sequence[Example], counterfactuals) -> list[str]:
    """Texts the teacher must score for a run: the real examples used and the counterfactual candidates of the
    real half (to verify their flips), each once."""
    real = cod_real(config, examples) if config.cod else list(examples)
    texts = [e.text for e in real]
    if config.cod:
        wanted = set(texts)
        texts += [
            c.counterfactual for c in counterfactuals or [] if c.text in wanted and c.counterfactual and not c.error
        ]
    return list(dict.fromkeys(texts))


class PairBatchSampler:
    """Shuffled mini-batches that never split a pair: whole groups (same pair id) are packed into batches.

    The order of an epoch depends only on (seed, epoch), so a resumed run sees the same batches.
    """

    def __init__(self, pair_ids: Sequence[int], batch_size: int, seed: int):
        groups: dict[int, list[int]] = {}
        for index, pid in enumerate(pair_ids):
            groups.setdefault(pid, []).append(index)
        too_big = [g for g in groups.values() if len(g) > batch_size]
        if too_big:
            raise DistillError(
                f"A pair of {len(too_big[0])} examples cannot fit a batch of {batch_size}: raise batch_size."
            )
        self.groups = list(groups.values())
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration yields."""
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        """This epoch's batches (lists of item indices)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        batches, current = [], []
        for g in rng.permutation(len(self.groups)):
            group = self.groups[g]
            if len(current) + len(group) > self.batch_size:
                batches.append(current)
                current = []
            current = current + list(group)
        if current:
            batches.append(current)
        return batches

    def __iter__(self):
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


# ----------------------------------------------------------------------------- teacher targets


@dataclass
class TeacherTargets:
    """Teacher outputs per unique training text, computed once: logits (L,), and per mapped layer a state."""

    logits: dict[str, np.ndarray]
    states: dict[str, list[torch.Tensor]] | None = None  # text -> [(H,) pooled | (tokens, H)] per mapped layer
    requested: int = 0  # texts asked of the teacher (one per unique text)
    new_forwards: int = 0  # of those, texts the teacher actually ran (the rest were in its cache)


def uniform_layer_map(student_layers: int, teacher_layers: int) -> list[int]:
    """Teacher layer (1-based index into hidden_states) for each student layer 1..n: uniform spacing."""
    return [max(1, round(i * teacher_layers / student_layers)) for i in range(1, student_layers + 1)]


def tokenizers_match(teacher_tokenizer, student_tokenizer, texts: Sequence[str], max_length: int) -> bool:
    """True when both tokenizers give the same ids for every text (token-level LWD is then meaningful)."""
    if type(teacher_tokenizer).__name__ != type(student_tokenizer).__name__:
        return False
    a = teacher_tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    b = student_tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    return a == b


@torch.inference_mode()
def teacher_targets(
    teacher,
    texts: Sequence[str],
    layers: list[int] | None = None,
    token_level: bool = False,
    max_length: int = 128,
) -> TeacherTargets:
    """Teacher logits for each unique text; with `layers`, also its hidden states there, from the same forward pass."""
    unique = list(dict.fromkeys(texts))
    if layers is None:
        before = teacher.forward_passes
        logits = teacher.logits(unique)  # (n, L); cached inside the teacher
        return TeacherTargets(dict(zip(unique, logits)), None, len(unique), teacher.forward_passes - before)
    # LWD: one pass with hidden states; the Teacher caches logits only, so this runs the model directly.
    out_logits, out_states = {}, {}
    batches = length_sorted_batches(
        teacher.model,
        teacher.tokenizer,
        unique,
        max_length,
        getattr(teacher, "batch_size", 32),
        output_hidden_states=True,
    )
    for idx, out, enc in batches:
        if out.hidden_states is None:
            raise DistillError(f"The teacher {teacher.name!r} returns no hidden states: use method kd instead of lwd.")
        mask = enc["attention_mask"]  # (batch, tokens)
        for j, text in enumerate(unique[i] for i in idx):
            real = mask[j].bool()  # (tokens,): real tokens, whichever side the tokenizer pads
            out_logits[text] = out.logits[j].float().cpu().numpy()
            per_layer = []
            for layer in layers:
                h = out.hidden_states[layer][j][real].float()  # (n_tok, H)
                # Token-level keeps every token (padding is added per batch); pooled keeps the mean, (H,).
                per_layer.append(h.cpu() if token_level else h.mean(dim=0).cpu())
            out_states[text] = per_layer
    return TeacherTargets(out_logits, out_states, len(unique), len(unique))


def make_collate(tokenizer, encodings, labels, weights, logits, states, token_level: bool):
    """The collate function: pads pre-tokenized items and stacks labels, CE weights and teacher targets."""

    def collate(indices: list[int]) -> dict[str, Any]:
        feats = [{k: v[i] for k, v in encodings.items()} for i in indices]
        batch = dict(tokenizer.pad(feats, return_tensors="pt"))
        batch["labels"] = torch.tensor([labels[i] for i in indices])
        batch["ce_weights"] = torch.tensor([weights[i] for i in indices], dtype=torch.float32)
        if logits is not None:
            batch["teacher_logits"] = torch.from_numpy(np.stack([logits[i] for i in indices]))  # (batch, L)
        if states is not None:
            per_layer = []
            for layer in range(len(states[indices[0]])):
                rows = [states[i][layer] for i in indices]
                if token_level:  # (n_tok, H) each -> (batch, tokens, H), zero-padded to the student's length
                    width = batch["input_ids"].shape[1]
                    padded = torch.zeros(len(rows), width, rows[0].shape[-1])
                    for j, r in enumerate(rows):
                        padded[j, : min(width, r.shape[0])] = r[:width]
                    per_layer.append(padded)
                else:
                    per_layer.append(torch.stack(rows))  # (batch, H)
            batch["teacher_states"] = per_layer
            if token_level:  # token-level states compare real tokens only
                batch["state_mask"] = batch["attention_mask"]
        return batch

    return collate
