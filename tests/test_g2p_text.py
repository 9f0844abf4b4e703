"""English text to dictionary words, and the pronouncing dictionary reader (no Keras needed)."""

import gzip

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biseq.corpus import DataError
from biseq.g2p.dictionary import PronouncingDictionary, strip_stress
from biseq.g2p.text import fold, words


@pytest.mark.parametrize(("text", "expected"), [
    ("The 3 quick foxes!", ["the", "three", "quick", "foxes"]),
    ("Don’t stop—rock-'n'-roll", ["don't", "stop", "rock-'n'-roll"]),
    ("'hello' \"world\"", ["hello", "world"]),
    ("foo--bar", ["foo", "bar"]),
    ("the 3rd of May, 1999", ["the", "third", "of", "may", "nineteen", "ninety", "nine"]),
    ("in 1905 and 2024", ["in", "nineteen", "oh", "five", "and", "twenty", "twenty", "four"]),
    ("1900 1990s", ["nineteen", "hundred", "nineteen", "nineties"]),
    ("1,000 3.5 21st", ["one", "thousand", "three", "point", "five", "twenty", "first"]),
    ("2001", ["two", "thousand", "one"]),
    ("ＡＢＣ\u200bdef", ["abcdef"]),
    ("naïve café", ["naïve", "café"]),
    ("", []),
    ("... !!! ---", []),
])
def test_words(text, expected):
    assert words(text) == expected


def test_numbers_can_be_dropped():
    assert words("call 911 now", expand_numbers=False) == ["call", "now"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40))
def test_words_are_folded_single_tokens(text):
    found = words(text)
    for word in found:
        assert word and not any(c.isspace() for c in word)
        assert word == fold(word)
        assert word.strip("'-") and not word.startswith("'") and not word.endswith("'")
        assert not any(c.isdigit() for c in word)
    assert words(" ".join(found)) == found  # idempotent on its own output


def test_dictionary_variants_in_order_and_case_insensitive(tmp_path):
    path = tmp_path / "d.dict.gz"
    with gzip.open(path, "wt") as f:
        f.write(";;; comment\nread  R IY1 D\nread(2)  R EH1 D # past\nread(3) R IY1 D\n\nA  AH0\n")
    d = PronouncingDictionary.read(path)
    assert d.lookup("READ") == ["R IY1 D", "R EH1 D"] and d.lookup("a") == ["AH0"] and d.lookup("b") == []
    assert "Read" in d and len(d) == 2
    assert strip_stress("R EH1 D AH0") == "R EH D AH"


def test_a_parsed_dictionary_is_cached_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("BISEQ_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "d.dict"
    filler = "".join(f"w{i}  W AH1 N\n" for i in range(6000))  # large enough to be cached
    small = tmp_path / "small.dict"
    small.write_text("read  R IY1 D\n")
    assert PronouncingDictionary.read(small).lookup("read") == ["R IY1 D"]
    assert not (tmp_path / "cache").exists()  # a small file is just parsed
    path.write_text("read  R IY1 D\nread(2)  R EH1 D\n" + filler)
    first = PronouncingDictionary.read(path)
    cached = list((tmp_path / "cache").glob("dictionary-*.marshal"))
    assert len(cached) == 1
    again = PronouncingDictionary.read(path)  # from the cache
    assert again.lookup("read") == first.lookup("read") == ["R IY1 D", "R EH1 D"] and len(again) == 6001
    path.write_text("read  R EH1 D\n" + filler)  # new content: parsed again, not the old cache
    assert PronouncingDictionary.read(path).lookup("read") == ["R EH1 D"]
    cached[0].write_bytes(b"\x00garbage")  # a damaged cache is passed over
    path.write_text("read  R IY1 D\nread(2)  R EH1 D\n" + filler)
    assert PronouncingDictionary.read(path).lookup("read") == ["R IY1 D", "R EH1 D"]
    bad = tmp_path / "bad.dict"
    bad.write_text("world\n" + filler)
    with pytest.raises(DataError, match="line 1"):  # errors are never cached away
        PronouncingDictionary.read(bad)
    with pytest.raises(DataError, match="line 1"):
        PronouncingDictionary.read(bad)


def test_dictionary_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.dict"
    bad.write_text("hello  HH AH0 L OW1\nworld\n")
    with pytest.raises(DataError, match=r"bad.dict, line 2: expected 'WORD PH1 PH2 \.\.\.'.*found 'world'"):
        PronouncingDictionary.read(bad)
    with pytest.raises(DataError, match="not found"):
        PronouncingDictionary.read(tmp_path / "missing.dict")
    latin = tmp_path / "latin.dict"
    latin.write_bytes(b"caf\xe9  K AE0 F EY1\n")
    with pytest.raises(DataError, match="not UTF-8"):
        PronouncingDictionary.read(latin)
