"""What the offline proposer's search needs from one teacher, computed once per teacher (`TeacherKit`): its
fingerprint, whether its classes carry sentiment, word vectors from its input embeddings, the lexicon's substitutes
ranked for a slot, the few-shot pool's words it ties to each class, and the `screen` that scores candidates.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from cod.counterfactuals import edits as E
from cod.counterfactuals.edits import split_word
from cod.counterfactuals.lexicon import Lexicon, usable_word

if TYPE_CHECKING:  # pragma: no cover
    from cod.modeling.scoring import Teacher

# Words that reveal whether a teacher's classes carry sentiment, scored inside a neutral frame.
PROBE_POSITIVE = (
    "good",
    "great",
    "excellent",
    "wonderful",
    "best",
    "brilliant",
    "enjoyable",
    "love",
    "fun",
    "charming",
)
PROBE_NEGATIVE = ("bad", "awful", "terrible", "boring", "worst", "dull", "tedious", "hate", "mess", "bland")
PROBE_FRAME = "It was {}."
FINGERPRINT_TEXT = "A plain sentence that fingerprints the teacher."
STOPWORDS = set(
    "the a an and or but of to in on at by for with from as is was are were be been being it its it's this that "
    "these those he she they we you i me my your his her their our them him us who whom which what when where why "
    "how there here than then so if into about over after before up down out off again just also very too can will "
    "would should could has have had do does did not no never".split()
)
POOL_SIZE = 300  # most frequent content words of the few-shot data scored for class association
# A bfloat16 screen's answer closer than this to a tie is not trusted to decide a flip: where it would (the flip the
# search keeps, its alternatives) the teacher as loaded scores it again. The largest bfloat16/float32 gap seen on the
# demo task was 0.024 (1,802 texts).
SCREEN_MARGIN = 0.1


def suffix_class(word: str) -> str:
    """The suffix that marks `word`'s form (-ly, -ing, -ness, ...), or '': substitutes keep the original's."""
    for s in (
        "ingly",
        "fully",
        "ously",
        "ly",
        "ing",
        "ed",
        "est",
        "ness",
        "ful",
        "ous",
        "able",
        "ible",
        "ive",
        "er",
        "s",
    ):
        if word.endswith(s) and len(word) > len(s) + 2 and not (s == "s" and word.endswith(("ss", "us", "is"))):
            return s
    return ""


class TeacherKit:
    """What the search needs from one teacher, computed once: class polarity, word vectors, lexicon matrices, and the
    `screen` that scores the search's candidates (the teacher, or its bfloat16 copy: `LexicalConfig.screen_precision`).
    """

    def __init__(self, teacher: Teacher, lexicon: Lexicon, precision: str = "teacher"):
        self.teacher = teacher
        self.lexicon = lexicon
        self.precision = precision
        self.margin = SCREEN_MARGIN
        self._screen = None
        self.fingerprint = self._fingerprint()
        self._emb = self._embedding_matrix()
        self.polarity = self._class_polarity()  # (num_labels,) in {-1, 0, +1}, or None
        self._subs: dict[int, tuple[list[str], np.ndarray | None, np.ndarray, list[str], np.ndarray]] = {}
        self.pools: dict[str, np.ndarray] = {}  # pool words -> (P, L) association, see `pool_scores`
        self.pool_words: list[str] = []

    @property
    def screen(self):
        """What scores the search's candidates (`predict_proba`): the teacher, or a bfloat16 copy built on first use.
        The copy answers every text it has not seen the teacher score, near-ties too (`near_tie`: the search has the
        teacher score again only the near-ties that would be kept)."""
        if self._screen is None:
            from cod.modeling.precision import PreviewScorer, bfloat16_applies

            applies = bfloat16_applies(self.teacher, self.precision)
            self._screen = PreviewScorer(self.teacher, margin=0.0) if applies else self.teacher
        return self._screen

    def near_tie(self, probs: Sequence[float]) -> bool:
        """Whether the screen's `probs` may be the bfloat16 copy's and are within `margin` of a tie (its top two
        classes): too close to decide a flip, so the teacher as loaded should score the text (free when it has)."""
        from cod.modeling.precision import top_two_gap

        return self.screen is not self.teacher and top_two_gap(probs) < self.margin

    # -- teacher facts ------------------------------------------------------------------------------------------
    def _fingerprint(self) -> str:
        probs = self.teacher.predict_proba([FINGERPRINT_TEXT])[0]
        digest = hashlib.sha256(np.round(probs, 4).tobytes()).hexdigest()[:12]
        return f"{self.teacher.name}:{digest}"

    def _embedding_matrix(self):
        model = getattr(self.teacher, "model", None)
        try:
            return model.get_input_embeddings().weight  # (vocab, hidden), a torch tensor
        except Exception:  # not a transformers model: substitutes are ranked without vectors
            return None

    def known(self, words: Sequence[str]) -> tuple[list[list[int]], list[bool]]:
        """Token ids of each word (as it would appear mid-sentence) and whether the tokenizer knows it (no UNK)."""
        tok = getattr(self.teacher, "tokenizer", None)
        if tok is None:  # an API teacher has no tokenizer: every word counts as one known token
            return [[0] for _ in words], [True] * len(words)
        from cod.modeling.inference import tokenize

        ids = tokenize(tok, [" " + w for w in words], add_special_tokens=False)["input_ids"] if words else []
        unk = getattr(tok, "unk_token_id", None)
        return ids, [bool(x) and unk not in x for x in ids]

    def vectors(self, words: Sequence[str]) -> np.ndarray | None:
        """Mean input embedding of each word's tokens, L2-normalised, (n, hidden); None without an embedding."""
        if self._emb is None or not words:
            return None
        import torch

        ids, _ = self.known(words)
        flat = [i for x in ids for i in (x or [0])]
        lengths = [max(len(x), 1) for x in ids]
        with torch.no_grad():
            rows = self._emb[torch.tensor(flat, device=self._emb.device)].float().cpu().numpy()  # (tokens, hidden)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        means = np.add.reduceat(rows, starts, axis=0) / np.array(lengths)[:, None]  # (n, hidden)
        return means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-8)

    def _class_polarity(self) -> np.ndarray | None:
        pos = [w for w, ok in zip(PROBE_POSITIVE, self.known(PROBE_POSITIVE)[1]) if ok]
        neg = [w for w, ok in zip(PROBE_NEGATIVE, self.known(PROBE_NEGATIVE)[1]) if ok]
        if len(pos) < 3 or len(neg) < 3:
            return None
        probs = self.teacher.predict_proba([PROBE_FRAME.format(w) for w in pos + neg])  # (P+N, L)
        diff = probs[: len(pos)].mean(0) - probs[len(pos) :].mean(0)  # (L,)
        polarity = np.where(np.abs(diff) >= 0.15, np.sign(diff), 0.0)
        return polarity if (polarity > 0).any() and (polarity < 0).any() else None

    # -- substitutes ---------------------------------------------------------------------------------------------
    def lexicon_side(self, sign: int):
        """(words, vectors (W, H) or None, |valence| (W,), suffix classes, token counts (W,)) of one polarity."""
        if sign not in self._subs:
            words = [w for w in self.lexicon.substitutes() if np.sign(self.lexicon.valence[w]) == sign]
            ids, ok = self.known(words)
            keep = [i for i, good in enumerate(ok) if good and len(ids[i]) <= 3]
            words = [words[i] for i in keep]
            self._subs[sign] = (
                words,
                self.vectors(words),
                np.array([abs(self.lexicon.valence[w]) for w in words]),
                [suffix_class(w) for w in words],
                np.array([len(ids[i]) for i in keep]),
            )
        return self._subs[sign]

    def lexicon_substitutes(self, word: str, sign: int, k: int) -> list[str]:
        """Up to k words of valence sign `sign` that fit in place of `word` (near in embedding, valence, suffix)."""
        words, vecs, mags, suffixes, pieces = self.lexicon_side(sign)
        if not words or k <= 0:
            return []
        target_mag = abs(self.lexicon.polarity(word)) or 2.0
        score = -0.15 * np.abs(mags - target_mag) - 0.12 * (pieces - 1)  # rare words split into pieces
        suffix = suffix_class(word)
        score = score + 0.1 * np.array([s == suffix for s in suffixes])
        wv = self.vectors([word])
        if wv is not None and vecs is not None:
            score = score + vecs @ wv[0]  # cosine, (W,)
        lower = word.lower()
        top = np.argsort(-score)[: k + 2]
        return [words[i] for i in top if words[i] != lower and not words[i].startswith(lower)][:k]

    def antonyms(self, word: str, sign: int, k: int) -> list[str]:
        """Antonyms (`Lexicon.antonyms`) whose VADER valence has the target's sign (or none), known to the tokenizer;
        none for a word whose own valence already has the target's sign."""
        if np.sign(self.lexicon.polarity(word)) == sign:
            return []
        ants = [
            a for a in self.lexicon.antonyms(word) if usable_word(a) and np.sign(self.lexicon.polarity(a)) in (sign, 0)
        ]
        ants.sort(key=lambda a: np.sign(self.lexicon.polarity(a)) != sign)  # polar antonyms first (stable)
        ok = self.known(ants)[1]
        return [a for a, good in zip(ants, ok) if good][:k]

    def build_pool(self, texts: Sequence[str]) -> None:
        """Score the most frequent content words of `texts` alone with the teacher: (P, L) log-prob shifts."""
        counts = Counter(
            c.lower() for t in texts for c in (split_word(w)[1] for w in E.words(t)) if usable_word(c.lower())
        )
        words = [w for w, _ in counts.most_common() if w not in STOPWORDS]
        words = [w for w, ok in zip(words, self.known(words)[1]) if ok][:POOL_SIZE]
        new = [w for w in words if w not in self.pool_words]
        if not new:
            return
        logp = np.log(self.teacher.predict_proba(new + [""]) + 1e-9)  # (P+1, L); "" is the baseline
        shift = logp[:-1] - logp[-1]
        self.pool_words += new
        old = self.pools.get("shift")
        self.pools["shift"] = shift if old is None else np.concatenate([old, shift])
        self.pools["vectors"] = self.vectors(self.pool_words)

    def pool_substitutes(self, word: str, target: int, k: int) -> list[str]:
        """Up to k pool words the teacher ties to `target` (margin over the other classes), near `word`."""
        shift = self.pools.get("shift")
        if shift is None or k <= 0:
            return []
        others = np.delete(shift, target, axis=1).max(axis=1)  # (P,)
        margin = shift[:, target] - others
        score = margin / (np.abs(margin).max() + 1e-9)
        wv, pv = self.vectors([word]), self.pools.get("vectors")
        if wv is not None and pv is not None:
            score = score + 0.3 * (pv @ wv[0])
        order = [i for i in np.argsort(-score) if margin[i] > 0 and self.pool_words[i] != word.lower()]
        return [self.pool_words[i] for i in order[:k]]
