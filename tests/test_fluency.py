"""Fluency under the embedded LLM (SmolLM2-135M-Instruct), and the offline proposer's preference for fluent edits.

The bad edits are the ones issue 14 saw the proposer make on the demo task's test sentences.
"""

import pytest

from cod.config import LexicalConfig
from cod.counterfactuals.base import Counterfactual
from cod.counterfactuals.choice import best_flip
from cod.counterfactuals.fluency import (
    FLUENT_AT,
    EditFluency,
    add_fluency,
    class_prefixes,
    fluent_share,
    load_fluency_scorer,
)
from cod.counterfactuals.lexical import LexicalProposer
from cod.counterfactuals.negation import negate_near
from cod.data.readers import Example
from tests.tiny import make_word_classifier

# (original, the edit the proposer made, a fluent edit of the same place)
BAD_EDITS = [
    (
        "What begins brightly gets bogged down",
        "What begins brightly gets entertained down",
        "What begins brightly gets better",
    ),
    (
        "Speaking in terms of spectacle , this is a feast .",
        "Speaking in losses of spectacle , this is a feast .",
        "Speaking in terms of spectacle , this is a mess .",
    ),
    (
        "as an interesting and entertaining experiment",
        "as an not interesting and entertaining experiment",
        "as an uninteresting and entertaining experiment",
    ),
    (
        "Not too fancy , not too filling .",
        "Wrong too fancy , not too filling .",
        "Not too fancy , not too interesting .",
    ),
]


NAMES = ["negative", "positive"]  # the demo task's classes


@pytest.fixture(scope="module")
def scorer():
    return load_fluency_scorer()


@pytest.fixture
def exact(scorer):
    """The scorer with its estimates in float32, as exact as its scores."""
    scorer.estimate_precision = "float32"
    yield scorer
    scorer.estimate_precision = "auto"


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """'boring' says negative; of the positive words the teacher likes 'thanks' best, though it fits no sentence."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from cod.modeling.scoring import Teacher

    weights = {w: (-1.0, 1.0) for w in ("good", "great", "excellent", "fun")} | {"thanks": (-3.0, 3.0)}
    weights |= {w: (1.5, -1.5) for w in ("bad", "awful", "terrible", "boring")}  # probes: the classes have polarity
    words = ["it", "was", "a", "film", ".", *weights]
    path = make_word_classifier(tmp_path_factory.mktemp("fluent"), weights=weights, words=words)
    return Teacher(AutoModelForSequenceClassification.from_pretrained(path), AutoTokenizer.from_pretrained(path))


def test_fluent_sentence_scores_above_a_scrambled_one(scorer):
    fluent, scrambled = (
        "The film was a delight from start to finish .",
        "finish film a delight to The start was from .",
    )
    assert scorer.scores([fluent])[0] > scorer.scores([scrambled])[0] + 1.0
    assert scorer.fluency([fluent], [scrambled])[0] < -1.0 and scorer.fluency([fluent], [fluent])[0] == 0.0


@pytest.mark.parametrize("original,bad,good", BAD_EDITS)
def test_the_issues_bad_edits_score_below_a_fluent_one(scorer, original, bad, good):
    bad_score, good_score = scorer.fluency([original, original], [bad, good])
    assert bad_score < good_score and bad_score < -0.5


def test_window_estimate_matches_the_exact_score_and_prunes_broken_words(exact):
    scorer = exact
    words = "What begins brightly gets bogged down".split()
    fluency, nats = EditFluency(scorer, words).estimate([[(4, 5, ("entertained",))], [(4, 6, ("better",))]])
    exact = scorer.fluency(
        [" ".join(words)] * 2, ["What begins brightly gets entertained down", "What begins brightly gets better"]
    )
    assert fluency == pytest.approx(exact, abs=1e-4)  # the window covers this short text whole
    assert nats[0] < nats[1] and LexicalConfig().min_fluency_nats < nats[1]


def test_add_fluency_fills_records_that_lack_it(scorer):
    cfs = [
        Counterfactual("the film was good .", 1, [0.2, 0.8], "the film was bad .", 0, [0.9, 0.1], proposer="human"),
        Counterfactual("the film was good .", 1, [0.2, 0.8], "", 0, [], proposer="human", error="none"),
    ]
    add_fluency(cfs, scorer)
    assert isinstance(cfs[0].fluency, float) and cfs[1].fluency is None
    record = cfs[0].to_record(["negative", "positive"])
    assert Counterfactual.from_record(record, ["negative", "positive"]).fluency == cfs[0].fluency
    assert fluent_share(cfs, at_least=cfs[0].fluency) == 1.0 and fluent_share(cfs[1:]) != fluent_share(cfs[1:])  # NaN


def test_negation_never_follows_a_determiner_or_a_main_verb_do():
    negate = negate_near
    assert negate("as an interesting and entertaining experiment".split(), 2) == []
    assert negate("Does an impressive job of relating".split(), 2) == []
    ops = negate("it is a good film".split(), 3)  # "is" is an auxiliary: "isn't" or "is not"
    assert {op.word for op in ops} == {"isn't", "not"}


def test_function_words_get_no_lexicon_substitutes(teacher):
    proposer = LexicalProposer(cache_dir=False)
    words = "Not too fancy , not too filling .".split()
    ops = proposer._candidates(words, 0, 1, 0, proposer.kit(teacher))
    assert all(op.source in {"negation", "hedge", "delete"} for op in ops), ops
    words = "Worth seeing . Spare yet audacious".split()  # a sentence's first word is never swapped
    for i in (0, 3):
        assert not [op for op in proposer._candidates(words, i, 1, 0, proposer.kit(teacher)) if op.pos == i], i
    words = "You don't know whether to admire it".split()  # a contraction is negated or left, never swapped
    ops = proposer._candidates(words, 1, 0, 1, proposer.kit(teacher))
    assert ops and all(op.source == "negation" for op in ops if op.pos == 1), ops


def test_proposer_prefers_the_fluent_edit(teacher):
    example = [Example("it was a boring film .", 0)]
    # Six substitutes per position: enough for the blind search to reach "thanks" (the default, four, does not).
    # Without WordNet, whose parts of speech would keep "thanks" (a noun) out of an adjective's slot anyway.
    config = LexicalConfig(fluency_model="", substitutes=6, wordnet=False)
    (blind,) = LexicalProposer(config, cache_dir=False).propose(example, teacher)
    (fluent,) = LexicalProposer(LexicalConfig(substitutes=6, wordnet=False), cache_dir=False).propose(example, teacher)
    # Without the LM the teacher's favourite wins; with it the word that fits the sentence does.
    assert blind.flipped and blind.counterfactual == "it was a thanks film ." and blind.fluency is None
    assert fluent.flipped and fluent.counterfactual in {
        f"it was a {w} film ." for w in ("good", "great", "excellent", "fun")
    }
    assert fluent.fluency is not None and fluent.fluency > -0.5


def test_unigram_model_is_a_distribution_that_knows_frequent_words(scorer):
    import numpy as np

    unigram = scorer.unigram  # (V,) log-probabilities, cached per LM under $COD_HOME/models
    (the,), (treasure,) = scorer.word_ids(["the", "treasure"])
    assert np.exp(unigram.astype(float)).sum() == pytest.approx(1.0, abs=1e-3)
    assert unigram[the] > unigram[treasure] + 3
    small = scorer.estimate_unigram(["the film was good .", "a dull film ."])
    assert np.exp(small.astype(float)).sum() == pytest.approx(1.0, abs=1e-4)


def test_slor_discounts_a_rarer_word_that_fits(scorer):
    original, rarer = "The script is smart .", "The script is dumb ."
    lm, uni, count = scorer.totals([original, rarer])
    assert count[0] == count[1] and uni[1] < uni[0]  # one token each; "dumb" is the rarer
    slor = scorer.fluency([original], [rarer], "slor")[0]
    logprob = scorer.fluency([original], [rarer], kind="logprob")[0]
    assert slor == pytest.approx((lm[1] - uni[1] - lm[0] + uni[0]) / count[0], abs=1e-6)
    assert slor == pytest.approx(logprob - (uni[1] - uni[0]) / count[0], abs=1e-6) and slor > logprob
    with pytest.raises(ValueError, match="kind"):
        scorer.scores([original], kind="sum")


def test_cached_prefix_estimate_of_edits_far_apart_matches_the_exact_score(exact):
    scorer = exact
    words = "the film was good and the music was great .".split()
    # The estimate reads up to EditFluency.RIGHT words past the last edit: these reach the end, so it is exact.
    edits = [[(3, 4, ("bad",)), (8, 9, ("awful",))], [(7, 8, ("wasn't",))], [(8, 9, ())], []]
    fluency, _ = EditFluency(scorer, words).estimate(edits)
    after = [
        "the film was bad and the music was awful .",
        "the film was good and the music wasn't great .",
        "the film was good and the music was .",
        "the film was good and the music was great .",
    ]
    assert fluency == pytest.approx(scorer.fluency([" ".join(words)] * 4, after), abs=1e-4)


def test_edits_at_different_places_are_estimated_in_one_lm_batch(exact):
    scorer, calls = exact, []
    words = "the film was good and the music was great .".split()
    edits = [[(3, 4, ("bad",))], [(1, 2, ("show",))], [(7, 8, ("wasn't",))], [(8, 9, ())]]
    whole = scorer.continuation_sums
    scorer.continuation_sums = lambda state, prefix, seqs: calls.append(prefix) or whole(state, prefix, seqs)
    try:
        fluency, _ = EditFluency(scorer, words).estimate(edits)
    finally:
        del scorer.continuation_sums
    assert len(calls) == 1 and len(set(calls[0])) == 4  # four first changed tokens, one call
    one_by_one = [EditFluency(scorer, words).estimate([e])[0][0] for e in edits]
    assert fluency == pytest.approx(one_by_one, abs=1e-4)


def test_the_shortlist_is_reranked_with_the_words_after_the_slot(exact):
    from cod.counterfactuals.edits import Op
    from cod.counterfactuals.slotfit import SlotFit

    words = "They had good luck with the film .".split()
    fluent = SlotFit(exact, words)
    words2 = ["little", "terrible", "poor", "awful", "bad", "thin"]  # by their fit after "They had", best first
    here = [(Op("sub", 2, w, "slot"),) for w in words2]
    elsewhere = [(Op("sub", 6, w, "slot"),) for w in ("show", "movie", "story")]
    assert [c[0].word for c in fluent.shortlist(here, 2)] == ["little", "terrible"]  # "terrible luck" is rarer
    kept = fluent.rerank(here + elsewhere, 2, {2})
    assert [c[0].word for c in kept] == ["little", "bad", "show", "movie"]  # "bad luck"; elsewhere: as given
    assert set(fluent.known) == set(here)  # only the ranked position was estimated
    assert SlotFit(None, words).rerank(here, 2, {2}) == here  # no LM: every candidate


def test_slot_fit_is_the_pointwise_mutual_information_with_the_left_context(scorer):
    words = "Speaking in terms of spectacle , this is a feast .".split()
    fit = EditFluency(scorer, words).fit_at(9, ["mess", "disaster", "the"])
    assert fit[0] > fit[2] + 3 and fit[1] > fit[2] + 3  # "a the" is not English


def test_candidates_include_target_words_the_lm_fits_in_the_slot(teacher, scorer):
    from cod.counterfactuals.slotfit import SlotFit

    proposer = LexicalProposer(cache_dir=False)
    kit = proposer.kit(teacher)
    words = "it was a boring film .".split()
    fluent = SlotFit(scorer, words)
    ops = proposer._candidates(words, 3, 0, 1, kit, fluent)
    slot = [op.word for op in ops if op.source == "slot"]
    assert slot and set(slot) <= set(kit.lexicon_side(1)[0])  # positive words only
    assert slot[0] != "thanks"  # the teacher's favourite, but "a thanks film" is not English
    candidates = [(op,) for op in ops if op.kind == "sub" and op.pos == 3]
    kept = fluent.shortlist(candidates, 2)
    fits = fluent.windows.slot_scores([[(3, 4, (c[0].word,))] for c in candidates])
    best = {candidates[k] for k in sorted(range(len(candidates)), key=lambda k: -fits[k])[:2]}
    assert len(kept) == 2 and set(kept) == best and not fluent.known  # free: no window estimate yet
    assert SlotFit(None, words).shortlist(candidates, 2) == candidates  # no LM: every candidate


def test_a_score_of_the_first_version_is_replaced_by_the_current_one(scorer):
    from cod.counterfactuals.fluency import FLUENCY_SCORE

    old = Counterfactual("the film was good .", 1, [0.2, 0.8], "the film was bad .", 0, [0.9, 0.1], proposer="x")
    old.fluency = 9.0  # stored by the first version (mean log-likelihood): no "fluency_score" in extra
    add_fluency([old], scorer, NAMES)
    assert old.fluency == pytest.approx(
        scorer.fluency([old.text], [old.counterfactual], label_names=NAMES)[0], abs=1e-4
    )
    assert old.extra["fluency_score"] == FLUENCY_SCORE
    old.fluency = 9.0  # marked as the current score: left as it is
    assert add_fluency([old], scorer, NAMES)[0].fluency == 9.0


def test_names_are_neither_replaced_nor_dropped(teacher):
    from cod.counterfactuals.edits import is_name, sentence_start

    words = "The film celebrates Cuban music . Great fun , I say .".split()
    assert [is_name(words, i) for i in (0, 3, 6, 10)] == [False, True, False, False]  # "Great" starts a sentence
    assert sentence_start(words, 6) and not sentence_start(words, 3)
    proposer = LexicalProposer(cache_dir=False)
    ops = proposer._candidates(words, 3, 1, 0, proposer.kit(teacher))
    assert not [op for op in ops if op.pos == 3 and op.kind == "sub"], ops  # never "Vulture music"


def test_not_is_never_put_before_a_sentence_start():
    negate = negate_near
    assert negate("Rousing throwback and satire".split(), 0) == []  # not "Not Rousing throwback"
    assert negate("It works . Rousing fun".split(), 3) == []
    assert negate("they sing rousing songs".split(), 2) == []  # no auxiliary: not "they sing not rousing songs"
    assert negate("and ably captures the speech".split(), 1) == [] and negate("Spare yet audacious".split(), 1) == []
    assert [op.word for op in negate("they sing loud , rousing songs".split(), 4)] == [
        "not"
    ]  # a contrast after a comma


def test_a_drop_is_kept_only_where_it_leaves_a_sentence():
    from cod.counterfactuals.lexical import droppable

    words = "While some object , it works . Not too fancy , but a winning story.".split()
    assert [droppable(words, i) for i in (0, 1, 5, 7, 8, 13, 14)] == [False, True, True, True, True, True, False]


def test_the_teacher_scores_the_reranked_shortlist_in_one_batch_and_keeps_the_most_fluent_flip(teacher, scorer):
    from cod.counterfactuals.edits import render
    from cod.counterfactuals.slotfit import SLOT_PRESHORTLIST, SLOT_SHORTLIST, SlotFit

    words = "it was a boring film .".split()
    proposer = LexicalProposer(cache_dir=False)
    kit, fluent = proposer.kit(teacher), SlotFit(scorer, words)
    made = {render(words, (op,)): (op,) for i in range(5) for op in proposer._candidates(words, i, 0, 1, kit, fluent)}
    width = LexicalConfig().substitutes + SLOT_SHORTLIST
    shortlist = fluent.shortlist(list(made.values()), width)
    (cf,) = proposer.propose([Example(" ".join(words), 0)], teacher)
    assert cf.flipped and cf.fluency >= 0 and cf.extra["steps"] == 1
    # Five occluded texts, then at most the shortlist (the top positions' in one batch).
    assert 5 < cf.attempts <= 5 + len(shortlist) <= 5 + len(made)
    # The LM estimated the first positions' pre-shortlist (to re-rank it with its right context) and the flips.
    assert 1 <= cf.extra["estimated"] <= SLOT_PRESHORTLIST * width * 3 + 5
    texts = [cf.counterfactual] + cf.extra.get("alternatives", [])
    assert (teacher.predict_proba(texts).argmax(1) == 1).all()
    # The proposer stores the score it is judged by and its search estimates: class-slor with the teacher's names.
    exact = scorer.fluency([" ".join(words)], [cf.counterfactual], "class-slor", NAMES)[0]
    assert cf.fluency == pytest.approx(exact, abs=1e-4) and cf.extra["fluency_score"] == "class-slor"


def test_the_search_estimates_class_slor_after_the_target_prefix(exact):
    from cod.counterfactuals.edits import Op
    from cod.counterfactuals.slotfit import SlotFit

    scorer, original = exact, "it was good and fun ."
    words, edits = original.split(), [(Op("sub", 2, "bad"),), (Op("sub", 4, "dull"),)]
    after = ["it was bad and fun .", "it was good and dull ."]
    fluent = SlotFit(scorer, words, NAMES, target=0)
    estimate, _ = fluent.estimate(edits)
    # The edit's SLOR after "A negative text:" (the window reaches the end: exact) minus the original's class-slor:
    # a lower bound of the counterfactual's class-slor change, judged at class-slor's tolerance.
    own = scorer.scores_after(after, "A negative text:") - scorer.scores([original], "class-slor", NAMES)[0]
    assert estimate == pytest.approx(own, abs=1e-4)
    assert (estimate <= scorer.fluency([original] * 2, after, "class-slor", NAMES) + 1e-4).all()
    assert fluent.fluent_at == FLUENT_AT["class-slor"] and fluent.shift <= 0
    # Without the task's names (or a target) it estimates plain SLOR, fluent at 0.
    plain = SlotFit(scorer, words)
    assert plain.estimate(edits)[0] == pytest.approx(scorer.fluency([original] * 2, after, "slor"), abs=1e-4)
    assert plain.fluent_at == 0 and not (plain.estimate(edits)[0] == pytest.approx(estimate, abs=1e-3))


def test_estimates_in_bfloat16_stay_near_the_float32_ones_and_scores_stay_exact(scorer):
    import torch

    words = "the film was good and the music was great .".split()
    edits = [[(3, 4, ("bad",))], [(7, 8, ("wasn't",))], [(8, 9, ())]]
    before = scorer.fluency([" ".join(words)], ["the film was bad and the music was great ."])[0]
    scorer.estimate_precision = "float32"
    exact, _ = EditFluency(scorer, words).estimate(edits)
    scorer.estimate_precision = "bfloat16"
    try:
        assert next(scorer.estimator.parameters()).dtype == torch.bfloat16
        assert next(scorer.model.parameters()).dtype == torch.float32  # the LM itself is untouched
        fast, _ = EditFluency(scorer, words).estimate(edits)
        assert fast == pytest.approx(exact, abs=0.05) and not (fast == exact).all()
        scorer._totals.clear()  # scores computed again after the bfloat16 estimates: the same
        assert scorer.fluency([" ".join(words)], ["the film was bad and the music was great ."])[0] == pytest.approx(
            before, abs=1e-5
        )  # float32 (a bfloat16 score would be off by about 1e-2)
    finally:
        scorer.estimate_precision = "auto"


def test_kept_counterfactuals_of_several_examples_are_scored_in_one_lm_batch(teacher):
    texts = ["it was a boring film .", "the film was dull .", "a tedious , bland story ."]
    proposer = LexicalProposer(cache_dir=False)
    scorer, calls = proposer.scorer, []
    scorer._totals.clear()
    exact = scorer._exact

    def counted(sequences, context=(), origins=None, keep=False):
        calls.append((len(sequences), tuple(context), sum(o is not None for o in origins or [])))
        return exact(sequences, context, origins, keep)

    scorer._exact = counted
    try:
        cfs = proposer.propose([Example(t, 0) for t in texts], teacher)
    finally:
        del scorer._exact
    # One batch per class prefix for the originals (before the searches), one per prefix for the counterfactuals,
    # which run over their originals' kept caches.
    assert [n for n, _, _ in calls] == [3, 3, 3, 3] and len({c for _, c, _ in calls}) == 2
    assert [used for _, _, used in calls] == [0, 0, 3, 3]
    for cf in cfs:
        exact = scorer.fluency([cf.text], [cf.counterfactual], "class-slor", NAMES)[0]
        assert cf.flipped and cf.fluency == pytest.approx(exact, abs=1e-4)


# Fluent antonym swaps (labelled fluent by eye; the second is from the demo task's test sentences) that SLOR puts
# below their original because the new word is less expected in its context: the meaning change, not a disfluency.
ANTONYM_SWAPS = [
    ("the film was good .", "the film was bad ."),
    (
        "Davis is funny, charming and quirky in her feature film acting debut as Amy.",
        "Davis is funny, charming and lame in her feature film acting debut as Amy.",
    ),
]
WORD_SALAD = [
    ("What begins brightly gets bogged down", "What begins brightly gets entertained down"),
    (
        "There's only so much anyone can do with a florid, overplotted vampire novel.",
        "There's safety so much anyone can do with a florid, overplotted vampire novel.",
    ),
]


@pytest.mark.parametrize("original,swapped", ANTONYM_SWAPS)
def test_class_slor_accepts_a_grammatical_antonym_swap_that_slor_penalises(scorer, original, swapped):
    class_slor = scorer.fluency([original], [swapped], "class-slor", NAMES)[0]
    assert class_slor >= 0 and scorer.fluency([original], [swapped], "slor")[0] < 0


@pytest.mark.parametrize("original,salad", WORD_SALAD)
def test_word_salad_edits_fall_below_the_tolerance_under_every_kind(scorer, original, salad):
    from cod.counterfactuals.fluency import FLUENT_AT

    for kind in ("class-slor", "slor"):
        assert scorer.fluency([original], [salad], kind, NAMES)[0] < FLUENT_AT["class-slor"] - 0.5


def test_class_prefix_is_read_but_not_scored(scorer):
    from cod.counterfactuals.fluency import CLASS_PREFIX

    text = "The film was a delight from start to finish ."
    plain, prefixed = scorer.totals([text]), scorer.totals([text], CLASS_PREFIX.format(name="positive"))
    assert plain[2][0] == prefixed[2][0] and plain[1][0] == prefixed[1][0]  # same tokens, same unigram part
    assert plain[0][0] != prefixed[0][0]  # the LM part is conditioned on the prefix
    per_class = [scorer.scores([text], "class-slor", [name])[0] for name in NAMES]
    assert scorer.scores([text], "class-slor", NAMES)[0] == max(per_class) != min(per_class)  # the best class
    assert scorer.scores([text], "class-slor")[0] == scorer.scores([text], "slor")[0]  # no class names: SLOR


def test_add_fluency_marks_the_kind_and_is_fluent_uses_its_tolerance(scorer):
    from cod.counterfactuals.fluency import is_fluent

    def pair():
        return Counterfactual("the film was good .", 1, [0.2, 0.8], "the film was bad .", 0, [0.9, 0.1], "human")

    named, unnamed = add_fluency([pair()], scorer, NAMES)[0], add_fluency([pair()], scorer)[0]
    assert named.extra["fluency_score"] == "class-slor" and unnamed.extra["fluency_score"] == "slor"  # the fallback
    assert is_fluent(named) and not is_fluent(unnamed)
    named.fluency = unnamed.fluency = -0.05  # within class-slor's tolerance of 0.1 nats/token, below slor's 0
    assert is_fluent(named) and not is_fluent(unnamed)
    assert fluent_share([named, unnamed]) == 0.5 and fluent_share([named, unnamed], at_least=-0.06) == 1.0


def test_class_prefixes_are_bounded_for_a_hostile_tasks_label_names(scorer):
    """A visitor's label names are read at most CLASS_NAME_WORDS words each, and past CLASS_PREFIXES_AT_MOST classes
    class-slor is plain SLOR (one LM pass per class)."""
    from cod.counterfactuals.fluency import CLASS_NAME_WORDS, CLASS_PREFIX, CLASS_PREFIXES_AT_MOST, class_prefixes

    long_name = " ".join(["negative"] * 5000)
    assert class_prefixes([long_name, "positive"])[0] == CLASS_PREFIX.format(
        name=" ".join(["negative"] * CLASS_NAME_WORDS)
    )
    text = "the film was good ."
    cut = " ".join(["negative"] * CLASS_NAME_WORDS)
    assert (
        scorer.scores([text], "class-slor", [long_name, "positive"])[0]
        == scorer.scores([text], "class-slor", [cut, "positive"])[0]
    )
    many = [f"class {i}" for i in range(CLASS_PREFIXES_AT_MOST + 1)]
    assert class_prefixes(many) == []
    assert scorer.scores([text], "class-slor", many)[0] == scorer.scores([text], "slor")[0]


def _full_pass(scorer, text, prefix=""):
    """The LM log-likelihood of `text` after `prefix` by one plain float32 forward over the whole row."""
    import torch

    context, ids = scorer.ids(prefix.split()), scorer.ids(text.split())
    row = torch.tensor([[scorer._start, *context, *ids]])
    with torch.no_grad():
        logp = torch.log_softmax(scorer.model(input_ids=row).logits[0, :-1].float(), -1)
    return float(logp[len(context) + torch.arange(len(ids)), torch.tensor(ids)].sum())


def test_edits_of_a_kept_original_run_from_their_first_changed_token(scorer):
    """The class prefix runs once, and an edit of a kept original runs only from the token it changes, over the
    original's cache: the same totals as a full forward over each row."""
    original = "The film was a delight from start to finish , and the cast is fun ."
    edits = [
        "The film was a mess from start to finish , and the cast is fun .",  # middle
        "The film was a delight from start to finish , and the cast is dull .",  # near the end
        "A film was a delight from start to finish , and the cast is fun .",  # the first word
        "The film was not a delight from start to finish , and the cast is fun .",  # an insertion
        "The film was a delight from start to finish , and the cast is .",  # a deletion
        "The film was a delight from start to finish",  # a prefix of the original
        original,
    ]
    scorer._totals.clear()
    ran = []  # tokens each row runs
    run = scorer._continue
    scorer._continue = lambda items, keep: ran.extend(len(t) for _, _, t in items) or run(items, keep)
    try:
        scorer.keep([original], NAMES)
        assert len(ran) == 2 and ran[0] == len(scorer.ids(original.split())) + 1  # per class: no prefix re-run
        ran.clear()
        fluency = scorer.fluency([original] * len(edits), edits, "class-slor", NAMES)
    finally:
        del scorer._continue
    full = [len(scorer.ids(e.split())) + 1 for e in edits]
    assert sum(ran) < 0.6 * 2 * sum(full[:-1])  # the shared left context is not run again
    for prefix in class_prefixes(NAMES) + [""]:
        lm, _, _ = scorer.totals(edits + [original], prefix)
        expected = [_full_pass(scorer, t, prefix) for t in edits + [original]]
        assert lm == pytest.approx(expected, abs=2e-3)
    scorer._totals.clear()  # scored again without the kept cache: the same
    assert scorer.fluency([original] * len(edits), edits, "class-slor", NAMES) == pytest.approx(fluency, abs=1e-4)
    assert fluency[-1] == 0.0 and not scorer._kept  # each kept cache is dropped once its edits are scored


def test_kept_caches_are_bounded_by_their_tokens_oldest_first(scorer, monkeypatch):
    from cod.counterfactuals import fluency

    texts = ["the film was good .", "the plot was dull and slow .", "a fine cast ."]
    sizes = [len(scorer.ids(t.split())) for t in texts]
    monkeypatch.setattr(fluency, "KEPT_TOKENS", sizes[1] + sizes[2])
    scorer._totals.clear()
    scorer._keep_state("stale", None)  # dropping what is not kept is a no-op
    for text in texts:
        scorer.keep([text])  # plain SLOR: one cache per text
    assert list(scorer._kept) == texts[1:] and scorer._kept_tokens == sizes[1] + sizes[2]  # the oldest went
    scorer.fluency([texts[1]], ["the plot was fun and slow ."], "slor")
    assert list(scorer._kept) == texts[2:] and scorer._kept_tokens == sizes[2]
    scorer.fluency([texts[2]], ["a bad cast ."], "slor")
    assert not scorer._kept and scorer._kept_tokens == 0


@pytest.fixture(scope="module")
def pair_teacher(tmp_path_factory):
    """Two negative words: one good word in place of either leaves the text negative, 'thanks' alone flips it (but
    fits no sentence), two good words together flip it."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from cod.modeling.scoring import Teacher

    weights = {w: (-1.0, 1.0) for w in ("good", "great", "excellent", "fun")} | {"thanks": (-3.0, 3.0)}
    weights |= {w: (1.5, -1.5) for w in ("bad", "awful", "terrible", "boring")}
    words = ["it", "was", "a", "film", "with", "an", "plot", ".", *weights]
    path = make_word_classifier(tmp_path_factory.mktemp("pairs"), weights=weights, words=words)
    return Teacher(AutoModelForSequenceClassification.from_pretrained(path), AutoTokenizer.from_pretrained(path))


def test_two_fluent_swaps_win_over_one_that_does_not_fit(pair_teacher):
    text = "it was a boring film with an awful plot ."
    thanks = ["it was a thanks film with an awful plot .", "it was a boring film with a thanks plot ."]
    assert (pair_teacher.predict_proba(thanks).argmax(1) == 1).all()  # one ill-fitting word would flip it
    config = LexicalConfig(substitutes=6, wordnet=False)
    (cf,) = LexicalProposer(config, cache_dir=False).propose([Example(text, 0)], pair_teacher)
    assert cf.flipped and cf.words_changed == 2 and cf.extra["paired"], cf.counterfactual
    assert "thanks" not in cf.counterfactual and cf.fluency >= FLUENT_AT["class-slor"]
    scorer = load_fluency_scorer()
    assert (scorer.fluency([text] * 2, thanks, "class-slor", NAMES) < FLUENT_AT["class-slor"]).all()


def test_a_fluent_pair_is_not_shrunk_to_the_word_that_does_not_fit(pair_teacher):
    text, pair = "it was a boring film with an awful plot .", "it was a thanks film with an excellent plot ."
    proposer = LexicalProposer(LexicalConfig(wordnet=False), cache_dir=False)
    out = []
    for paired in (True, False):
        extra = {"paired": True} if paired else {}
        cf = Counterfactual(text, 0, [0.9, 0.1], pair, 1, [0.1, 0.9], proposer="lexical", extra=extra)
        kept = [cf]
        proposer._finish([(0, {}, cf)], pair_teacher, kept)
        out.append(kept[0])
    assert out[0].counterfactual == pair and out[0].words_changed == 2  # "thanks" alone flips, but reads badly
    assert out[1].counterfactual == "it was a thanks film with an awful plot ." and out[1].words_changed == 1


def test_the_flip_kept_is_read_to_the_texts_end_not_only_in_the_window(exact):
    from cod.counterfactuals.edits import Op, render
    from cod.counterfactuals.slotfit import SlotFit

    text = "One of those rare films that come by once in a while with flawless amounts of acting, direction, story."
    words = text.split()
    fluent = SlotFit(exact, words, NAMES, target=0, text=text)
    illnesses, movies = (Op("sub", 4, "illnesses"),), (Op("sub", 4, "movies"),)
    window, _ = fluent.estimate([illnesses, movies])
    whole, _ = fluent.estimate([illnesses, movies], whole=True)
    assert window[0] > window[1] and whole[0] < FLUENT_AT["class-slor"] <= whole[1]  # "illnesses that come by"
    changed = [render(words, ops) for ops in (illnesses, movies)]
    assert whole == pytest.approx(exact.fluency([text] * 2, changed, "class-slor", NAMES), abs=1e-3)
    states = [(ops, t, [0.8, 0.2]) for ops, t in zip((illnesses, movies), changed)]  # both flip to class 0
    found = best_flip(text, states, 0, 1, fluent, -25.0)
    assert found[0] == changed[1] and found[4] == pytest.approx(whole[1])


def test_a_flip_is_not_kept_on_its_window_estimate_after_the_first_reads_to_the_end_fail():
    """lexical-13: front-runners are read to the text's end several at a time; lexical-12 read three, one by one, and
    then kept the fourth on its window estimate alone ("Love trusts even the most fragmented charms", -0.34)."""
    import numpy as np

    from cod.counterfactuals.edits import Op

    class Reads:  # the window and whole-text estimates of five flips, as `SlotFit.estimate` gives them
        fluent_at, shift = FLUENT_AT["class-slor"], 0.0

        def __init__(self):
            self.window = {(Op("sub", 2, w),): f for w, f in zip("abcde", (0.11, 0.09, 0.08, 0.08, 0.05))}
            self.whole = {(Op("sub", 2, w),): f for w, f in zip("abcde", (-0.19, -0.25, -0.21, -0.34, -0.09))}
            self.asked = []

        def estimate(self, candidates, whole=False):
            self.asked += list(candidates) if whole else []
            scores = np.array([(self.whole if whole else self.window)[c] for c in candidates])
            return scores, np.zeros(len(candidates))

    reads = Reads()
    states = [(ops, f"it was {ops[0].word} .", [0.2, 0.8]) for ops in reads.window]
    found = best_flip("it was x .", states, 1, 1, reads, -25.0)
    assert found[0] == "it was e ." and found[4] == pytest.approx(-0.09)  # read to the end, fluent
    assert len(reads.asked) == 5  # in two batches (four, then the one left)


def test_a_flip_that_reads_badly_is_paired_with_a_single_that_reads_well():
    """lexical-16: besides the pairs of target-moving singles, the pair stage tries the flips estimated not fluent
    with the non-flipping singles the LM estimated best that do not pull away from the target ("repairs")."""
    import numpy as np

    from cod.counterfactuals.choice import fluent_pairs
    from cod.counterfactuals.edits import Op, render

    flip, good, against, weak = Op("sub", 1, "dull"), Op("sub", 2, "story"), Op("sub", 3, "fine"), Op("sub", 3, "z")

    class Reads:  # window estimates as `SlotFit.estimate` gives them (the search's re-rank has estimated all four)
        fluent_at, shift, windows = FLUENT_AT["class-slor"], 0.0, True

        def __init__(self):
            self.known = {(flip,): (-0.3, 0.0), (good,): (0.4, 0.0), (against,): (0.5, 0.0), (weak,): (-0.9, 0.0)}

        def estimate(self, candidates, whole=False):
            return np.array([self.known[c][0] for c in candidates]), np.zeros(len(candidates))

    words = "a fun film here .".split()
    probs = {flip: [0.4, 0.6], good: [0.7, 0.3], against: [0.9, 0.1], weak: [0.6, 0.4]}  # target 1; base 0.2
    states = [((op,), render(words, (op,)), p) for op, p in probs.items()]
    pairs = fluent_pairs(words, states, [0.8, 0.2], 1, Reads(), set())
    assert (flip, good) in pairs  # -0.3 + 0.4 reads well; "good" moves toward the target
    assert (flip, against) not in pairs  # it reads well but pulls the text back to class 0
    assert all(flip not in ops or weak not in ops for ops in pairs)  # together estimated below fluent
