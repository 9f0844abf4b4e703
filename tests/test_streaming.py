"""Streamed training files: one pass to count, every pair once an epoch, a chunk at a time; clear errors."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from biseq.config import Config, DataConfig
from biseq.corpus import DataError
from biseq.streaming import ChunkedBatches, scan, vocabularies
from biseq.training import prepare
from tests.conftest import reversal_lines


def config(path, **data):
    return DataConfig(**{"path": str(path), "format": "tsv", "source_split": "char", "streaming": True, **data})


@pytest.fixture
def rev(tmp_path):
    path = tmp_path / "rev.tsv"
    path.write_text("\n".join(reversal_lines(500)) + "\n", encoding="utf-8")
    return path


def test_the_scan_finds_the_in_memory_vocabularies_and_held_out_sets(rev):
    streamed = prepare(Config(data=config(rev, chunk_lines=37)))
    whole = prepare(Config(data=config(rev, streaming=False)))
    assert streamed.source_vocab == whole.source_vocab and streamed.target_vocab == whole.target_vocab
    assert streamed.dev == whole.dev and streamed.test == whole.test
    assert streamed.train == [] and streamed.scan.train_pairs == sum(len(e.targets) for e in whole.train)
    assert len(streamed.scan.chunks) == -(-500 // 37)


def test_every_training_pair_is_served_once_an_epoch_in_a_new_order(rev):
    data = config(rev, chunk_lines=60)
    found = scan(rev, config=data, batch_size=16)
    source_vocab, target_vocab = vocabularies(found)
    batches = ChunkedBatches(found, config=data, source_vocab=source_vocab, target_vocab=target_vocab,
                             batch_size=16, seed=3)

    def epoch(n):
        batches.set_epoch(n)
        rows = Counter()
        for i in range(len(batches)):
            b = batches.batch(i)
            assert b.source.shape[0] == 16
            for source, weight in zip(b.source, b.weight, strict=True):
                if weight.any():
                    rows[tuple(source[source > 0])] += 1
        return rows

    first, second = epoch(0), epoch(1)
    assert sum(first.values()) == found.train_pairs and first == second
    batches.set_epoch(0)
    order0 = [batches.batch(i).source.tobytes() for i in range(len(batches))]
    batches.set_epoch(1)
    assert order0 != [batches.batch(i).source.tobytes() for i in range(len(batches))]
    assert batches.cached is not None and isinstance(batches.cached[0], int)  # one chunk held, not the file


def test_a_file_of_one_chunk_trains_exactly_as_in_memory(rev, tmp_path):
    from biseq.training import train

    base = {"data": {"path": str(rev), "format": "tsv", "source_split": "char"},
            "model": {"encoder_units": 8, "decoder_units": 16, "embedding_dim": 8},
            "train": {"epochs": 2, "patience": 0, "batch_size": 64}}
    streamed = {**base, "data": {**base["data"], "streaming": True}}
    for name, settings in (("memory", base), ("stream", streamed)):
        train(Config.from_dict(settings), out=tmp_path / name, verbose=0, log=lambda _: None)
    losses = {n: [h["loss"] for h in json.loads((tmp_path / n / "history.json").read_text())]
              for n in ("memory", "stream")}
    assert len(losses["memory"]) == 2
    np.testing.assert_array_equal(losses["stream"], losses["memory"])


def test_a_bad_line_deep_in_the_file_names_its_line_number(rev):
    lines = rev.read_text(encoding="utf-8").splitlines()
    lines[311] = "no tab here"
    rev.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"rev.tsv, line 312: expected 'source<TAB>target'"):
        scan(rev, config=config(rev, chunk_lines=50), batch_size=8)


def test_invalid_utf8_names_its_line_number(rev):
    raw = rev.read_bytes().split(b"\n")
    raw[120] = b"ab\xff\tB A"
    rev.write_bytes(b"\n".join(raw))
    with pytest.raises(DataError, match=r"rev.tsv, line 121: not UTF-8"):
        scan(rev, config=config(rev, chunk_lines=50), batch_size=8)


def test_compressed_files_and_the_embedded_dictionary_are_not_streamed(tmp_path):
    gz = tmp_path / "words.tsv.gz"
    gz.write_bytes(b"")
    with pytest.raises(DataError, match="streaming reads an uncompressed file"):
        scan(gz, config=config(gz), batch_size=8)
    with pytest.raises(DataError, match="needs a training file"):
        prepare(Config(data=DataConfig(streaming=True)))


def test_a_byte_order_mark_is_not_part_of_the_first_word_streamed_or_not(tmp_path):
    path = tmp_path / "bom.tsv"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(reversal_lines(30)).encode() + b"\n")
    streamed = prepare(Config(data=config(path, dev_fraction=0.0, test_fraction=0.0)))
    whole = prepare(Config(data=config(path, streaming=False, dev_fraction=0.0, test_fraction=0.0)))
    assert "\ufeff" not in streamed.source_vocab and "\ufeff" not in whole.source_vocab
    assert streamed.source_vocab == whole.source_vocab
