"""Word resources for the offline proposer: VADER's sentiment lexicon (PyPI), a shipped antonym table drawn from
WordNet (`antonyms.tsv`, rebuilt by `bench/build_antonyms.py`), and, when installed, WordNet itself.

VADER (`vaderSentiment/vader_lexicon.txt`, MIT) gives about 7,200 English words a valence in [-4, 4].
WordNet is optional: Debian's `wordnet-base` puts its database in /usr/share/wordnet; we read the antonym
pointers straight from its `data.*` files and each word's parts of speech from its `index.*` and `*.exc` files (a
documented, stable format), so neither NLTK nor its extra `lexnames` file is needed.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from cod.errors import ProposerError

LEXICON_VERSION = "vader-3.3.2+antonyms-1"
ANTONYMS_FILE = Path(__file__).with_name("antonyms.tsv")  # word<TAB>antonym,antonym...; see `build_antonym_table`
# Prefixes that negate an adjective, adverb or verb ("unfunny", "insecure", "dislikes"): a morphological antonym.
NEGATING_PREFIXES = ("un", "in", "im", "il", "ir", "dis")
ANTONYMS_PER_WORD = 4
WORDNET_DIRS = ("/usr/share/wordnet",)  # COD_WORDNET_DIR, when set, is tried first

# Negators and their removals; "n't" forms lose the suffix (with the irregular ones spelled out).
NEGATORS = {"not", "no", "never", "n't", "nothing", "none", "nobody", "nowhere", "neither", "nor", "cannot", "without"}
NEGATED_AUX = {"can't": "can", "won't": "will", "shan't": "shall", "ain't": "is", "cannot": "can"}
AUXILIARIES = {
    "is",
    "was",
    "are",
    "were",
    "do",
    "does",
    "did",
    "has",
    "have",
    "had",
    "can",
    "could",
    "will",
    "would",
    "should",
    "must",
    "may",
    "might",
}
AUX_NEGATED = {"can": "can't", "will": "won't", "shall": "shan't"}  # otherwise aux + "n't"
# Intensifiers a hedge can replace ("very good" -> "hardly good"), and the hedges themselves.
INTENSIFIERS = {
    "very",
    "really",
    "so",
    "extremely",
    "truly",
    "incredibly",
    "highly",
    "absolutely",
    "totally",
    "remarkably",
    "genuinely",
    "thoroughly",
    "deeply",
    "utterly",
    "quite",
    "most",
    "always",
}
HEDGES = ("hardly", "barely", "rarely")
# Words left out of substitutes: slurs, profanity and violence would make training data no one wants.
_BLOCKED_STEMS = (
    "fuck",
    "fuk",
    "shit",
    "bitch",
    "cock",
    "dick",
    "nigg",
    "fag",
    "slut",
    "whore",
    "twat",
    "cunt",
    "rape",
    "rapist",
    "douche",
    "bastard",
    "pussy",
    "piss",
    "damn",
    "kill",
    "murder",
    "terror",
    "suicid",
    "molest",
    "slave",
    "racis",
    "cancer",
    "torture",
    "abuse",
    "abusive",
    "dead",
    "death",
    "hell",
    "devil",
    "asshole",
    "retard",
    "porn",
    "sex",
    "nazi",
    "genocid",
    "massacre",
    "victim",
    "bomb",
    "weapon",
    "gun",
)
_WORD_RE = re.compile(r"^[a-z][a-z'-]*[a-z]$")


@dataclass
class Lexicon:
    """Word valences (VADER, lowercase words only) and WordNet antonyms (empty when WordNet is absent)."""

    valence: dict[str, float]
    antonym_map: dict[str, list[str]] = field(default_factory=dict)
    version: str = LEXICON_VERSION
    pos_map: dict[str, dict[str, int]] = field(default_factory=dict)  # WordNet lemma -> {pos: weight}
    exceptions: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # irregular form -> [(pos, lemma)]

    def polarity(self, word: str) -> float:
        """The word's valence in [-4, 4]; 0.0 when the lexicon does not know it."""
        return self.valence.get(word.lower(), 0.0)

    def antonyms(self, word: str) -> list[str]:
        """Antonyms of the word: the shipped table's (`antonyms.tsv`, WordNet's and morphological ones with valence),
        then, with WordNet installed, WordNet's own (direct first, then through similar adjectives)."""
        return self.antonym_map.get(word.lower(), [])

    def parts_of_speech(self, word: str) -> dict[str, int]:
        """WordNet's parts of speech of the word as written ('n', 'v', 'a', 'r'), each weighed by its senses tagged
        in WordNet's corpus plus one, through WordNet's inflection rules ("films" -> film, "bogged" -> bog);
        {} without WordNet or when WordNet does not know the word."""
        out: dict[str, int] = {}
        for pos, lemma in lemmas(word.lower(), self.exceptions):
            weight = self.pos_map.get(lemma, {}).get(pos)
            if weight is not None and (lemma == word.lower() or pos != "r"):
                out[pos] = max(out.get(pos, 0), weight)
        return out

    def same_part_of_speech(self, word: str, substitute: str) -> bool:
        """Whether `substitute`'s most frequent part of speech is a frequent one of `word`'s (weighing at least half
        its most frequent): always, when WordNet does not know `word`; never, when it knows `word` but not
        `substitute`. "brightly" takes no adjective ("bad"), "good" no noun ("mess"), "interesting" (an adjective
        or a verb's form) takes "uninteresting"."""
        mine = self.parts_of_speech(word)
        if not mine:
            return True
        theirs = self.parts_of_speech(substitute)
        frequent = {p for p, weight in mine.items() if 2 * weight >= max(mine.values())}
        return bool(theirs) and max(theirs, key=lambda p: (theirs[p], p)) in frequent

    def substitutes(self) -> list[str]:
        """Lexicon words usable as replacements: plain words, nothing offensive."""
        return [w for w in self.valence if usable_word(w)]


def usable_word(word: str) -> bool:
    """A plain lowercase word of 3+ letters with a vowel, and not blocked as offensive."""
    return (
        bool(_WORD_RE.match(word))
        and len(word) >= 3
        and bool(re.search(r"[aeiouy]", word))
        and not any(stem in word for stem in _BLOCKED_STEMS)
    )


def vader_path() -> Path:
    """Where the installed vaderSentiment package keeps its lexicon."""
    spec = importlib.util.find_spec("vaderSentiment")
    if spec is None or not spec.submodule_search_locations:
        raise ProposerError(
            "The lexical proposer needs the vaderSentiment package's lexicon: run `pip install vaderSentiment==3.3.2`."
        )
    path = Path(spec.submodule_search_locations[0]) / "vader_lexicon.txt"
    if not path.exists():
        raise ProposerError(f"{path} is missing: reinstall vaderSentiment==3.3.2.")
    return path


def read_vader(path: str | Path) -> dict[str, float]:
    """Parse VADER's `word<TAB>valence<TAB>...` lines into {lowercase word: valence}; emoticons are skipped."""
    valence: dict[str, float] = {}
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) < 2 or not re.match(r"^[a-z][a-z'-]*$", parts[0]):
            continue
        try:
            valence[parts[0]] = float(parts[1])
        except ValueError:
            continue
    return valence


def find_wordnet(candidates: tuple[str, ...] | None = None) -> Path | None:
    """The first folder holding WordNet's `data.adj`, or None."""
    dirs = (
        candidates
        if candidates is not None
        else tuple(filter(None, [os.environ.get("COD_WORDNET_DIR")])) + WORDNET_DIRS
    )
    for d in dirs:
        if (Path(d) / "data.adj").exists():
            return Path(d)
    return None


def read_wordnet_antonyms(folder: str | Path, indirect: bool = True) -> dict[str, list[str]]:
    """Antonyms from WordNet's data files: direct lexical pointers ('!'), then (with `indirect`) those of a satellite
    adjective's head through '&'.

    A data line reads `offset lex_filenum ss_type w_cnt(hex) word lex_id ... p_cnt ptr... | gloss`, each
    pointer `symbol offset pos source/target(hex 4)`; see wndb(5WN).
    """
    synsets: dict[tuple[str, str], list[str]] = {}  # (pos, offset) -> words
    pointers: list[
        tuple[str, str, str, str, str, str]
    ] = []  # (pos, offset, symbol, target offset, target pos, src/tgt)
    for pos, name in (("a", "adj"), ("r", "adv"), ("v", "verb")):
        path = Path(folder) / f"data.{name}"
        if not path.exists():
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(" "):
                    continue  # licence header
                fields = line.split(" | ")[0].split()
                offset, w_cnt = fields[0], int(fields[3], 16)
                words = [re.sub(r"\(.*\)$", "", fields[4 + 2 * i]).lower() for i in range(w_cnt)]
                synsets[(pos, offset)] = words
                i = 4 + 2 * w_cnt
                for k in range(int(fields[i])):
                    sym, tgt, tpos, st = fields[i + 1 + 4 * k : i + 5 + 4 * k]
                    if sym in {"!", "&"}:
                        pointers.append((pos, offset, sym, tgt, "a" if tpos == "s" else tpos, st))
    direct: dict[str, list[str]] = {}
    antonym_synsets: dict[tuple[str, str], list[tuple[str, str]]] = {}
    similar: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for pos, offset, sym, tgt, tpos, st in pointers:
        if sym == "&":
            similar.setdefault((pos, offset), []).append((tpos, tgt))
            continue
        src_words, tgt_words = synsets.get((pos, offset), []), synsets.get((tpos, tgt), [])
        s, t = int(st[:2], 16), int(st[2:], 16)
        if 0 < s <= len(src_words) and 0 < t <= len(tgt_words):
            direct.setdefault(src_words[s - 1], []).append(tgt_words[t - 1])
        antonym_synsets.setdefault((pos, offset), []).append((tpos, tgt))
    out = {w: list(dict.fromkeys(a)) for w, a in direct.items()}
    # Satellite adjectives ("brilliant") have no antonym of their own: take their head's antonym synsets' words.
    for key, heads in similar.items() if indirect else ():
        for head in heads:
            for anti in antonym_synsets.get(head, []):
                for word in synsets.get(key, []):
                    out.setdefault(word, [])
                    for a in synsets.get(anti, []):
                        if a not in out[word]:
                            out[word].append(a)
    return {w: [a for a in ants if "_" not in a and a != w] for w, ants in out.items() if "_" not in w}


def _third_person(verb: str) -> str:
    """The regular third-person singular of a verb ("fail" -> "fails", "deny" -> "denies", "pass" -> "passes")."""
    if re.search(r"[^aeiou]y$", verb):
        return verb[:-1] + "ies"
    if re.search(r"(s|x|z|ch|sh|o)$", verb):
        return verb + "es"
    return verb + "s"


def _adverb(adjective: str) -> str:
    """The regular -ly adverb of an adjective ("happy" -> "happily", "able" -> "ably", "tragic" -> "tragically")."""
    if re.search(r"[^aeiou]y$", adjective):
        return adjective[:-1] + "ily"
    if adjective.endswith("le") and len(adjective) > 3:
        return adjective[:-1] + "y"
    if adjective.endswith("ic"):
        return adjective + "ally"
    return adjective + "ly"


def build_antonym_table(folder: str | Path, valence: dict[str, float]) -> dict[str, list[str]]:
    """{word: antonyms} for the offline proposer, from a WordNet database and VADER's valences: WordNet's antonyms
    (`read_wordnet_antonyms`) and morphological ones (a negating prefix on a WordNet lemma of the same part of speech:
    "funny" / "unfunny", "secure" / "insecure"), both ways, with the regular third person of verbs ("fails" /
    "succeeds") and -ly adverbs WordNet lists ("happily" / "unhappily"). A pair is kept when the two words' VADER
    valences differ in sign and one is not 0 (a swap that can move a sentiment teacher), both are plain usable words
    (`usable_word`), and a word keeps its first `ANTONYMS_PER_WORD` antonyms (WordNet's direct ones first)."""
    pos_map, _ = read_wordnet_pos(folder)
    direct, wordnet = read_wordnet_antonyms(folder, indirect=False), read_wordnet_antonyms(folder)

    def sign(w: str) -> float:
        v = valence.get(w, 0.0)
        return (v > 0) - (v < 0)

    def keeps(w: str, a: str) -> bool:
        return w != a and usable_word(w) and usable_word(a) and sign(w) != sign(a) and bool(sign(w) or sign(a))

    def verb(w: str, a: str) -> bool:
        shared = {p for p in pos_map.get(w, {}) if p in ("a", "r", "v")} & set(pos_map.get(a, {}))
        return shared == {"v"}

    # (rank, word, antonym): a word's own direct antonyms first, then morphological ones, then those whose direct
    # antonym it is, then its satellite head's (WordNet's indirect ones: "superior" -> "inferior" before "cheap").
    pairs: list[tuple[int, str, str]] = []
    for w, ants in direct.items():
        pairs += [(0, w, a) for a in ants] + [(2, a, w) for a in ants]
    for w, parts in pos_map.items():
        for prefix in NEGATING_PREFIXES:
            base = w[len(prefix) :]
            if w.startswith(prefix) and len(base) >= 4:
                if {p for p in parts if p in ("a", "r", "v")} & set(pos_map.get(base, {})):
                    pairs += [(1, base, w), (1, w, base)]
    for w, ants in wordnet.items():
        pairs += [(3, w, a) for a in ants] + [(3, a, w) for a in ants]
    adverbs = {w for w, parts in pos_map.items() if "r" in parts}
    ranked: dict[str, dict[str, int]] = {}

    def add(rank: int, w: str, a: str) -> None:
        if keeps(w, a):
            mine = ranked.setdefault(w, {})
            mine[a] = min(mine.get(a, rank), rank)

    for rank, w, a in pairs:
        add(rank, w, a)
        if verb(w, a):  # a form's pair is judged by the forms' own valences, like any pair
            add(rank, _third_person(w), _third_person(a))
        if _adverb(w) in adverbs and _adverb(a) in adverbs:
            add(rank, _adverb(w), _adverb(a))
    # Within a rank, antonyms of the opposite valence before neutral ones, then in WordNet's order.
    order = {(w, a): k for k, (_, w, a) in enumerate(pairs)}
    table = {
        w: sorted(ants, key=lambda a: (ants[a], sign(a) == 0, order.get((w, a), len(order))))
        for w, ants in ranked.items()
    }
    return {w: ants[:ANTONYMS_PER_WORD] for w, ants in sorted(table.items()) if ants}


def write_antonym_table(table: dict[str, list[str]], path: str | Path = ANTONYMS_FILE) -> None:
    """`table` as `word<TAB>antonym,antonym` lines, sorted, after a header naming its source."""
    lines = [
        "# Antonyms for the offline proposer: WordNet 3.0's (WordNet 3.0 Copyright 2006 by Princeton University. "
        "All rights reserved; its licence and disclaimer: antonyms-LICENSE.txt beside this file) and morphological "
        "ones, built from Debian's wordnet-base and VADER 3.3.2 by bench/build_antonyms.py."
    ]
    lines += [f"{w}\t{','.join(ants)}" for w, ants in sorted(table.items())]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


@functools.lru_cache(maxsize=2)
def read_antonym_table(path: str | Path = ANTONYMS_FILE) -> dict[str, list[str]]:
    """The shipped antonym table (`write_antonym_table`'s format); a clear error when the file is missing."""
    path = Path(path)
    if not path.exists():
        raise ProposerError(f"{path} is missing: rebuild it with `python bench/build_antonyms.py` or reinstall cod.")
    table: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            word, _, ants = line.partition("\t")
            table[word] = [a for a in ants.split(",") if a]
    return table


# WordNet's detachment rules (morphy, wndb(5WN)): an inflected form's ending -> the lemma's.
MORPHY_RULES = {
    "n": (
        ("s", ""),
        ("ses", "s"),
        ("xes", "x"),
        ("zes", "z"),
        ("ches", "ch"),
        ("shes", "sh"),
        ("men", "man"),
        ("ies", "y"),
    ),
    "v": (("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")),
    "a": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
    "r": (),
}
WORDNET_POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}


def lemmas(word: str, exceptions: dict[str, list[tuple[str, str]]]) -> list[tuple[str, str]]:
    """(pos, lemma) pairs a lowercase word may be a form of: itself, WordNet's irregular forms, its rules' stems."""
    out = [(pos, word) for pos in MORPHY_RULES] + exceptions.get(word, [])
    for pos, rules in MORPHY_RULES.items():
        out += [
            (pos, word[: -len(end)] + base) for end, base in rules if word.endswith(end) and len(word) > len(end) + 1
        ]
    return out


def read_wordnet_pos(folder: str | Path) -> tuple[dict[str, dict[str, int]], dict[str, list[tuple[str, str]]]]:
    """({lemma: {pos: tagged senses + 1}} from WordNet's index files, {irregular form: [(pos, lemma)]} from its
    `.exc` files). An index line reads `lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt
    synset_offset...`; see wndb(5WN)."""
    pos_map: dict[str, dict[str, int]] = {}
    exceptions: dict[str, list[tuple[str, str]]] = {}
    for pos, name in WORDNET_POS_FILES.items():
        index, exc = Path(folder) / f"index.{name}", Path(folder) / f"{name}.exc"
        if index.exists():
            for line in index.read_text(encoding="utf-8", errors="replace").splitlines():
                fields = line.split()
                if line.startswith(" ") or len(fields) < 6 or "_" in fields[0]:
                    continue
                tagged = int(fields[5 + int(fields[3])])
                pos_map.setdefault(fields[0], {})[pos] = tagged + 1
        if exc.exists():
            for line in exc.read_text(encoding="utf-8", errors="replace").splitlines():
                fields = line.split()
                if len(fields) >= 2:
                    exceptions.setdefault(fields[0], []).extend((pos, lemma) for lemma in fields[1:])
    return pos_map, exceptions


@functools.lru_cache(maxsize=4)
def load_lexicon(wordnet: bool = True, wordnet_dir: str | None = None) -> Lexicon:
    """VADER's lexicon and the shipped antonym table, plus WordNet's antonyms and parts of speech when `wordnet` and a
    WordNet database is found."""
    valence = read_vader(vader_path())
    table = read_antonym_table()
    folder = find_wordnet((wordnet_dir,) if wordnet_dir else None) if wordnet else None
    if folder is None:
        return Lexicon(valence=valence, antonym_map=table)
    pos_map, exceptions = read_wordnet_pos(folder)
    live = read_wordnet_antonyms(folder)
    antonyms = {w: list(dict.fromkeys(table.get(w, []) + live.get(w, []))) for w in set(table) | set(live)}
    return Lexicon(valence, antonyms, LEXICON_VERSION + "+wordnet-3.0", pos_map, exceptions)
