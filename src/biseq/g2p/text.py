"""English text to the words a pronouncing dictionary lists: what a TTS front end does first.

``words("The 3rd of May, 1999: rock-'n'-roll!")`` gives
``["the", "third", "of", "may", "nineteen", "ninety", "nine", "rock-'n'-roll"]``:

* Unicode is folded to NFKC, curly apostrophes and dashes to ASCII, and case to lower case
  (the CMU dictionary is lower case);
* words are split from punctuation; an apostrophe or a hyphen inside a word stays
  (``don't``, ``rock-'n'-roll``, ``o'clock``); quotes around a word go (``'hello'`` -> ``hello``);
* numbers become words with ``inflect`` (imported only when a digit is seen): cardinals
  (``42``, ``1,000``, ``3.5``), ordinals (``3rd``, ``21st``), years read as years
  (``1999`` nineteen ninety nine, ``1905`` nineteen oh five, ``2024`` twenty twenty four;
  1100-1999 and 2010-2099) and plural decades (``1990s`` nineteen nineties). Hyphenated number
  words are split (``ninety-nine`` -> ``ninety nine``): the dictionary lists the parts.
"""

from __future__ import annotations

import functools
import re
import unicodedata

_FOLD = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'", "`": "'",
                       "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-"})
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u200e\u200f\u202a\u202b\u202c\u202d\u202e"))
_LETTERS = r"[^\W\d_]"
_TOKEN = re.compile(
    rf"(?P<number>\d+(?:,\d{{3}})*(?:\.\d+)?(?P<suffix>st|nd|rd|th|s)?(?!\w))"
    rf"|(?P<word>'?{_LETTERS}+(?:(?:-?'-?|-){_LETTERS}+)*'?)"
)


def fold(text: str) -> str:
    """NFKC, ASCII apostrophes and hyphens, no zero-width or direction marks, lower case."""
    return unicodedata.normalize("NFKC", text).translate(_FOLD).translate(_INVISIBLE).lower()


def check_word(word: str, *, max_length: int = 0) -> tuple[str, str | None]:
    """``(folded word, problem)``: ``problem`` is ``None`` or what is wrong with ``word`` as one word
    ("is empty", "has spaces inside", "is longer than N characters" when ``max_length`` is set)."""
    clean = fold(word).strip()
    if not clean:
        return clean, "is empty"
    if any(c.isspace() for c in clean):
        return clean, "has spaces inside"
    if max_length and len(clean) > max_length:
        return clean, f"is longer than {max_length} characters"
    return clean, None


@functools.cache
def _inflect():
    import inflect

    return inflect.engine()


def _number_words(digits: str, suffix: str) -> list[str]:
    """``"1999", ""`` -> ``["nineteen", "ninety", "nine"]``; ``"3", "rd"`` -> ``["third"]``."""
    engine = _inflect()
    plain = digits.replace(",", "")
    if suffix in ("st", "nd", "rd", "th"):
        text = engine.number_to_words(engine.ordinal(plain.split(".")[0]), andword="")
    else:
        text = _cardinal(plain)
        if suffix == "s":  # "1990s": the last word in the plural
            head, _, last = text.rpartition(" ")
            text = f"{head} {engine.plural(last)}".strip()
    return [w for w in re.split(r"[\s,-]+", text) if w]


def _cardinal(plain: str) -> str:
    engine = _inflect()
    if "." not in plain and len(plain) == 4:
        year = int(plain)
        if 1100 <= year <= 1999 or 2010 <= year <= 2099:
            if year % 100 == 0:
                return f"{engine.number_to_words(year // 100)} hundred"
            return engine.number_to_words(plain, group=2, zero="oh")
    return engine.number_to_words(plain, andword="")


def words(text: str, *, expand_numbers: bool = True) -> list[str]:
    """The words of ``text``, folded (see the module docstring); punctuation and symbols dropped.

    Args:
        text: any text, e.g. ``"The 3 quick foxes!"``.
        expand_numbers: spell numbers out (``True``) or drop them (``False``).

    Returns:
        Lower-case words, e.g. ``["the", "three", "quick", "foxes"]``.
    """
    found: list[str] = []
    for match in _TOKEN.finditer(fold(text)):
        if match.group("number") is not None:
            if expand_numbers:
                suffix = match.group("suffix") or ""
                found.extend(_number_words(match.group("number")[: len(match.group("number")) - len(suffix)],
                                           suffix))
        else:
            found.append(match.group("word").strip("'"))
    return [w for w in found if w.strip("'-")]
