"""Rebuild the offline proposer's shipped antonym table, `cod/counterfactuals/antonyms.tsv`, from a WordNet database.

The table gives the lexical search antonyms without WordNet installed (PyPI only): WordNet 3.0's antonyms and
morphological ones ("funny" / "unfunny") of words with a VADER valence, as `cod.counterfactuals.lexicon.
build_antonym_table` chooses them. WordNet's licence allows redistribution with its notice (the file's header).

    apt-get install -y wordnet-base   # Debian's WordNet 3.0 database, in /usr/share/wordnet
    .venv/bin/python bench/build_antonyms.py [--wordnet /usr/share/wordnet] [--out cod/counterfactuals/antonyms.tsv]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    """Build the table and print its size."""
    from cod.counterfactuals.lexicon import (
        ANTONYMS_FILE,
        build_antonym_table,
        read_vader,
        vader_path,
        write_antonym_table,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet", default="/usr/share/wordnet", help="folder with WordNet's data.* and index.*")
    parser.add_argument("--out", default=str(ANTONYMS_FILE), help="where the table goes")
    args = parser.parse_args()
    if not (Path(args.wordnet) / "data.adj").exists():
        sys.exit(f"No WordNet database in {args.wordnet}: `apt-get install -y wordnet-base` or pass --wordnet.")
    table = build_antonym_table(args.wordnet, read_vader(vader_path()))
    write_antonym_table(table, args.out)
    print(f"{len(table)} words, {sum(map(len, table.values()))} antonyms -> {args.out}")


if __name__ == "__main__":
    main()
