import gzip

import pytest

from biseq.config import DataConfig
from biseq.corpus import (
    DataError,
    Entry,
    default_cmudict_path,
    parse_cmudict,
    parse_tsv,
    read_corpus,
    split_corpus,
    split_of,
)


def test_cmudict_alternates_comments_and_stress():
    lines = [
        "# a comment line",
        "read R IY1 D",
        "read(2) R EH1 D",
        "aalborg AO1 L B AO0 R G # place, danish",
    ]
    entries = parse_cmudict(lines, name="x.dict")
    assert entries == [Entry(tuple("read"), (("R", "IY", "D"), ("R", "EH", "D"))),
                       Entry(tuple("aalborg"), (("AO", "L", "B", "AO", "R", "G"),))]
    kept = parse_cmudict(["read R IY1 D"], name="x", strip_stress=False)
    assert kept[0].targets == (("R", "IY1", "D"),)


def test_cmudict_malformed_line_names_file_and_line():
    with pytest.raises(DataError, match=r"x.dict, line 2: expected 'WORD PH1 PH2 \.\.\.'.*found 'lonely'"):
        parse_cmudict(["cat K AE1 T", "lonely"], name="x.dict")


def test_tsv_reader_groups_references_and_splits():
    entries = parse_tsv(["ab\tA B", "ab\tA  B", "ab\tB A", "", "cd\tC D"], name="t.tsv", source_split="char")
    assert entries == [Entry(("a", "b"), (("A", "B"), ("B", "A"))), Entry(("c", "d"), (("C", "D"),))]


def test_tsv_malformed_line():
    with pytest.raises(DataError, match=r"t.tsv, line 2: expected 'source<TAB>target' \(exactly one tab\), found 0"):
        parse_tsv(["a\tb", "no tab here"], name="t.tsv")
    with pytest.raises(DataError, match=r"t.tsv, line 1: the target side is empty"):
        parse_tsv(["a\t  "], name="t.tsv")


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.tsv"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="empty.tsv: no data"):
        read_corpus(empty, config=DataConfig(format="tsv"))
    with pytest.raises(DataError, match="nope.tsv: file not found"):
        read_corpus(tmp_path / "nope.tsv", config=DataConfig(format="tsv"))
    binary = tmp_path / "bin.tsv"
    binary.write_bytes(b"\xff\xfe\x00a")
    with pytest.raises(DataError, match="bin.tsv: not UTF-8"):
        read_corpus(binary, config=DataConfig(format="tsv"))


def test_embedded_dictionary_is_complete():
    with gzip.open(default_cmudict_path(), "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert len(lines) == 135166
    entries = parse_cmudict(lines, name="cmudict")
    assert len(entries) == 126052
    assert default_cmudict_path().with_name("cmudict.LICENSE").is_file()


def test_split_is_deterministic_and_disjoint():
    entries = [Entry(tuple(f"w{i}"), (("X",),)) for i in range(2000)]
    config = DataConfig(dev_fraction=0.1, test_fraction=0.1)
    a, b = split_corpus(entries, config), split_corpus(list(reversed(entries)), config)
    assert {k: set(v) for k, v in a.items()} == {k: set(v) for k, v in b.items()}
    sources = [set(e.source for e in a[k]) for k in ("train", "dev", "test")]
    assert not (sources[0] & sources[1]) and not (sources[0] & sources[2]) and not (sources[1] & sources[2])
    assert 150 < len(a["dev"]) < 250 and 150 < len(a["test"]) < 250
    moved = sum(split_of(e.source, seed=1, dev_fraction=.1, test_fraction=.1)
                != split_of(e.source, seed=2, dev_fraction=.1, test_fraction=.1) for e in entries)
    assert moved > 100


def test_transposed_data_reads_pronunciations_as_sources(tmp_path):
    """Phoneme-to-grapheme: homophones become one source with each spelling as a reference."""
    path = tmp_path / "lex.tsv"
    path.write_text("THEIR\tDH EH R\nTHERE\tDH EH R\nREAD\tR IY D\nREAD\tR EH D\n", encoding="utf-8")
    config = DataConfig(format="tsv", transpose=True, source_split="space", target_split="char")
    entries = read_corpus(path, config=config)
    assert entries == [Entry(("DH", "EH", "R"), (tuple("THEIR"), tuple("THERE"))),
                       Entry(("R", "IY", "D"), (tuple("READ"),)), Entry(("R", "EH", "D"), (tuple("READ"),))]
    assert config.splits == ("space", "char")
    assert DataConfig(transpose=True).splits == ("space", "char")  # cmudict: the splits follow the direction
    assert DataConfig().splits == ("char", "space")


def test_transposed_cmudict_file(tmp_path):
    path = tmp_path / "x.dict"
    path.write_text("read R IY1 D\nread(2) R EH1 D\nreed R IY1 D\n", encoding="utf-8")
    entries = read_corpus(path, config=DataConfig(transpose=True))
    assert entries == [Entry(("R", "IY", "D"), (tuple("read"), tuple("reed"))),
                       Entry(("R", "EH", "D"), (tuple("read"),))]
