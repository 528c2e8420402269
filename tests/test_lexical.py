"""The offline proposer against tiny teachers whose hand-set weights make specific words drive the prediction."""

import pytest

from cod.config import LexicalConfig
from cod.counterfactuals import make_proposer, propose
from cod.counterfactuals.edits import match_case
from cod.counterfactuals.lexical import LexicalProposer, Op, render, split_word
from cod.counterfactuals.lexicon import (
    ANTONYMS_FILE,
    build_antonym_table,
    load_lexicon,
    read_antonym_table,
    read_vader,
    read_wordnet_antonyms,
    usable_word,
    vader_path,
    write_antonym_table,
)
from cod.counterfactuals.negation import clause_negations, negate_near
from cod.counterfactuals.score import char_similarity, margin, score, similarity, tokenizer_fit
from cod.data.readers import Example
from cod.errors import ConfigError
from tests.tiny import WORDS, make_word_classifier


def _teacher(path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from cod.modeling.scoring import Teacher

    return Teacher(AutoModelForSequenceClassification.from_pretrained(path), AutoTokenizer.from_pretrained(path))


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory):
    """Binary teacher: positive words push 'positive', negative words and 'not' push 'negative'."""
    return _teacher(make_word_classifier(tmp_path_factory.mktemp("word-binary")))


@pytest.fixture(scope="module")
def negation_only(tmp_path_factory):
    """Binary teacher whose vocabulary has no negative word: only 'not' can turn it negative."""
    words = "the film was it is a good not .".split()
    weights = {"good": (-1.5, 1.5), "not": (3.0, -3.0)}
    return _teacher(make_word_classifier(tmp_path_factory.mktemp("word-neg"), weights=weights, words=words))


@pytest.fixture(scope="module")
def topics(tmp_path_factory):
    """3-way teacher (sports/politics/tech) driven by topic words; no sentiment polarity."""
    weights = {w: (1.5, 0.0, 0.0) for w in ("sports", "game", "team", "ball")}
    weights |= {w: (0.0, 1.5, 0.0) for w in ("politics", "vote", "law")}
    weights |= {w: (0.0, 0.0, 1.5) for w in ("tech", "computer", "phone")}
    path = make_word_classifier(
        tmp_path_factory.mktemp("word-3way"), label_names=("sports", "politics", "tech"), weights=weights
    )
    return _teacher(path)


def _propose(teacher, texts, config=None, **kw):
    return LexicalProposer(config or LexicalConfig(), cache_dir=False).propose(
        [Example(t, 1) for t in texts], teacher, **kw
    )


def test_word_helpers_keep_punctuation_and_case():
    assert split_word("(Great),") == ("(", "Great", "),")
    assert split_word("...") == ("", "...", "")
    assert (
        match_case("GOOD", "bad") == "BAD"
        and match_case("Good", "bad") == "Bad"
        and match_case("good", "bad") == "bad"
    )
    words = "Good fun , really".split()
    assert render(words, [Op("sub", 0, "Bad"), Op("ins", 3, "not"), Op("del", 2)]) == "Bad fun not really"


def test_flips_with_one_word_and_keeps_the_rest(sentiment):
    texts = ["The film was good.", "the movie was fun", "It is a dull film ."]
    cfs = _propose(sentiment, texts)
    assert [cf.flipped for cf in cfs] == [True, True, True]
    assert [cf.words_changed for cf in cfs] == [1, 1, 1]
    first = cfs[0].counterfactual.split()
    assert first[:3] == ["The", "film", "was"] and first[-1].endswith(".") and first[3] != "good."  # "not" or a swap
    for cf in cfs:
        assert cf.counterfactual_teacher_probs[cf.target] > 0.5
        assert cf.target == 1 - int(max(range(2), key=cf.teacher_probs.__getitem__))
        assert cf.proposer == "lexical" and cf.attempts > 0 and cf.extra["steps"] == 1
        assert cf.counterfactual_teacher_probs == pytest.approx(
            sentiment.predict_proba([cf.counterfactual])[0].tolist()
        )


def test_capitalised_word_is_replaced_in_kind(sentiment):
    (cf,) = _propose(sentiment, ["Brilliant!"])
    assert cf.flipped
    # The LM may prefer "Not Brilliant!"; every one-word swap found (the answer or an alternative) keeps the case.
    swaps = [t for t in [cf.counterfactual, *cf.extra.get("alternatives", [])] if len(t.split()) == 1]
    assert swaps and all(t[0].isupper() and t[1:-1].islower() and t.endswith("!") for t in swaps), swaps


def test_two_words_when_one_cannot_flip(sentiment):
    # With three positive words one replacement leaves the text positive: two are needed; shrink keeps both.
    (cf,) = _propose(sentiment, ["the film was good and great and fun"])
    assert cf.flipped and cf.words_changed == 2 and cf.extra["steps"] == 2
    (capped,) = _propose(sentiment, ["the film was good and great and fun"], LexicalConfig(max_edits=1))
    assert not capped.flipped and capped.error == "" and capped.extra["reason"] == "no flip within max_edits"


def test_negation_inserted_and_removed(negation_only):
    (added,) = _propose(negation_only, ["the film was good"])
    assert added.flipped and added.counterfactual == "the film was not good"  # the tiny tokenizer has no "wasn't"
    assert "negation" in added.extra["ops"][0]
    (removed,) = _propose(negation_only, ["the film was not good"])
    assert removed.flipped and removed.counterfactual == "the film was good" and removed.words_changed == 1


def test_multiclass_uses_words_the_teacher_ties_to_the_target(topics):
    few_shot = [
        Example(t, i)
        for t, i in [("the team won the ball game", 0), ("a vote on the law", 1), ("a new phone and computer", 2)]
    ]
    proposer = LexicalProposer(few_shot=few_shot, cache_dir=False)
    assert proposer.kit(topics).polarity is None
    cfs = proposer.propose(
        [Example("the team played", 0), Example("the team played", 0)], topics, target=["politics", None]
    )
    assert cfs[0].flipped and cfs[0].target == 1 and cfs[0].words_changed == 1
    assert cfs[0].counterfactual.split()[1] in {"vote", "law", "politics"}
    assert cfs[1].flipped and cfs[1].target != 0  # default: the teacher's runner-up


def test_cache_resumes_without_teacher_work(sentiment, tmp_path):
    texts = [Example("the film was good", 1), Example("a dull mess", 0)]
    first = LexicalProposer(cache_dir=tmp_path).propose(texts, sentiment)
    passes = sentiment.forward_passes
    again = LexicalProposer(cache_dir=tmp_path).propose(texts, sentiment)
    assert sentiment.forward_passes == passes  # fingerprint and probes were cached in the teacher already
    assert [c.counterfactual for c in again] == [c.counterfactual for c in first]
    assert all(c.extra.get("cached") for c in again) and [c.label for c in again] == [1, 0]


def test_stop_progress_targets_and_errors(sentiment):
    seen = []
    cfs = _propose(sentiment, ["good", "bad"], on_progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 2), (2, 2)] and len(cfs) == 2
    stopped = _propose(sentiment, ["good", "bad"], stop=lambda: True)
    assert [c.error for c in stopped] == ["Stopped before this example was proposed."] * 2
    assert all(c.extra["stopped"] and not c.flipped for c in stopped)
    (same,) = _propose(sentiment, ["the film was good"], target="positive")
    assert same.error.startswith("The teacher already predicts 'positive'") and not same.flipped
    with pytest.raises(ConfigError, match="not one of the teacher's labels"):
        _propose(sentiment, ["good"], target="neutral")
    with pytest.raises(ConfigError, match="one per example"):
        _propose(sentiment, ["good", "bad"], target=[0])
    (empty,) = _propose(sentiment, ["   "])
    assert empty.error and not empty.flipped


def test_dispatcher(sentiment):
    (cf,) = propose(["the film was good"], sentiment, proposer="lexical", cache_dir=False)
    assert cf.flipped and cf.label == 1  # a bare string takes the teacher's prediction as its label
    with pytest.raises(ConfigError, match="Unknown proposer"):
        make_proposer("oracle")
    with pytest.raises(ConfigError, match="LexicalConfig"):
        make_proposer("lexical", config=object())


def test_vader_lexicon_is_read_and_filtered():
    valence = read_vader(vader_path())
    assert valence["good"] > 0 > valence["bad"] and len(valence) > 5000
    assert usable_word("awful") and not usable_word("fucked") and not usable_word(":)") and not usable_word("dx")
    assert load_lexicon(wordnet=False).parts_of_speech("good") == {}  # no WordNet: no parts of speech


def test_the_shipped_antonym_table_gives_antonyms_without_wordnet():
    lexicon = load_lexicon(wordnet=False)
    assert "antonyms" in lexicon.version and "wordnet" not in lexicon.version
    assert lexicon.antonyms("Good")[0] == "bad" and lexicon.antonyms("superior")[0] == "inferior"
    assert "unfunny" in lexicon.antonyms("funny") and lexicon.antonyms("uninspired")[0] == "inspired"  # prefixes
    assert lexicon.antonyms("fails")[0] == "succeeds"  # a verb's third person
    assert lexicon.antonyms("zzyzx") == [] and len(read_antonym_table(ANTONYMS_FILE)) > 5000
    # WordNet's licence asks for its notice on every copy: it ships beside the table and the table's header names it
    notice = ANTONYMS_FILE.with_name("antonyms-LICENSE.txt").read_text(encoding="utf-8")
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in notice and "AS IS" in notice
    assert "antonyms-LICENSE.txt" in ANTONYMS_FILE.read_text(encoding="utf-8").splitlines()[0]
    valence = read_vader(vader_path())
    for word, antonyms in list(read_antonym_table(ANTONYMS_FILE).items())[::97]:  # a pair's valences differ in sign
        sign = (valence.get(word, 0) > 0) - (valence.get(word, 0) < 0)
        assert all(((valence.get(a, 0) > 0) - (valence.get(a, 0) < 0)) != sign for a in antonyms), word


def test_the_antonym_table_recipe_reads_wordnet_files(tmp_path):
    (tmp_path / "data.adj").write_text(
        "  1 This software and database is being provided to you, the LICENSEE, by Princeton University\n"
        "00278551 00 a 01 bright 0 001 ! 00280000 a 0101 | emitting light\n"
        "00280000 00 a 01 dull(a) 0 001 ! 00278551 a 0101 | not bright\n"
        "00281173 00 s 01 brilliant 0 001 & 00278551 a 0000 | full of light\n"
        "00300000 00 a 01 funny 0 000 | comic\n"
        "00300001 00 a 01 unfunny 0 000 | not comic\n"
    )
    (tmp_path / "data.verb").write_text(
        "00001000 00 v 01 fail 0 001 ! 00001001 v 0101 01 + 02 00 | be unsuccessful\n"
        "00001001 00 v 01 succeed 0 001 ! 00001000 v 0101 01 + 02 00 | attain success\n"
    )
    index = {
        "adj": ["bright a 1 1 ! 1 3 00278551", "dull a 1 1 ! 1 2 00280000", "brilliant a 1 0 1 2 00281173",
                "funny a 1 0 1 3 00300000", "unfunny a 1 0 1 0 00300001"],
        "verb": ["fail v 1 1 ! 1 4 00001000", "succeed v 1 1 ! 1 4 00001001"],
    }  # fmt: skip
    for name, rows in index.items():
        (tmp_path / f"index.{name}").write_text("  1 licence header\n" + "\n".join(rows) + "\n")
    valence = {
        "bright": 1.9,
        "dull": -1.7,
        "brilliant": 2.8,
        "funny": 1.9,
        "fail": -1.8,
        "fails": -1.8,
        "succeed": 2.1,
    }
    table = build_antonym_table(tmp_path, valence)
    assert table["bright"] == ["dull"] and table["dull"] == ["bright", "brilliant"]  # direct first, then indirect
    assert table["brilliant"] == ["dull"]  # a satellite takes its head's antonym
    assert table["funny"] == ["unfunny"] and table["unfunny"] == ["funny"]  # a negating prefix, both ways
    assert table["fails"] == ["succeeds"] and table["succeed"] == ["fail"]  # verbs in the third person too
    write_antonym_table(table, tmp_path / "antonyms.tsv")
    assert read_antonym_table(tmp_path / "antonyms.tsv") == table


def test_wordnet_antonyms_from_data_files(tmp_path):
    (tmp_path / "data.adj").write_text(
        "  1 This software and database is being provided to you, the LICENSEE, by Princeton University\n"
        "00001740 00 a 01 able 0 001 ! 00002098 a 0101 | having the means\n"
        "00002098 00 a 01 unable 0 001 ! 00001740 a 0101 | not having the means\n"
        "00278551 00 a 01 bright 0 001 ! 00280000 a 0101 | emitting light\n"
        "00280000 00 a 01 dull(a) 0 001 ! 00278551 a 0101 | not bright\n"
        "00281173 00 s 01 brilliant 0 001 & 00278551 a 0000 | full of light\n"
    )
    antonyms = read_wordnet_antonyms(tmp_path)
    assert antonyms["able"] == ["unable"] and antonyms["dull"] == ["bright"]
    assert antonyms["brilliant"] == ["dull"]  # a satellite takes its head's antonym
    lexicon = load_lexicon(wordnet=True, wordnet_dir=str(tmp_path))
    assert lexicon.antonyms("Bright")[0] == "dull" and "wordnet" in lexicon.version  # the shipped table's first
    assert "unable" in lexicon.antonyms("able")  # and WordNet's own


def test_scores(sentiment):
    assert similarity("a b c d", "a b x d") == 0.75 and similarity("a", "a") == 1.0
    assert 0.8 < char_similarity("it is good", "it isn't good") < 1.0
    assert margin([0.2, 0.8], 1) == pytest.approx(0.6) and margin([0.2, 0.8], 0) == pytest.approx(-0.6)
    assert tokenizer_fit("the film was good", "the film was bad", sentiment.tokenizer) == 1.0
    assert tokenizer_fit("the film was good", "the film was zzyzx", sentiment.tokenizer) < 1.0  # [UNK]
    cfs = _propose(sentiment, ["the film was good"])
    (row,) = score(cfs, sentiment)
    assert (
        row["similarity"] in (0.75, 0.8) and row["margin"] > 0
    )  # a swap, or "not" inserted and row["tokenizer_fit"] == 1.0
    assert set(score(cfs)[0]) == {"similarity", "char_similarity", "margin", "fluency"}


def test_tiny_vocabulary_limits_substitutes(sentiment):
    # Substitutes come only from words the teacher's tokenizer knows (no [UNK] candidates).
    cfs = _propose(sentiment, ["the acting was charming", "the plot was tedious"])
    for cf in cfs:
        for e in cf.edits:
            assert all(w.strip(".,!") in WORDS or w in ("not",) for w in e.new)


def test_alternatives_are_other_flips_of_the_same_size(sentiment):
    (cf,) = _propose(sentiment, ["the film was good"])
    alternatives = cf.extra["alternatives"]
    assert 1 <= len(alternatives) <= 3 and cf.counterfactual not in alternatives
    probs = sentiment.predict_proba(alternatives)
    assert (probs.argmax(axis=1) == cf.target).all()
    assert all(len(a.split()) == 4 for a in alternatives)


def test_a_bfloat16_screen_scores_the_search_and_the_teacher_what_is_kept(sentiment):
    texts = ["The film was a good one.", "the movie was fun to watch", "the plot was good and great and fun"]
    passes = sentiment.forward_passes  # texts no other test scored: the teacher's cache has none of them
    screened = _propose(sentiment, texts, LexicalConfig(screen_precision="bfloat16"))
    passes = sentiment.forward_passes - passes
    exact = _propose(sentiment, texts, LexicalConfig(screen_precision="teacher"))
    assert [cf.flipped for cf in screened] == [True, True, True]
    for cf in screened:  # stored probabilities are the teacher's own, not the copy's
        assert cf.counterfactual_teacher_probs == pytest.approx(
            sentiment.predict_proba([cf.counterfactual])[0].tolist(), abs=1e-6
        )
    # The teacher itself ran only for what was kept (and near-ties), far fewer texts than the search scored.
    assert passes < sum(cf.attempts for cf in screened) / 2
    assert [cf.words_changed for cf in screened] == [cf.words_changed for cf in exact]
    with pytest.raises(ConfigError, match="screen_precision"):
        LexicalConfig(screen_precision="half")


def test_the_teacher_rescores_only_the_screens_near_ties_that_are_kept(sentiment):
    """With every bfloat16 answer counted as a near-tie, the teacher scores the kept flips and their alternatives,
    not every text the search screens (lexical-11; lexical-10 rescored every near-tie as it was screened)."""
    texts = ["the story and the acting of this movie was fun", "a lovely film with a plot and a story"]
    proposer = LexicalProposer(LexicalConfig(screen_precision="bfloat16"), cache_dir=False)
    kit = proposer.kit(sentiment)
    kit.margin = 1.0
    passes = sentiment.forward_passes
    cfs = proposer.propose([Example(t, 1) for t in texts], sentiment)
    passes = sentiment.forward_passes - passes
    assert all(cf.flipped for cf in cfs)
    kept = [t for cf in cfs for t in [cf.counterfactual, *cf.extra.get("alternatives", [])]]
    assert all(sentiment.cached_proba(t) is not None for t in kept)  # each decided by the teacher itself
    assert all(sentiment.cached_proba(t).argmax() == 0 for t in kept)
    assert passes <= len(texts) + len(kept) < sum(cf.attempts for cf in cfs) / 2


def test_a_kept_near_tie_the_teacher_does_not_flip_gives_way_to_the_next(sentiment):
    import numpy as np

    from cod.counterfactuals.slotfit import SlotFit

    proposer = LexicalProposer(LexicalConfig(screen_precision="bfloat16"), cache_dir=False)
    kit = proposer.kit(sentiment)
    words = "the film was good and fun".split()
    one = (Op("sub", 3, "lovely"),)  # a one-word edit the screen (say) called a narrow flip: the teacher does not
    two = (Op("sub", 3, "bad"), Op("sub", 5, "dull"))
    texts = [render(words, one), render(words, two)]
    states = [(one, texts[0], np.array([0.53, 0.47])), (two, texts[1], kit.screen.predict_proba([texts[1]])[0])]
    found, states = proposer._settled_flip(" ".join(words), states, 0, 1, SlotFit(None, words), kit)
    assert sentiment.predict_proba([texts[0]])[0].argmax() == 1
    assert found[0] == texts[1]  # the two-word flip: the one-word near-tie was rescored and does not flip
    assert states[0][2] == pytest.approx(sentiment.predict_proba([texts[0]])[0])  # the beam sees the teacher's


def _wordnet_index(folder):
    """A WordNet database of a few words' index lines (`lemma pos synsets pointers [symbols] senses tagged ...`)."""
    lines = {
        "adj": ["good a 2 1 ! 2 9 01 02", "bad a 2 1 ! 2 5 03 04", "dull a 1 0 1 1 05", "lovely a 1 0 1 0 06"],
        "adv": ["brightly r 1 0 1 1 07", "badly r 1 0 1 1 08"],
        "noun": ["mess n 2 0 2 2 09 10", "film n 3 0 3 3 11 12 13", "good n 1 0 1 1 14", "bad n 1 0 1 0 15"],
        "verb": ["film v 1 0 1 0 16", "bore v 1 0 1 1 17", "go v 2 0 2 2 18 19"],
    }
    for name, rows in lines.items():
        (folder / f"index.{name}").write_text("  1 licence header\n" + "\n".join(rows) + "\n")
    (folder / "data.adj").write_text("")
    (folder / "verb.exc").write_text("went go\n")
    return folder


def test_wordnet_parts_of_speech_from_index_files(tmp_path):
    lexicon = load_lexicon(wordnet=True, wordnet_dir=str(_wordnet_index(tmp_path)))
    assert lexicon.parts_of_speech("Good") == {"a": 10, "n": 2}  # tagged senses + 1
    assert set(lexicon.parts_of_speech("films")) == {"n", "v"} and set(lexicon.parts_of_speech("boring")) == {"v"}
    assert lexicon.parts_of_speech("went") == {"v": 3} and lexicon.parts_of_speech("zzyzx") == {}
    assert lexicon.same_part_of_speech("good", "bad") and lexicon.same_part_of_speech("brightly", "badly")
    assert not lexicon.same_part_of_speech("brightly", "bad")  # an adverb's slot takes no adjective
    assert not lexicon.same_part_of_speech("good", "mess") and not lexicon.same_part_of_speech("good", "zzyzx")
    assert lexicon.same_part_of_speech("zzyzx", "mess")  # WordNet does not know the original: no filter
    assert load_lexicon(wordnet=False).parts_of_speech("good") == {}


def test_substitutes_keep_the_part_of_speech_when_wordnet_knows_it(sentiment, tmp_path):
    words = "the plot was good".split()
    plain = LexicalProposer(LexicalConfig(fluency_model="", substitutes=8), cache_dir=False)
    plain.lexicon = load_lexicon(wordnet=False)
    tagged = LexicalProposer(LexicalConfig(fluency_model="", substitutes=8), cache_dir=False)
    tagged.lexicon = load_lexicon(wordnet=True, wordnet_dir=str(_wordnet_index(tmp_path)))

    def swaps(proposer):
        ops = proposer._candidates(words, 3, 1, 0, proposer.kit(sentiment))
        return {op.word for op in ops if op.kind == "sub" and op.source not in ("negation", "hedge")}

    before, after = swaps(plain), swaps(tagged)
    assert "mess" in before and "mess" not in after  # a noun in an adjective's slot: "the plot was mess"
    assert after and all(tagged.lexicon.same_part_of_speech("good", w) for w in after)


def test_the_originals_of_a_batch_are_scored_in_one_teacher_forward(sentiment, tmp_path):
    texts = ["the film was good .", "a great , fun story .", "it is good ."]
    seen = []
    LexicalProposer(cache_dir=False).kit(sentiment)  # the teacher's own probes, scored before
    forward = sentiment._forward
    sentiment._forward = lambda batch: seen.append(list(batch)) or forward(batch)
    try:
        cfs = LexicalProposer(LexicalConfig(fluency_model=""), cache_dir=tmp_path).propose(
            [Example(t, 1) for t in texts], sentiment
        )
        assert [cf.flipped for cf in cfs] == [True] * 3
        assert seen[0] == texts  # one batch, before the first search
        assert not [b for b in seen if len(b) == 1 and b[0] in texts]  # no search scores its original alone
        seen.clear()  # cached on disk: nothing is scored again, not even the originals
        LexicalProposer(LexicalConfig(fluency_model=""), cache_dir=tmp_path).propose(
            [Example(t, 1) for t in texts], sentiment
        )
        assert seen == []
    finally:
        del sentiment._forward


def test_a_word_with_an_antonym_gets_it_first(sentiment):
    proposer = LexicalProposer(LexicalConfig(fluency_model="", wordnet=False), cache_dir=False)
    ops = proposer._candidates("the plot was bad".split(), 3, 0, 1, proposer.kit(sentiment))
    swaps = [op for op in ops if op.kind == "sub" and op.source != "negation"]
    assert swaps[0] == Op("sub", 3, "good", "antonym")  # the table's antonym, before the lexicon's neighbours
    assert proposer.kit(sentiment).antonyms("good", 1, 2) == []  # already the target's valence: none


def test_a_clauses_own_auxiliary_is_negated_anywhere():
    def negated(text):
        return [render(text.split(), [op]) for op in clause_negations(text.split())]

    assert negated("The Piano Teacher is the sort of movie that discourages audiences.") == [
        "The Piano Teacher isn't the sort of movie that discourages audiences."
    ]
    assert negated("Ice Cube isn't quite out of ideas.") == ["Ice Cube is quite out of ideas."]
    assert negated("The film has lost its way and can't recover.") == ["The film has lost its way and can recover."]
    assert negated("It has worked.") == ["It hasn't worked."]
    assert negated("It would have worked.") == ["It wouldn't have worked."]  # the first auxiliary only
    assert negated("Broomfield has compelling new material.") == []  # "has" a main verb: no auxiliary
    assert negated("Is it good? It was not bad.") == []  # a question's first word; "was" already negated
    assert len(clause_negations("it is , it was , it can , it will".split())) == 2  # the first two


def test_the_clauses_auxiliary_is_negated_when_the_salient_word_is_far_from_it(tmp_path):
    text = "the movie is a story that makes people feel good"
    weights = {"good": (-1.0, 1.0), "isn": (4.0, -4.0)}  # BERT's tokenizer reads "isn't" as "isn", "'", "t"
    teacher = _teacher(make_word_classifier(tmp_path, weights=weights, words=text.split()))
    (cf,) = _propose(teacher, [text], LexicalConfig(wordnet=False))
    assert cf.flipped and cf.counterfactual == "the movie isn't a story that makes people feel good"
    assert cf.extra["ops"] == ["negation:sub@2"]


def test_may_and_might_are_negated_with_not_never_contracted():
    def negations(text, i):
        return [render(text.split(), [op]) for op in negate_near(text.split(), i)]

    assert negations("it may seem dull", 3) == ["it may not seem dull"]  # "mayn't" is not in use
    assert negations("it may have made a sketch", 4) == ["it may not have made a sketch"]  # not "may haven't"
    assert negations("it would have been dull", 4) == ["it wouldn't have been dull", "it would not have been dull"]
    assert negations("it might seem dull", 3) == ["it might not seem dull"]
    assert negations("it will seem dull", 3) == ["it won't seem dull", "it will not seem dull"]


def test_not_goes_after_the_adverb_that_follows_an_auxiliary_too():
    """lexical-16: "is definitely a director to watch" -> "is definitely not a director to watch" (beside "isn't
    definitely", which reads badly), and the adverb's auxiliary still counts once toward the limit."""

    def negated(text):
        return [render(text.split(), [op]) for op in clause_negations(text.split())]

    assert negated("Angel is definitely a director to watch.") == [
        "Angel isn't definitely a director to watch.",
        "Angel is definitely not a director to watch.",
    ]
    assert negated("It is only fun.") == ["It isn't only fun."]  # "only": too short to be an -ly adverb
    assert negated("It is lovely and fun.") == ["It isn't lovely and fun."]  # an adjective
    assert negated("It is really, truly fun.") == ["It isn't really, truly fun."]  # punctuation after the adverb
    assert len(clause_negations("it is surely , it was , it can".split())) == 3  # two auxiliaries, three ops
