"""Where the offline proposer may add or remove a negation, and how it is written: English's own rules, no model.

`negate_near` negates the clause around a salient word (its auxiliary up to three words back, or a contrast after a
comma); `clause_negations` negates (or frees) the text's first auxiliaries wherever they stand; `negated_aux` and
`freed_aux` write an auxiliary's two forms ("is" <-> "isn't", "can" <-> "can't") in the token's case and punctuation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from cod.counterfactuals.edits import Op, replace_core, sentence_start, split_word
from cod.counterfactuals.lexicon import AUX_NEGATED, AUXILIARIES, NEGATED_AUX, NEGATORS

# After these, "not" is no negation ("an not interesting"), and do/does/has... are main verbs ("Does an impressive
# job" has no auxiliary to negate: "Does not an impressive job" is not English).
DETERMINERS = set(
    "a an the this that these those my your his her its our their some any every each no another such".split()
)
MAIN_VERB_AUX = {"do", "does", "did", "has", "have", "had"}
# Auxiliaries negated anywhere in the text (`clause_negations`): those whose "n't" form is plain English.
CLAUSE_AUXILIARIES = {"is", "are", "was", "were", "can", "could", "will", "would", "should", "has", "have", "had"}
CLAUSE_NEGATIONS = 2  # at most this many per text, the first ones
# -ly words that are adjectives ("is lovely and fun" -> never "is lovely not and fun")
ADJECTIVES_IN_LY = frozenset(
    "lovely friendly unfriendly silly ugly lonely lively costly deadly daily weekly elderly family holy jolly smelly "
    "chilly bubbly curly oily early likely unlikely manly womanly cowardly scholarly orderly worldly homely kindly "
    "motherly fatherly brotherly sisterly ghostly beastly heavenly courtly stately timely untimely".split()
)


def negated_aux(token: str) -> str:
    """An auxiliary with "n't", in the token's case and punctuation ("is" -> "isn't", "Will," -> "Won't,")."""
    lower = split_word(token)[1].lower()
    return replace_core(token, AUX_NEGATED.get(lower, lower + "n't"))


def freed_aux(token: str) -> str:
    """A negated auxiliary without its negation ("isn't" -> "is", "can't" -> "can", "cannot" -> "can")."""
    lower = split_word(token)[1].lower()
    return replace_core(token, NEGATED_AUX.get(lower, lower[:-3]))


def clause_negations(words: Sequence[str], limit: int = CLAUSE_NEGATIONS) -> list[Op]:
    """The first `limit` auxiliaries of the text negated ("is" -> "isn't") or freed of their negation ("isn't" ->
    "is"): a clause's own negation, which reads as English wherever the auxiliary is one. Not a sentence's first
    word (a question), not one already negated by the next word ("is not") or after another auxiliary ("would have"),
    and "has"/"have"/"had" only before a past participle ("has lost" -> "hasn't lost"; "has compelling material"
    has no auxiliary)."""
    ops: list[Op] = []
    taken = 0  # auxiliaries negated (an adverb after one gives it two ops)
    for j, token in enumerate(words):
        _, core, suffix = split_word(token)
        lower = core.lower()
        after = split_word(words[j + 1])[1].lower() if j + 1 < len(words) else ""
        before = split_word(words[j - 1])[1].lower() if j > 0 else ""
        if taken >= limit or suffix or sentence_start(words, j) or after in NEGATORS or before in AUXILIARIES:
            continue  # "would have worked": the first auxiliary takes the negation
        if lower in NEGATED_AUX or (lower.endswith("n't") and lower[:-3] in CLAUSE_AUXILIARIES):
            ops.append(Op("sub", j, freed_aux(token), "negation"))
            taken += 1
        elif lower in CLAUSE_AUXILIARIES and (lower not in MAIN_VERB_AUX or re.search(r"(ed|en)$", after)):
            ops.append(Op("sub", j, negated_aux(token), "negation"))
            adverb = re.fullmatch(r"[a-z]{3,}ly", after) and after not in ADJECTIVES_IN_LY
            if adverb and not split_word(words[j + 1])[2] and j + 2 < len(words):
                # "is definitely a director to watch" -> "is definitely not a director" (also: "isn't definitely")
                ops.append(Op("ins", j + 2, "not", "negation"))
            taken += 1
    return ops


def negate_near(words: Sequence[str], i: int) -> list[Op]:
    """Negate near word i: an auxiliary up to 3 words back gets "n't" or a "not" after it; else "not" before i."""
    for j in range(i - 1, max(i - 4, -1), -1):
        _, core, suffix = split_word(words[j])
        lower = core.lower()
        if suffix and j < i - 1:
            break  # punctuation ends the clause
        if lower in AUXILIARIES:
            if j > 0 and split_word(words[j - 1])[1].lower() in AUXILIARIES and not split_word(words[j - 1])[2]:
                j -= 1  # "may have made": the first auxiliary takes it ("may not have", never "may haven't")
                lower = split_word(words[j])[1].lower()
            after = split_word(words[j + 1])[1].lower()
            if lower in MAIN_VERB_AUX and (after in DETERMINERS or after.endswith("'s")):
                return []  # "does an impressive job": a main verb; "doesn't an", "does not an" are not English
            contracted = [Op("sub", j, negated_aux(words[j]), "negation")]
            # "may not", never "mayn't" (nor "mightn't"): no contraction where English has none in use
            return (contracted if lower not in ("may", "might") else []) + [Op("ins", j + 1, "not", "negation")]
        if re.match(r"^\w+'(s|re)$", lower):  # "it's", "they're": "not" goes right after
            return [Op("ins", j + 1, "not", "negation")]
    lower = split_word(words[i])[1].lower()
    if re.search(r"[^s]s$|ed$", lower):
        return []  # likely a finite verb or a plural ("not captures"): no auxiliary to negate, so no "not"
    if i > 0 and split_word(words[i - 1])[1].lower() in DETERMINERS:
        return []  # "an not interesting": "not" cannot follow an article or a possessive
    if sentence_start(words, i):
        return []  # "Not Rousing throwback and ..." is not English: a sentence's first word keeps its place
    if not words[i - 1].endswith(","):
        return []  # no auxiliary to negate: "and not ably captures", "Spare not yet audacious" are not English
    return [Op("ins", i, "not", "negation")]  # a contrast in a list: "sweet, not charming"
