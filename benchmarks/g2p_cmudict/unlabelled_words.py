"""Words for distillation: an English word list's words that the CMU dictionary does not list.

Usage: python benchmarks/g2p_cmudict/unlabelled_words.py --words /usr/share/dict/american-english-large --out W

Keeps lower-case words of letters, apostrophes and hyphens (at least two characters, starting and ending with a
letter), drops possessives (``'s``: the dictionary's rule, not a new spelling) and every word the embedded
dictionary lists, in any variant. The bundled system's network only ever answers such words (the dictionary
answers the others), so they are what a smaller network distilled from the system must get right.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.resources
import re

WORD = re.compile(r"[a-z][a-z'\-]*[a-z]")


def dictionary_words() -> set[str]:
    path = importlib.resources.files("biseq") / "resources" / "cmudict.dict.gz"
    with gzip.open(str(path), "rt", encoding="utf-8") as lines:
        return {re.sub(r"\(\d+\)$", "", line.split(maxsplit=1)[0]) for line in lines if line.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", required=True, help="a word list, one word per line")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    known = dictionary_words()
    with open(args.words, encoding="utf-8", errors="replace") as f:
        words = sorted({w for w in (line.strip() for line in f)
                        if WORD.fullmatch(w) and not w.endswith("'s") and w not in known})
    with open(args.out, "w", encoding="utf-8") as out:
        out.writelines(w + "\n" for w in words)
    print(f"{len(words)} words not in the dictionary -> {args.out}")


if __name__ == "__main__":
    main()
