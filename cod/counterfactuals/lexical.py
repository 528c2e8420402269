"""The offline proposer: a teacher-guided search for minimal word edits, with no LLM and no network.

For each example:
1. occlusion: drop each word, score all drops in one teacher batch, rank positions by the fall in the
   probability of the teacher's current class (a drop that flips is already a one-word counterfactual);
2. candidate edits at the most salient positions: antonyms of the target's valence (the shipped table drawn from
   WordNet, `antonyms.tsv`; WordNet's own when installed), opposite-polarity words from VADER's lexicon (nearest in
   the teacher's input-embedding space, similar valence, same suffix), negation added or removed
   (`cod.counterfactuals.negation`: near the word, and the text's first auxiliaries wherever they stand), a hedge for
   an intensifier, deletion; when the teacher's classes have no polarity (topics, grammaticality, multi-class)
   words the teacher associates with the target class in the few-shot data;
3. a beam search over up to `max_edits` edits, one teacher batch per step, returning the first step's flipping
   edit with the fewest words changed (ties: the most fluent, then the highest target probability), then `shrink`.

Fluency (`fluency.py`, class-conditioned SLOR under the embedded LLM; the search's screen is `slotfit.py`): one LM pass
over the original after the target class's prefix ("A positive text:") gives, at every slot, how well each word fits
after everything before it; at each salient position the `SLOT_WORDS`
lexicon words of the target's polarity (among the `SLOT_NEIGHBOURS` nearest the original word) that fit best join the
candidates, and the twice `substitutes + SLOT_SHORTLIST` candidates per position whose first word fits best are kept.
At the `FIRST_POSITIONS` most salient positions (and at the others when they are tried) the LM then estimates each
one's fluency with the words after it too
(continuing its cache of the original's left context over the new words and a few after them, all in one batch), and
the `substitutes + SLOT_SHORTLIST` that read best go to the teacher, in one batch ("a thin luck" fits after "a" but not
before "luck"); the LM estimates the teacher's other flips (drops), and the most fluent flip is kept (best of N; the
front-runners' estimates are read again to the text's end, several in one batch). Only
when none is estimated fluent (class-slor at least `FLUENT_AT["class-slor"]` against the original's, the score the
counterfactual is stored and judged by) does the teacher score the other positions' candidates, and when still none is,
pairs of single edits that read well but do not flip alone (one teacher batch; a fluent pair beats an ill-fitting
single word and is not shrunk back to it). Names
(capitalised words inside a sentence) are neither replaced nor dropped, and no "not" goes before a sentence's first
word. The counterfactual returned carries its exact `fluency`.

Words are whitespace-separated (see `edits.py`); capitalisation and punctuation attached to a word are kept.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, as_completed
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cod.config import LexicalConfig
from cod.counterfactuals import edits as E
from cod.counterfactuals.base import Counterfactual, Progress, default_target, resolve_targets
from cod.counterfactuals.choice import best_flip, diverse, fluent_pairs
from cod.counterfactuals.edits import Op, is_name, render, replace_core, sentence_start, split_word
from cod.counterfactuals.fluency import FluencyScorer, add_fluency, load_fluency_scorer
from cod.counterfactuals.kit import STOPWORDS, TeacherKit
from cod.counterfactuals.lexicon import HEDGES, INTENSIFIERS, NEGATED_AUX, NEGATORS, load_lexicon
from cod.counterfactuals.negation import clause_negations, freed_aux, negate_near
from cod.counterfactuals.shrink import shrink
from cod.counterfactuals.slotfit import SLOT_PRESHORTLIST, SLOT_SHORTLIST, SlotFit
from cod.errors import ConfigError
from cod.modeling.lanes import Lanes

if TYPE_CHECKING:  # pragma: no cover
    from cod.data.readers import Example
    from cod.modeling.scoring import Teacher

log = logging.getLogger(__name__)

LEXICAL_VERSION = "lexical-16"  # "lexical-9" was an experiment that did not land
# Not occluded (unless a text has too few other words): their deletion rarely moves a classifier. Negators and
# intensifiers are absent on purpose.
OCCLUSION_SKIP = STOPWORDS - NEGATORS - INTENSIFIERS - {"too"}
SLOT_NEIGHBOURS = 150  # lexicon words near the original word (embedding, valence, suffix) the LM chooses among
SLOT_WORDS = 8  # of those, the single-token words the LM finds most at home in the slot, per position
FIRST_POSITIONS = 3  # the most salient positions whose candidates the teacher scores in its first batch
FINISH_BATCH = 16  # searched examples whose kept counterfactuals are scored together (teacher, exact fluency)


def search_workers(teacher: Teacher, examples: int) -> int:
    """How many searches run at once (`cod.modeling.lanes`): one per torch thread, at most one per core, for a
    classifier teacher on CPU, several examples and a call from the main thread (the CLI, benches, scripts); else 1
    (an LLM or API teacher, one example, the app's worker threads: the threads a server starts meanwhile would keep
    one torch thread each)."""
    import os
    import threading

    import torch

    if examples < 2 or getattr(teacher, "kind", "") != "classifier" or getattr(teacher, "device", None) is None:
        return 1
    if teacher.device.type != "cpu" or threading.current_thread() is not threading.main_thread():
        return 1
    return max(1, min(torch.get_num_threads(), os.cpu_count() or 1))


def droppable(words: Sequence[str], i: int) -> bool:
    """Whether dropping word i alone leaves a sentence: it carries no punctuation, and begins no sentence unless it
    is a negator."""
    prefix, core, suffix = split_word(words[i])
    return not suffix and not prefix and (not sentence_start(words, i) or core.lower() in NEGATORS)


def _as_example(example: Example | str, teacher: Teacher) -> Example:
    from cod.data.readers import Example

    if isinstance(example, str):
        return Example(example, int(teacher.predict([example])[0]))
    return example


class LexicalProposer:
    """Teacher-guided minimal word edits from a sentiment lexicon, WordNet, negation and class-associated words."""

    name = "lexical"

    def __init__(
        self,
        config: LexicalConfig | None = None,
        few_shot: Sequence[Example] | None = None,
        cache_dir: Path | str | None | bool = None,
    ):
        """`few_shot`: examples whose words are scored for class association (else the examples proposed for);
        `cache_dir` None: `$COD_HOME/cache/lexical`; False: no disk cache."""
        from cod.counterfactuals.cache import DiskCache
        from cod.paths import cache_dir as default_cache_dir

        self.config = config or LexicalConfig()
        self.few_shot = list(few_shot or [])
        self.lexicon = load_lexicon(wordnet=self.config.wordnet)
        if cache_dir is False:
            self.cache: DiskCache | None = None
        else:
            self.cache = DiskCache(default_cache_dir("lexical") if cache_dir in (None, True) else Path(cache_dir))
        self._kits: dict[int, TeacherKit] = {}
        self._scorer: FluencyScorer | None = None

    @property
    def scorer(self) -> FluencyScorer | None:
        """The fluency LM (loaded on first use), or None when `config.fluency_model` is empty."""
        if self._scorer is None and self.config.fluency_model:
            self._scorer = load_fluency_scorer(self.config.fluency_model)
        return self._scorer

    def __repr__(self) -> str:
        return f"LexicalProposer(model={self.model!r}, cache={self.cache!r})"

    @property
    def model(self) -> str:
        """The lexicon (and WordNet) version the search draws on."""
        return self.lexicon.version

    def kit(self, teacher: Teacher) -> TeacherKit:
        """The per-teacher resources, built on first use."""
        key = id(teacher)
        if key not in self._kits or self._kits[key].teacher is not teacher:
            self._kits[key] = TeacherKit(teacher, self.lexicon, self.config.screen_precision)
        return self._kits[key]

    def propose(
        self,
        examples: Sequence[Example | str],
        teacher: Teacher,
        target: Sequence[int | str | None] | int | str | None = None,
        n: int | None = 1,
        on_progress: Progress | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> list[Counterfactual]:
        """One counterfactual per example, in order; examples not started when `stop()` turns true carry an error.

        `target`: a class index or name for all, one per example, or None (binary: the other class; multi-class:
        the teacher's runner-up). Other flipping texts of the same size found on the way are kept in
        `extra["alternatives"]` (up to max(n - 1, 3)). A bare string example takes the teacher's prediction as its
        label.
        """
        n = 1 if n is None else n
        if not isinstance(n, int) or n < 1:
            raise ConfigError(f"n (counterfactuals kept per example) must be a positive integer, got {n!r}.")
        examples = [_as_example(e, teacher) for e in examples]
        targets = resolve_targets(target, len(examples), teacher.label_names)
        kit = self.kit(teacher)
        uses_pool = kit.polarity is None or bool(self.few_shot)
        if uses_pool:
            kit.build_pool([e.text for e in (self.few_shot or examples)])
        pool_id = hashlib.sha256("\n".join(kit.pool_words).encode()).hexdigest()[:12] if uses_pool else ""
        keys = [self._key(kit, e.text, t, n, pool_id) for e, t in zip(examples, targets)]
        out: list[Counterfactual | None] = [None] * len(examples)
        done = 0

        def search(i: int) -> Counterfactual | None:
            if stop is not None and stop():
                return None  # not started
            return self._search(examples[i], teacher, kit, targets[i], n)

        def finish(cached: int, futures: dict[int, Future]) -> None:
            nonlocal done
            for _ in [None] * cached + list(as_completed(futures.values())):
                done += 1
                if on_progress is not None:
                    on_progress(done, len(examples))
            pending = [(i, keys[i], cf) for i, f in futures.items() if (cf := f.result()) is not None]
            for i, _, cf in pending:
                out[i] = cf
            self._finish(pending, teacher, out)  # what was searched is finished and cached, stopped or not

        workers = search_workers(teacher, len(examples))
        if workers > 1:
            self._warm(kit)
        # Chunks searched, not yet finished. With several workers the main thread's share of the work (the originals'
        # and the kept counterfactuals' exact scores) runs beside theirs: two chunks stay queued, so the workers never
        # wait for it; the last ones are finished after the searches, on every core.
        pending: deque[tuple[int, dict[int, Future]]] = deque()
        lag = 2 if workers > 1 else 1
        chunks = [range(s, min(s + FINISH_BATCH, len(examples))) for s in range(0, len(examples), FINISH_BATCH)]

        def prepare(k: int) -> tuple[int, list[int]] | None:
            """Chunk k's cached answers and its originals' scores: (how many were cached, the indices to search)."""
            if k >= len(chunks) or (stop is not None and stop()):
                return None
            chunk = chunks[k]
            found = self._cached_batch([examples[i] for i in chunk], [keys[i] for i in chunk], teacher, kit)
            fresh = [i for i, cf in zip(chunk, found) if cf is None]
            self._score_originals([examples[i] for i in fresh], teacher)
            for i, cf in zip(chunk, found):
                out[i] = cf
            return len(chunk) - len(fresh), sorted(fresh, key=lambda i: -len(examples[i].text))

        ready = prepare(0)  # before the workers start: on the caller's own torch threads
        with Lanes(workers) as lanes:
            for k in range(len(chunks)):
                if ready is None:
                    break
                cached, todo = ready
                futures = {i: lanes.submit(search, i) for i in todo}  # longest first: the workers end together
                pending.append((cached, futures))
                ready = prepare(k + 1)
                if len(pending) > lag:
                    finish(*pending.popleft())  # the workers go on with the queued chunks meanwhile
        while pending:  # the searches are over (the block waited for them): on the caller's own torch threads
            finish(*pending.popleft())
        rest = [i for i, cf in enumerate(out) if cf is None]  # stopped before their search began
        if rest:
            probs = teacher.predict_proba([examples[i].text for i in rest])  # (rest, L), one batch
            for i, p in zip(rest, probs):
                out[i] = self._stopped(examples[i], p, targets[i])
        return out

    def _warm(self, kit: TeacherKit) -> None:
        """Build what searches share before they run at once: the screen (a bfloat16 copy), the LM's estimator,
        the lexicon's matrices."""
        kit.screen  # noqa: B018
        if self.scorer is not None:
            self.scorer.estimator  # noqa: B018
            self.scorer.unigram  # noqa: B018
        if kit.polarity is not None:
            kit.lexicon_side(1), kit.lexicon_side(-1)

    def _key(self, kit: TeacherKit, text: str, target: int | None, n: int, pool_id: str) -> dict:
        """What a cached counterfactual is filed under."""
        return {
            "proposer": self.name,
            "version": LEXICAL_VERSION,
            "lexicon": self.lexicon.version,
            "teacher": kit.fingerprint,
            "text": text,
            "target": target,
            "n": n,
            "config": self.config.to_dict(),
            "pool": pool_id,
        }

    def _cached_batch(
        self, examples: Sequence[Example], keys: Sequence[dict], teacher: Teacher, kit: TeacherKit
    ) -> list[Counterfactual | None]:
        """The batch's cached counterfactuals (None where absent), each read once; the originals to be searched are
        scored in one teacher batch, so each search's first forward is then cached."""
        found = [self._cached(key, e, teacher) for e, key in zip(examples, keys)]
        fresh = [e.text for e, cf in zip(examples, found) if cf is None]
        if len(fresh) > 1:
            kit.teacher.predict_proba(fresh)
        return found

    def _score_originals(self, examples: Sequence[Example], teacher: Teacher) -> None:
        """The class-slor of the originals about to be searched, in one LM batch per class (cached by the scorer):
        each search compares its estimates with its original's, and `_finish` scores the counterfactuals against it,
        each from its first changed token over its original's kept LM cache (`FluencyScorer.keep`)."""
        if self.scorer is not None and examples:
            self.scorer.keep([e.text for e in examples], teacher.label_names)

    def _finish(self, pending: list[tuple[int, dict, Counterfactual]], teacher: Teacher, out: list) -> None:
        """Score the searched counterfactuals (`out[index]`) as they are kept, several examples at once (fuller
        batches): by the teacher as loaded (the search may have used its bfloat16 copy), `shrink`, the exact
        fluency; then cache them."""
        if not pending:
            return
        began = time.perf_counter()
        kept = [cf for _, _, cf in pending if cf.counterfactual]
        for cf, probs in zip(kept, teacher.predict_proba([cf.counterfactual for cf in kept]) if kept else []):
            cf.counterfactual_teacher_probs = [float(p) for p in probs]
        for index, _, cf in pending:
            # A fluent pair stays a pair: each of its edits alone read worse or did not flip on the search's screen.
            if self.config.shrink and cf.flipped and cf.words_changed >= 2 and not cf.extra.get("paired"):
                out[index] = shrink(cf, teacher)
        done = [(out[index], key) for index, key, _ in pending]
        if self.scorer is not None:
            for cf, _ in done:
                cf.fluency = None  # the search's estimate (or shrink's copy) gives way to the exact score
            # class-slor with the teacher's label names: the score the search estimated, and the one it is judged by
            add_fluency([cf for cf, _ in done], self.scorer, teacher.label_names)
        share = (time.perf_counter() - began) / len(done)
        for cf, key in done:
            cf.latency_s += share
            if self.cache is not None and not cf.error:
                self.cache.put(key, cf.to_record(teacher.label_names))

    # -- helpers ------------------------------------------------------------------------------------------------
    def _stopped(self, example: Example, probs: np.ndarray, target: int | None) -> Counterfactual:
        return Counterfactual(
            example.text,
            example.label,
            [float(p) for p in probs],
            "",
            default_target(probs) if target is None else target,
            [],
            proposer=self.name,
            model=self.model,
            prompt_version=LEXICAL_VERSION,
            error="Stopped before this example was proposed.",
            extra={"stopped": True},
        )

    def _cached(self, key: dict, example: Example, teacher: Teacher) -> Counterfactual | None:
        if self.cache is None:
            return None
        record = self.cache.get(key)
        if record is None:
            return None
        try:
            cf = Counterfactual.from_record(record, teacher.label_names)
        except (KeyError, ValueError, TypeError):
            return None
        cf.label = example.label  # the same text may come with another gold label elsewhere
        cf.extra["cached"] = True
        return cf

    def _search(
        self, example: Example, teacher: Teacher, kit: TeacherKit, target: int | None, n: int
    ) -> Counterfactual:
        start = time.perf_counter()
        text, words = example.text, E.words(example.text)
        probs0 = teacher.predict_proba([text])[0]  # (L,)
        current = int(probs0.argmax())
        tgt = default_target(probs0) if target is None else target
        attempts = 0

        def result(new_text: str, new_probs, ops: Sequence[Op], error: str = "", **extra) -> Counterfactual:
            # `new_probs` may be the bfloat16 screen's: `_finish` scores what is kept by the teacher as loaded.
            return Counterfactual(
                text=text,
                label=example.label,
                teacher_probs=[float(p) for p in probs0],
                counterfactual=new_text,
                target=tgt,
                counterfactual_teacher_probs=[float(p) for p in new_probs],
                proposer=self.name,
                model=self.model,
                prompt_version=LEXICAL_VERSION,
                attempts=attempts,
                latency_s=time.perf_counter() - start,
                error=error,
                extra={"ops": [f"{o.source}:{o.kind}@{o.pos}" for o in ops], **extra},
            )

        if not words:
            return result("", [], [], error="The text is empty: nothing to edit.")
        if current == tgt:
            name = teacher.label_names[tgt]
            return result(
                "", [], [], error=f"The teacher already predicts {name!r} for this text: choose another target."
            )

        # 1. occlusion: (n_sites, L) probabilities with each content word dropped (function words rarely decide).
        sites = [
            i
            for i, w in enumerate(words)
            if re.search(r"\w", w) and split_word(w)[1].lower() not in OCCLUSION_SKIP and not is_name(words, i)
        ]
        if len(sites) < self.config.positions:
            sites = [i for i, w in enumerate(words) if re.search(r"\w", w)] or list(range(len(words)))
        drops = [(Op("del", i, source="delete"),) for i in sites]
        drop_texts = [render(words, ops) for ops in drops]
        drop_probs = kit.screen.predict_proba(drop_texts)
        attempts += len(drop_texts)
        saliency = probs0[current] - drop_probs[:, current]  # (n_sites,)
        positions = [sites[k] for k in np.argsort(-saliency)[: self.config.positions]]
        # A drop is a candidate itself only where it leaves a sentence: not a word carrying punctuation ("story."
        # would take the full stop with it), nor a sentence's first word unless a negator ("While some will object,
        # X achieves" loses its subordinate clause; "Not too fancy" -> "too fancy" is fine).
        states = [s for s in zip(drops, drop_texts, drop_probs) if droppable(words, s[0][0].pos)]

        # 2. candidate single edits at the salient positions, the `substitutes + SLOT_SHORTLIST` per position whose
        # first word fits its slot best (free, from the LM's one pass over the original): the teacher scores those at
        # the top `FIRST_POSITIONS` positions in one batch, and the LM estimates only the ones it flips; the most
        # fluent flip is kept. Only when none of them is estimated fluent (`SlotFit.fluent_at`) do the other
        # positions follow (one more batch).
        fluent = SlotFit(self.scorer, words, teacher.label_names, tgt, text)
        singles = [(op,) for i in positions for op in self._candidates(words, i, current, tgt, kit, fluent)]
        seen_texts = set(drop_texts) | {text}
        singles = list({t: s for s in singles if (t := render(words, s)) not in seen_texts}.values())
        # A clause's own auxiliary negated (or its negation removed) wherever it stands, with the first stage: "The
        # Piano Teacher isn't the sort of movie that discourages ..." (auxiliaries are not occluded, and the salient
        # word is often too far from its auxiliary for `negate_near`).
        clauses = [(op,) for op in clause_negations(words) if render(words, (op,)) not in seen_texts]
        singles = [s for s in singles if s not in clauses]  # not cut by a position's shortlist
        width = self.config.substitutes + SLOT_SHORTLIST
        stages = [positions[:FIRST_POSITIONS], positions[FIRST_POSITIONS:]]
        # Left context first (free), then each stage's survivors with the words after them (one LM batch per stage,
        # when the stage runs).
        singles = fluent.shortlist(singles, SLOT_PRESHORTLIST * width)
        found = None
        for stage in stages:
            batch = fluent.rerank([s for s in singles if s[0].pos in stage], width, set(stage))
            batch += clauses if stage is stages[0] else []
            if batch:
                cand_texts = [render(words, s) for s in batch]
                states += list(zip(batch, cand_texts, kit.screen.predict_proba(cand_texts)))
                attempts += len(cand_texts)
            found, states = self._settled_flip(text, states, tgt, n, fluent, kit)
            if found is not None and found[4] >= fluent.fluent_at:
                break
        # 3. no single flip estimated fluent: two single edits that read well enough, together (one teacher batch),
        # kept only when estimated fluent ("a sweet and modest and ultimately winning story" -> "a sour and modest
        # and ultimately disappointing story" rather than one ill-fitting word).
        paired: list = []
        if self.config.max_edits >= 2 and (found is None or found[4] < fluent.fluent_at):
            pairs = fluent_pairs(words, states, probs0, tgt, fluent, seen_texts)
            if pairs:
                pair_texts = [render(words, ops) for ops in pairs]
                paired = list(zip(pairs, pair_texts, kit.screen.predict_proba(pair_texts)))
                attempts += len(pair_texts)
                best, paired = self._settled_flip(text, paired, tgt, n, fluent, kit)
                if best is not None and best[4] >= fluent.fluent_at:
                    return result(*best[:3], steps=2, estimated=fluent.estimated, paired=True, **best[3])
        if found is not None:
            return result(*found[:3], steps=1, estimated=fluent.estimated, **found[3])

        # 4. beam search: extend the best states with the single edits that moved the teacher most.
        gain = sorted(states, key=lambda s: -s[2][tgt])
        expansions = diverse([s[0][0] for s in gain], self.config.expansions)
        beam = gain[: self.config.beam_width]
        for step in range(2, self.config.max_edits + 1):
            seen: dict[str, tuple[Op, ...]] = {}
            for ops, _, _ in beam:
                used = {o.pos for o in ops}
                for op in expansions:
                    if op.pos not in used:
                        new = tuple(sorted(ops + (op,), key=lambda o: o.pos))
                        seen.setdefault(render(words, new), new)
            scored = paired if step == 2 else []  # the pairs' texts are scored already
            for _, t, _ in scored:
                seen.pop(t, None)
            if not seen and not scored:
                break
            texts = list(seen)
            probs = kit.screen.predict_proba(texts) if texts else []
            attempts += len(texts)
            states = list(zip(seen.values(), texts, probs)) + scored
            best, states = self._settled_flip(text, states, tgt, n, fluent, kit)
            if best is not None:
                return result(*best[:3], steps=step, estimated=fluent.estimated, **best[3])
            beam = sorted(states, key=lambda s: -s[2][tgt])[: self.config.beam_width]
        ops, new_text, new_probs = max(beam, key=lambda s: s[2][tgt]) if beam else ((), text, probs0)
        return result(new_text, new_probs, ops, steps=self.config.max_edits, reason="no flip within max_edits")

    def _settled_flip(self, text: str, states, target: int, n: int, fluent: SlotFit, kit: TeacherKit):
        """`best_flip` once the flip it keeps and its alternatives are not the screen's near-ties (`kit.near_tie`):
        those are scored by the teacher as loaded (one batch per round), and one that does not flip there gives way to
        the next. Returns (found or None, `states` with the teacher's probabilities where it scored)."""
        settled: set[str] = set()
        while True:
            found = best_flip(text, states, target, n, fluent, self.config.min_fluency_nats)
            if found is None:
                return None, states
            probs = {t: p for _, t, p in states}
            kept = [found[0], *found[3].get("alternatives", [])]
            close = [t for t in kept if t not in settled and kit.near_tie(probs[t])]
            if not close:
                return found, states
            settled.update(close)
            exact = dict(zip(close, kit.teacher.predict_proba(close)))
            states = [(ops, t, exact.get(t, p)) for ops, t, p in states]

    def candidate_edits(self, words: Sequence[str], i: int, current: int, target: int, teacher: Teacher) -> list[Op]:
        """The search's candidate edits at word i toward `target` (the augmentation control draws from them too)."""
        return self._candidates(words, i, current, target, self.kit(teacher))

    def _candidates(
        self, words: Sequence[str], i: int, current: int, target: int, kit: TeacherKit, fluent: SlotFit | None = None
    ) -> list[Op]:
        """Edits at word i: negation removed or added, a hedge, antonyms, lexicon words that fit the slot (`fluent`'s
        LM), lexicon words near word i, or pool substitutes; with WordNet, only words of word i's part of speech."""
        prefix, core, suffix = split_word(words[i])
        lower = core.lower()
        polarity = kit.polarity
        sign = int(polarity[target]) if polarity is not None else 0
        ops: list[Op] = []
        if sign or kit.teacher.num_labels == 2:  # negation can flip a binary task even without a lexicon
            # Negation out: "isn't" -> "is", "never" -> "always" (a bare "not" goes by deletion).
            if lower in NEGATED_AUX or (lower.endswith("n't") and len(lower) > 3):
                ops.append(Op("sub", i, freed_aux(words[i]), "negation"))
            elif lower == "never":
                ops.append(Op("sub", i, replace_core(words[i], "always"), "negation"))
            elif lower not in NEGATORS and not (i > 0 and split_word(words[i - 1])[1].lower() in NEGATORS):
                ops.extend(negate_near(words, i))
            # Hedge: "very good" -> "hardly good".
            j = i if lower in INTENSIFIERS else i - 1
            if j >= 0 and split_word(words[j])[1].lower() in INTENSIFIERS:
                ops.append(Op("sub", j, replace_core(words[j], HEDGES[0]), "hedge"))
        opens = sentence_start(words, i) and not (i + 1 == len(words) or re.search(r"[.!?]", suffix))
        if lower in STOPWORDS or lower in NEGATORS or "'" in lower or is_name(words, i) or opens:
            # Function words and contractions keep their slot's grammar: "Not too fancy" must not become "Wrong too
            # fancy", nor "You don't know" "You won know". A sentence's first word has no left context to fit (by
            # eye, none of 11 such swaps in 100 lexical-5/6 pairs read as English: "Worth seeing" -> "Unclear
            # seeing", "While some" -> "Ill some"), and may be a name ("Max pokes"); a one-word sentence is swapped
            # ("Brilliant!" -> "Awful!").
            subs = []
        elif sign:
            # A word without valence (in VADER, or an antonym of the target's) gets few substitutes: swapping a
            # neutral word reads less naturally.
            antonyms = kit.antonyms(lower, sign, 2)
            valenced = self.lexicon.polarity(lower) or antonyms
            k = self.config.substitutes if valenced else min(2, self.config.substitutes)
            k = 2 * k if self.scorer is not None else k  # the LM keeps the ones that fit
            subs = [(w, "antonym") for w in antonyms]
            if fluent is not None and fluent.windows is not None:
                near = kit.lexicon_substitutes(lower, sign, SLOT_NEIGHBOURS)
                subs += [(w, "slot") for w in fluent.slot_words(i, near, SLOT_WORDS)]
            subs += [(w, "lexicon") for w in kit.lexicon_substitutes(lower, sign, k)]
        else:
            subs = [(w, "pool") for w in kit.pool_substitutes(lower, target, self.config.substitutes)]
        seen = {lower}
        limit = 3 * self.config.substitutes if self.scorer is not None else self.config.substitutes
        for w, source in subs:
            if w not in seen and len(seen) <= limit and self.lexicon.same_part_of_speech(lower, w):
                seen.add(w)
                ops.append(Op("sub", i, replace_core(words[i], w), source))
        return [op for op in ops if op is not None]
