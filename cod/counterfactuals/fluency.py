"""Fluency: how naturally a counterfactual reads next to its original, under a small causal LM, offline.

The default score (`kind="class-slor"`) is SLOR (below) read after a short prefix naming a class of the task,
`CLASS_PREFIX` ("A negative text:"), taking each text's best class: a counterfactual is meant to change the class,
and plain SLOR also charges it for that (the new sentiment word is less expected after the original's context: "the
film was good ." -> "the film was bad ." is -0.11 by SLOR, +0.29 by class-SLOR). Without the task's label names, or
with more than `CLASS_PREFIXES_AT_MOST` classes, it is plain SLOR. A counterfactual counts as fluent when its change
is at least `FLUENT_AT` of its kind: -0.1 nats/token for class-slor, a tolerance chosen and checked against pairs
labelled by eye (`bench/bench_fluency_agreement.py`: 117 of 150 agree, plain SLOR at 0: 103; on 50 fresh pairs 37
and 32), so "fluent" means "at most 0.1 nats/token less fluent than the original". The offline proposer estimates
class-slor cheaply: `EditFluency` reads the original once after the target class's prefix, so each edit's estimate
is its SLOR after that prefix (a lower bound of its best over the classes) against the original's class-slor (scored
exactly, one batch per class for many originals); it stores class-slor. `add_fluency` with the task's label names
rescores a record marked otherwise (the review table, `bench_lexical.py`).

A text's score is its SLOR (syntactic log-odds ratio; Lau et al. 2017, Kann et al. 2018): its log-likelihood under
the LM minus its log-likelihood under a unigram model, per token, `(log P_LM(s) - log P_uni(s)) / |s|`. A
counterfactual's fluency is its score minus its original's, in nats per token: 0 means "as fluent as the original",
"Does not an impressive job" or "gets entertained down" fall below it.

Why SLOR rather than the mean log-likelihood (`kind="logprob"`, the first version's score, kept for comparison): the
mean log-likelihood also measures how common the new words are, so swapping a word for a rarer one that fits as well
lowers it and inserting a frequent word raises it. Subtracting each token's unigram log-probability leaves what the
context adds (a pointwise mutual information), so a rare word that fits reads as well as a common one and a frequent
word that does not fit still costs: "as an interesting and entertaining experiment" -> "as an uninteresting and
entertaining experiment" is +0.29 by the mean log-likelihood and +0.76 by SLOR; "as an not interesting" is -2.5 and
-2.7. The unigram model is the LM's own next-token distribution averaged over every position of a reference corpus
(300 demo training sentences, not the test ones): smooth over the LM's whole vocabulary and in its tokens. It is
computed once per LM (seconds) and cached under `$COD_HOME/models/fluency-unigram/`.

Every word is written with a leading space after the LM's BOS token. Words are whitespace-separated (as in
`edits.py`) and tokenised one by one, so a text's token ids are the concatenation of its words' ids: a candidate edit
re-tokenises only the words it changes, and a window of words is a slice of ids. (Byte-level BPE pre-tokenises at
spaces, so this equals tokenising the joined text.) The default LM is the embedded SmolLM2-135M-Instruct
(`demo-llm`).
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from cod.counterfactuals.lmpasses import Kept, common_prefix, context_past, continue_rows, length_batches

if TYPE_CHECKING:  # pragma: no cover
    from cod.counterfactuals.base import Counterfactual

DEFAULT_FLUENCY_MODEL = "demo-llm"
# Tokens of originals whose float32 key/value cache the scorer keeps for their edits (`FluencyScorer.keep`): about
# 46 KB a token for SmolLM2-135M, so 190 MB at most; the proposer keeps three batches of 16 originals, one per class.
KEPT_TOKENS = 4096
NO_LESS_FLUENT = 0.0  # a SLOR change >= this reads no worse than the original (the proposer's search compares so)
# The scores (see the module docstring): SLOR after the best-fitting class prefix (the default), plain SLOR, and the
# plain mean log-likelihood (the first version's).
FLUENCY_KINDS = ("class-slor", "slor", "logprob")
DEFAULT_FLUENCY_KIND = "class-slor"
CLASS_PREFIX = "A {name} text:"  # context before a text under "class-slor", one per class; its tokens are not scored
# Label names are a visitor's data: class-slor reads at most this many words of each name, and with more classes than
# CLASS_PREFIXES_AT_MOST (one LM pass per class) it is plain SLOR.
CLASS_NAME_WORDS = 6
CLASS_PREFIXES_AT_MOST = 8
# "Fluent" per kind: fluency >= this. class-slor's tolerance of 0.1 nats/token was chosen on 150 pairs labelled by
# eye and checked on 50 more labelled before scoring (bench/bench_fluency_agreement.py); the others compare at 0.
FLUENT_AT = {"class-slor": -0.1, "slor": NO_LESS_FLUENT, "logprob": NO_LESS_FLUENT}
REFERENCE_SENTENCES = 300  # demo training sentences the unigram model is averaged over
# Written to `Counterfactual.extra["fluency_score"]` beside every score: a record scored by the first version (mean
# log-likelihood, no mark) is scored again rather than shown under the new score's name.
FLUENCY_SCORE = DEFAULT_FLUENCY_KIND


class FluencyScorer:
    """SLOR (or mean log-likelihood) per token of word sequences under a causal LM, batched and cached per text.

    `unigram`: (V,) unigram log-probabilities of the LM's tokens; None: computed on first use from the reference
    corpus (`reference_unigram`)."""

    def __init__(self, model, tokenizer, name: str = "", batch_size: int = 32, max_tokens: int = 128, unigram=None):
        import torch

        self.model = model.eval()
        # The estimates `EditFluency` makes for the search (`prefix_state`, `continuation_sums`): "auto" runs them
        # through a bfloat16 copy on CPUs with AMX/AVX512-BF16, "bfloat16" on any CPU, "float32" through the LM
        # itself. Scores (`scores`, `fluency`) always use the LM itself.
        self.estimate_precision = "auto"
        self._estimator = None
        self.tokenizer = tokenizer
        self.name = name or getattr(model.config, "_name_or_path", "causal-lm")
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        self._start = int(start if start is not None else 0)
        self._word_ids: dict[str, list[int]] = {}
        # text (or (prefix, text)) -> (LM log-likelihood, unigram's, tokens)
        self._totals: dict[str | tuple[str, str], tuple[float, float, float]] = {}
        # context ids -> the LM's key/value cache of the start token and the context but its last token (class-slor's
        # prefixes are the same for every text: run once); `_total_key` -> `Kept` of an original `totals` was asked
        # to keep, whose edits are then scored from the first token they change (`totals(..., like=)`)
        self._contexts: dict[tuple[int, ...], list] = {}
        self._kept: OrderedDict = OrderedDict()
        self._kept_tokens = 0  # their tokens, counted as they come and go (no walk over a dict another thread changes)
        self._kept_lock = threading.Lock()  # the app scores fluency in its handlers while a proposer runs
        self._unigram = None if unigram is None else np.asarray(unigram, dtype=float)
        self._torch = torch

    def __repr__(self) -> str:
        return f"FluencyScorer(name={self.name!r})"

    @property
    def unigram(self) -> np.ndarray:
        """(V,) unigram log-probability of each token id (computed and cached on first use)."""
        if self._unigram is None:
            self._unigram = reference_unigram(self)
        return self._unigram

    def word_ids(self, words: Sequence[str]) -> list[list[int]]:
        """Token ids of each word written with a leading space (cached per word)."""
        new = [w for w in dict.fromkeys(words) if w not in self._word_ids]
        if new:
            from cod.modeling.inference import tokenize  # one call at a time: the lexical search's threads share it

            pieces = tokenize(self.tokenizer, [" " + w for w in new], add_special_tokens=False)["input_ids"]
            for w, ids in zip(new, pieces):
                self._word_ids[w] = list(ids)
        return [self._word_ids[w] for w in words]

    def ids(self, words: Sequence[str]) -> list[int]:
        """A word sequence's token ids (without the start token)."""
        return [i for ids in self.word_ids(words) for i in ids]

    def _batches(self, sequences: Sequence[Sequence[int]], context: Sequence[int] = ()):
        """Yield (indices, ids (b, w), mask (b, w), log-probabilities (b, w-1, V)) over the non-empty sequences, each
        after the start token and `context` and cut at `max_tokens`; shortest first (less padding). The mask is 1 on
        the start token and the sequence's tokens (not on the context's, which are read but not scored)."""
        torch = self._torch
        todo = sorted((i for i, s in enumerate(sequences) if s), key=lambda i: len(sequences[i]))
        context = list(context)
        for b in range(0, len(todo), self.batch_size):
            batch = todo[b : b + self.batch_size]
            rows = [[self._start, *context, *list(sequences[i])[: self.max_tokens]] for i in batch]
            width = max(map(len, rows))
            ids = torch.tensor([r + [self._start] * (width - len(r)) for r in rows])  # (batch, width)
            attend = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
            with torch.no_grad():
                logits = self.model(input_ids=ids, attention_mask=attend).logits[:, :-1].float()  # (b, width-1, V)
            mask = attend.clone()
            mask[:, 1 : 1 + len(context)] = 0
            yield batch, ids, mask, torch.log_softmax(logits, -1)

    def logprob_sums(
        self, sequences: Sequence[Sequence[int]], context: Sequence[int] = ()
    ) -> tuple[np.ndarray, np.ndarray]:
        """(summed log-likelihood, token count) of each id sequence after the start token and `context` (not
        counted), each (n,); 0 when empty."""
        sums, counts, _ = self._exact(sequences, context)
        return sums, counts

    def _exact(self, sequences, context=(), origins=None, keep: bool = False):
        """`logprob_sums` (sums (n,), counts (n,)) and, with `keep`, each sequence's `Kept` (None when empty). The
        start token and `context` are run once (`_context_past`); a sequence with an `origins[k]` (a `Kept` after the
        same context) runs only from the first token where it differs from it, over its cache. Float32, the LM as
        loaded; equal to one forward over the whole row up to float rounding."""
        context = list(context)
        sums, counts = np.zeros(len(sequences)), np.zeros(len(sequences))
        kept: list[Kept | None] = [None] * len(sequences)
        past = self._context_past(context)  # BOS and the context but its last token, run once
        last = ([self._start] + context)[-1]
        items = []  # (sequence index, past per layer, positions in it, tokens from that position, logps known before)
        for k, seq in enumerate(sequences):
            seq = list(seq)[: self.max_tokens]
            if not seq:
                continue
            origin = origins[k] if origins is not None else None
            if origin is None:
                items.append((k, past, len(context), [last, *seq], np.zeros(0)))
                continue
            same = common_prefix(origin.ids, seq)
            if same == len(seq) == len(origin.ids):  # the original itself
                sums[k], counts[k] = float(origin.logps.sum()), len(seq)
                continue
            at = len(context) + same  # cached positions: BOS, context, the shared tokens but the last
            tokens = [([last] + seq)[same], *seq[same:]]
            items.append(
                (k, [(key[:, :at], value[:, :at]) for key, value in origin.past], at, tokens, origin.logps[:same])
            )
        for batch in length_batches(items, self.batch_size):
            logps, pasts = self._continue([(p, n, t) for _, p, n, t, _ in batch], keep)
            for (k, _, _, _, before), lp, row_past in zip(batch, logps, pasts):
                full = np.concatenate([before, lp])
                sums[k], counts[k] = float(full.sum()), len(full)
                if keep and origins is None:
                    kept[k] = Kept(list(sequences[k])[: self.max_tokens], full, row_past)
        return sums, counts, kept

    def _context_past(self, context: list[int]) -> list:
        """`lmpasses.context_past` of `context`, run once per context."""
        key = tuple(context)
        if key not in self._contexts:
            self._contexts[key] = context_past(self.model, self._start, context)
            if len(self._contexts) > 4 * CLASS_PREFIXES_AT_MOST:  # a visitor's label names change: start again
                self._contexts = {key: self._contexts[key]}
        return self._contexts[key]

    def _continue(self, items: list, keep: bool) -> tuple[list[np.ndarray], list]:
        """`lmpasses.continue_rows` through the LM as loaded (float32)."""
        return continue_rows(self.model, self._start, items, keep)

    @property
    def estimator(self):
        """The model `prefix_state` and `continuation_sums` run through (see `estimate_precision`)."""
        from cod.modeling.precision import bfloat16_copy, cpu_has_fast_bfloat16

        weights = next(self.model.parameters())
        if (
            self.estimate_precision == "float32"
            or weights.dtype != self._torch.float32
            or weights.device.type != "cpu"
        ):
            return self.model
        if self.estimate_precision == "auto" and not cpu_has_fast_bfloat16():
            return self.model
        if self._estimator is None:
            self._estimator = bfloat16_copy(self.model)
        return self._estimator

    def prefix_state(self, sequence: Sequence[int], context: Sequence[int] = ()):
        """One forward pass over the start token, `context` and `sequence` (cut at `max_tokens`): ((len + 1, V)
        next-token log-probabilities, row k being the LM's view of the slot before token k of context + sequence; the
        LM's key/value cache)."""
        torch = self._torch
        ids = torch.tensor([[self._start, *context, *list(sequence)[: self.max_tokens]]])
        with torch.no_grad():
            out = self.estimator(input_ids=ids, use_cache=True)
        return torch.log_softmax(out.logits[0].float(), -1).numpy(), out.past_key_values

    def continuation_sums(self, state, prefix: int | Sequence[int], sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """Summed log-likelihood of each id sequence written after the first `prefix` tokens of `state`'s sequence
        (`prefix_state`; one prefix for all, or one per sequence), (n,): no prefix is run again, only the new tokens
        are, in one batch whatever their prefixes (each row masks the cached positions past its own prefix and takes
        its own positions)."""
        from transformers import DynamicCache

        torch = self._torch
        rows, cache = state
        prefixes = [prefix] * len(sequences) if isinstance(prefix, int) else [int(p) for p in prefix]
        sums = np.zeros(len(sequences))
        for k, seq in enumerate(sequences):  # the first new token is predicted from its prefix's last row
            sums[k] = rows[prefixes[k], seq[0]] if seq else 0.0
        todo = [k for k, seq in enumerate(sequences) if len(seq) > 1]
        for b in range(0, len(todo), self.batch_size):
            batch = todo[b : b + self.batch_size]
            lengths = [len(sequences[k]) for k in batch]
            width, past_len = max(lengths), 1 + max(prefixes[k] for k in batch)
            ids = torch.tensor([list(sequences[k]) + [self._start] * (width - n) for k, n in zip(batch, lengths)])
            mask = torch.tensor(  # (batch, past_len + width): a row's cached prefix, then its new tokens
                [
                    [1] * (1 + prefixes[k]) + [0] * (past_len - 1 - prefixes[k]) + [1] * n + [0] * (width - n)
                    for k, n in zip(batch, lengths)
                ]
            )
            positions = torch.tensor([[1 + prefixes[k] + j for j in range(width)] for k in batch])
            past = DynamicCache(  # the cached keys and values, (batch, heads, past_len, head_dim) per layer
                [
                    tuple(
                        t[:, :, :past_len].expand(len(batch), -1, -1, -1).contiguous() for t in (lay.keys, lay.values)
                    )
                    for lay in cache.layers
                ],
                config=self.model.config,
            )
            with torch.inference_mode():
                logits = self.estimator(
                    input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=past
                ).logits[:, :-1]
            logp = torch.log_softmax(logits.float(), -1).gather(-1, ids[:, 1:, None])[..., 0]  # (batch, width-1)
            valid = torch.arange(width - 1)[None, :] < torch.tensor(lengths)[:, None] - 1
            sums[batch] += (logp * valid).sum(1).numpy()
        return sums

    def estimate_unigram(self, texts: Sequence[str]) -> np.ndarray:
        """(V,) log of the LM's next-token distribution averaged over every position of `texts`: a unigram model
        in the LM's tokens that gives every token some mass."""
        torch = self._torch
        total, positions = None, 0
        for _, _, mask, logp in self._batches([self.ids(t.split()) for t in texts]):
            valid = mask[:, 1:].float()[..., None]  # (batch, width-1, 1)
            part = (logp.exp() * valid).sum((0, 1)).double()  # (V,)
            total = part if total is None else total + part
            positions += int(valid.sum())
        if total is None:
            raise ValueError("estimate_unigram needs at least one non-empty text.")
        return torch.log(total / positions).numpy()

    def unigram_sums(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """Summed unigram log-probability of each id sequence (cut at `max_tokens` like the LM's), (n,)."""
        unigram = self.unigram
        return np.array([float(unigram[list(s)[: self.max_tokens]].sum()) for s in sequences])

    def totals(
        self, texts: Sequence[str], prefix: str = "", keep: bool = False, like: Sequence[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(LM log-likelihood, unigram log-likelihood, token count) of each text after `prefix` (read, not counted),
        each (n,), cached per text and prefix. `keep`: the LM's cache of each new text is kept (`KEPT_TOKENS` at most,
        the oldest go first) for `like`: texts[k] edited from `like[k]` (a kept one) runs only from its first changed
        token."""
        keys = [_total_key(t, prefix) for t in texts]
        new = {key: t for key, t in zip(keys, texts) if key not in self._totals}  # key -> text, each once
        if new:
            sequences = [self.ids(t.split()) for t in new.values()]
            origins = None
            if like is not None:
                by_key = {key: _total_key(o, prefix) for key, o in zip(keys, like)}
                with self._kept_lock:
                    origins = [self._kept.get(by_key[key]) for key in new]
            sums, counts, kept = self._exact(sequences, self.ids(prefix.split()), origins, keep)
            self._totals.update(zip(new, zip(sums.tolist(), self.unigram_sums(sequences).tolist(), counts.tolist())))
            for key, state in zip(new, kept):
                if state is not None:
                    self._keep_state(key, state)
        rows = np.array([self._totals[key] for key in keys], dtype=float).reshape(-1, 3)
        return rows[:, 0], rows[:, 1], rows[:, 2]

    def _keep_state(self, key, state: Kept | None) -> None:
        """File (or, with None, drop) a kept cache; past `KEPT_TOKENS` the oldest go."""
        with self._kept_lock:
            old = self._kept.pop(key, None)
            self._kept_tokens -= len(old.ids) if old is not None else 0
            if state is not None:
                self._kept[key] = state
                self._kept_tokens += len(state.ids)
            while self._kept_tokens > KEPT_TOKENS:
                _, old = self._kept.popitem(last=False)
                self._kept_tokens -= len(old.ids)

    def keep(self, texts: Sequence[str], label_names: Sequence[str] = ()) -> None:
        """Score `texts` by class-slor (`scores`) and keep the LM's cache of each new one, so that `fluency` scores
        their edits from the first token each changes (the proposer's originals)."""
        for prefix in class_prefixes(label_names) or [""]:
            self.totals(texts, prefix, keep=True)

    def remember(self, text: str, prefix: str, lm: float, unigram: float, tokens: float) -> None:
        """File a text's totals (as `totals` computes them, after `prefix`) computed elsewhere, unless known."""
        self._totals.setdefault(_total_key(text, prefix), (lm, unigram, tokens))

    def scores(
        self, texts: Sequence[str], kind: str = DEFAULT_FLUENCY_KIND, label_names: Sequence[str] = ()
    ) -> np.ndarray:
        """Each text's score per token, (n,), NaN when empty: `"class-slor"`, its best SLOR after the prefix of each
        of `label_names` (`CLASS_PREFIX`; plain SLOR when none is given), `"slor"` or the mean log-likelihood
        (`"logprob"`)."""
        if kind not in FLUENCY_KINDS:
            raise ValueError(f"kind must be one of {FLUENCY_KINDS}, got {kind!r}.")
        prefixes = class_prefixes(label_names) if kind == "class-slor" else []
        best = None
        for prefix in prefixes or [""]:
            score = self.scores_after(texts, prefix, "logprob" if kind == "logprob" else "slor")
            best = score if best is None else np.fmax(best, score)
        return best

    def scores_after(self, texts: Sequence[str], prefix: str = "", kind: str = "slor") -> np.ndarray:
        """Each text's SLOR (or, `kind="logprob"`, mean log-likelihood) per token after `prefix` (read, not scored),
        (n,), NaN when empty."""
        lm, uni, counts = self.totals(texts, prefix)
        numerator = lm - uni if kind != "logprob" else lm
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, numerator / np.maximum(counts, 1), np.nan)

    def fluency(
        self,
        originals: Sequence[str],
        counterfactuals: Sequence[str],
        kind: str = DEFAULT_FLUENCY_KIND,
        label_names: Sequence[str] = (),
    ) -> np.ndarray:
        """Score of each counterfactual minus its original's, (n,), NaN for an empty text: fluent when >= the
        kind's `FLUENT_AT`."""
        prefixes = class_prefixes(label_names) if kind == "class-slor" else []
        for prefix in prefixes or [""]:  # edits of a kept original run from their first changed token
            self.totals(counterfactuals, prefix, like=originals)
            for original in originals:
                self._keep_state(_total_key(original, prefix), None)  # each is scored once: its cache goes
        both = self.scores(list(originals) + list(counterfactuals), kind, label_names)
        return both[len(originals) :] - both[: len(originals)]


Span = tuple[int, int, tuple[str, ...]]  # words[start:end] of the original become these words


class EditFluency:
    """Fluency of many candidate edits of one text, estimated from the LM's cache of the original's forward pass.

    An edit changes the LM's log-likelihood only from its first word on, and mostly within a few words of its last:
    the estimate scores the new words up to `RIGHT` words after the edit, continuing the original's own key/value
    cache of every word before the edit (so the whole left context counts and is not run again), against the same
    words of the original, whose log-probabilities the original's pass already gave. That change (d, over dt more
    tokens) and the unigram's exact change (du) make the text's SLOR about (N + d - du) / (T + dt) for the
    original's numerator N over T tokens. The final counterfactual is scored exactly (`FluencyScorer.fluency`).
    `fit_at` is cheaper still: how well a word's first token fits a slot after the left context, from that one pass.
    With a `prefix` (class-slor's `CLASS_PREFIX` of one class) every figure is read after it, as `totals` reads one:
    the estimates are then SLOR changes after that class's prefix.
    """

    RIGHT = 3

    def __init__(self, scorer: FluencyScorer, words: Sequence[str], prefix: str = ""):
        self.scorer, self.words, self.prefix = scorer, list(words), prefix
        word_ids = scorer.word_ids(self.words)
        self._context = scorer.ids(prefix.split())  # read before the text, not scored
        self._offsets = np.cumsum([0] + [len(ids) for ids in word_ids])  # word i's first token, (words + 1,)
        self._ids = [i for ids in word_ids for i in ids][: scorer.max_tokens]
        self._state = None  # `FluencyScorer.prefix_state` of the prefix and the original, on first use
        self.count = float(len(self._ids))
        lm, unigram = float(self._token_logp().sum()), float(scorer.unigram_sums([self._ids])[0])
        self.numerator = lm - unigram
        if scorer.estimator is scorer.model:  # exact: the original's score comes free
            scorer.remember(" ".join(self.words), prefix, lm, unigram, self.count)

    def _rows(self) -> np.ndarray:
        """The state's next-token log-probabilities, (prefix + T + 1, V); the text's token k is predicted by row
        `len(prefix) + k`."""
        if self._state is None:
            self._state = self.scorer.prefix_state(self._ids, self._context)
        return self._state[0]

    def _token_logp(self) -> np.ndarray:
        """(T,) log-probability of each of the original's tokens."""
        return self._rows()[len(self._context) + np.arange(len(self._ids)), self._ids]

    def fit_at(self, i: int, words: Sequence[str]) -> np.ndarray:
        """How well each word's first token fits before word i, given every word before it, (n,): the pointwise
        mutual information log P_LM(token | left context) - log P_unigram(token), in nats (0 past `max_tokens`)."""
        rows, slot = self._rows(), len(self._context) + self._offsets[min(i, len(self.words))]
        if slot >= len(rows) or not len(words):
            return np.zeros(len(words))
        first = np.array([ids[0] if ids else self.scorer._start for ids in self.scorer.word_ids(words)])
        return rows[slot, first] - self.scorer.unigram[first]

    def slot_scores(self, edits: Sequence[Sequence[Span]]) -> np.ndarray:
        """`fit_at` of each edit's first new word at its first span (a deletion: of the word that moves up), (n,)."""
        out = np.zeros(len(edits))
        for k, spans in enumerate(edits):
            if not spans:
                continue
            start, end, new = min(spans)
            word = new[0] if new else (self.words[end] if end < len(self.words) else "")
            if word:
                out[k] = self.fit_at(start, [word])[0]
        return out

    def estimate(self, edits: Sequence[Sequence[Span]], right: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(estimated fluency as `FluencyScorer.fluency`, change of SLOR's numerator in nats) of each edit, each (n,);
        an edit is a list of spans of the original's words, read with `right` words after it (default `RIGHT`; the
        text's length: to its end, as exact as the estimator). The nats do not depend on the text's length."""
        right = self.RIGHT if right is None else right
        d, dt = np.zeros(len(edits)), np.zeros(len(edits))
        todo: list[tuple[int, int, list[int]]] = []  # (edit, first changed token, new ids)
        token_logp, unigram = self._token_logp(), self.scorer.unigram
        for k, spans in enumerate(edits):
            spans = sorted(spans)
            if not spans:
                continue
            lo, hi = spans[0][0], min(len(self.words), max(end for _, end, _ in spans) + right)
            first, last = self._offsets[lo], self._offsets[hi]
            if last > len(self._ids):  # beyond what the LM reads (`max_tokens`): no estimate
                continue
            new, at = [], lo
            for start, end, words in spans:
                new += self.words[at:start] + list(words)
                at = end
            new_ids = self.scorer.ids(new + self.words[at:hi])
            old = self._ids[first:last]
            d[k] = -token_logp[first:last].sum() - (unigram[new_ids].sum() - unigram[old].sum())
            dt[k] = len(new_ids) - len(old)
            todo.append((k, len(self._context) + int(first), new_ids))
        if todo:  # one batch, whatever the edits' first changed tokens
            keys = [k for k, _, _ in todo]
            d[keys] += self.scorer.continuation_sums(self._state, [p for _, p, _ in todo], [ids for _, _, ids in todo])
        if self.count == 0:
            return np.full(len(edits), np.nan), d
        return (self.numerator + d) / np.maximum(self.count + dt, 1) - self.numerator / self.count, d


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:60] + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]


def reference_unigram(scorer: FluencyScorer) -> np.ndarray:
    """The unigram model of `scorer`'s LM over the reference corpus (`REFERENCE_SENTENCES` demo training sentences),
    (V,); computed once per LM and cached under `$COD_HOME/models/fluency-unigram/`."""
    from cod.data.tasks import load_task
    from cod.io import atomic_path
    from cod.paths import models_dir

    texts = [e.text for e in load_task("demo").train[:REFERENCE_SENTENCES]]
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]
    path = models_dir() / "fluency-unigram" / f"{_slug(scorer.name)}-{digest}.npy"
    if path.is_file():
        return np.load(path)
    unigram = scorer.estimate_unigram(texts).astype(np.float32)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, unigram)
    return unigram


def _total_key(text: str, prefix: str) -> str | tuple[str, str]:
    """A text's key in `FluencyScorer._totals`: the text alone without a prefix, else (prefix, text)."""
    return (prefix, text) if prefix else text


def class_prefixes(label_names: Sequence[str]) -> list[str]:
    """class-slor's prefix per class (each name cut to `CLASS_NAME_WORDS` words); none, so plain SLOR, without names
    or with more than `CLASS_PREFIXES_AT_MOST` classes."""
    if len(label_names) > CLASS_PREFIXES_AT_MOST:
        return []
    return [CLASS_PREFIX.format(name=" ".join(str(n).split()[:CLASS_NAME_WORDS])) for n in label_names]


@functools.lru_cache(maxsize=2)
def load_fluency_scorer(model: str = DEFAULT_FLUENCY_MODEL) -> FluencyScorer:
    """The scorer for a causal LM by name ('demo-llm': the embedded LLM), Hub id or local folder; one per process."""
    from cod.counterfactuals.local_llm import load_causal_lm

    lm, tokenizer = load_causal_lm(model)  # the same weights the local LLM proposer uses
    return FluencyScorer(lm, tokenizer, name=model)


def add_fluency(
    cfs: Sequence[Counterfactual],
    scorer: FluencyScorer | None = None,
    label_names: Sequence[str] = (),
    kind: str = DEFAULT_FLUENCY_KIND,
) -> list[Counterfactual]:
    """Set `fluency` (the change by `kind`; "class-slor" needs the task's `label_names`, else it is plain "slor") on
    every counterfactual with text that has none yet, or one of another score, in one batch; returns them. The
    score used is written to `extra["fluency_score"]`."""
    used = "slor" if kind == "class-slor" and not label_names else kind
    todo = [cf for cf in cfs if cf.counterfactual and (cf.fluency is None or cf.extra.get("fluency_score") != used)]
    if todo:
        scorer = scorer or load_fluency_scorer()
        texts, counterfactuals = [cf.text for cf in todo], [cf.counterfactual for cf in todo]
        for cf, f in zip(todo, scorer.fluency(texts, counterfactuals, used, label_names)):
            cf.fluency = None if math.isnan(f) else round(float(f), 4)
            cf.extra["fluency_score"] = used
    return list(cfs)


def is_fluent(cf: Counterfactual) -> bool | None:
    """Whether the counterfactual reads as fluent as its original by its score (at least `FLUENT_AT` of the kind it
    was scored with; a record of the first version, unmarked, at 0); None when not scored."""
    if cf.fluency is None:
        return None
    return cf.fluency >= FLUENT_AT.get(cf.extra.get("fluency_score", ""), NO_LESS_FLUENT)


def fluent_share(cfs: Sequence[Counterfactual], at_least: float | None = None) -> float:
    """Share of scored counterfactuals that are fluent (`is_fluent`; or whose fluency is at least `at_least`), NaN
    when none is scored."""
    scored = [cf for cf in cfs if cf.fluency is not None]
    if not scored:
        return float("nan")
    return sum(is_fluent(cf) if at_least is None else cf.fluency >= at_least for cf in scored) / len(scored)
