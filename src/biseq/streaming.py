"""Training data larger than memory: one pass to count, then length-bucketed batches a chunk at a time.

With ``data.streaming = true`` the training file is never held whole. :func:`scan` reads it once:
the vocabularies, the held-out lines (the same seeded hash split as an in-memory run, so the dev
and test sets are in memory: keep them small), and for every chunk of ``data.chunk_lines`` lines
its byte offset and how many batches its training pairs make. :class:`StreamingBatches` then serves
an epoch chunk by chunk: the chunks in a seeded random order, each one's pairs bucketed by length,
shuffled within buckets, its batches in random order (:func:`biseq.batching.make_batches`). The
chunk is the shuffle buffer: one chunk is in memory at a time.

The batches differ from an in-memory run's (buckets are formed within a chunk), and a line that
repeats a source within a chunk adds a reference to it, as in memory; across chunks it is another pair.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from biseq.batching import bucket_shapes, encode_pairs, make_batches
from biseq.config import DataConfig
from biseq.corpus import DataError, Entry, parse_lines, split_of
from biseq.vocabulary import Vocabulary


@dataclasses.dataclass(frozen=True)
class Chunk:
    """``lines`` lines of the file from byte ``offset`` (their first is line ``first_line``): ``batches`` batches."""

    offset: int
    first_line: int
    lines: int
    batches: int


@dataclasses.dataclass(frozen=True)
class Scan:
    """What one pass over a streamed training file found."""

    path: Path
    chunks: tuple[Chunk, ...]
    train_pairs: int
    source_counts: Counter
    target_counts: Counter
    dev: list[Entry]
    test: list[Entry]

    @property
    def batches(self) -> int:
        return sum(c.batches for c in self.chunks)


def read_chunks(path: Path, *, chunk_lines: int) -> Iterator[tuple[int, int, list[str]]]:
    """``(byte offset, first line number, lines)`` for each run of ``chunk_lines`` lines of ``path``."""
    if path.suffix == ".gz":
        raise DataError(f"{path}: streaming reads an uncompressed file (chunks are found again by byte offset): "
                        "decompress it first, or set data.streaming = false")
    try:
        with path.open("rb") as f:
            offset, number, lines, start = 0, 1, [], 0
            for raw in f:
                lines.append(raw)
                offset += len(raw)
                if len(lines) == chunk_lines:
                    yield start, number, _decode(lines, path, number)
                    number += len(lines)
                    start, lines = offset, []
            if lines:
                yield start, number, _decode(lines, path, number)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror})") from None


def read_chunk(path: Path, chunk: Chunk) -> list[str]:
    """The lines of ``chunk``."""
    with path.open("rb") as f:
        f.seek(chunk.offset)
        raw = [f.readline() for _ in range(chunk.lines)]
    return _decode(raw, path, chunk.first_line)


def _decode(raw: list[bytes], path: Path, first_line: int) -> list[str]:
    lines = []
    for number, line in enumerate(raw, start=first_line):
        try:
            lines.append(line.decode("utf-8").rstrip("\r\n"))
        except UnicodeDecodeError as err:
            raise DataError(f"{path}, line {number}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    return lines


def parse_chunk(lines: list[str], *, config: DataConfig, name: str, first_line: int) -> list[Entry]:
    """The entries of one chunk's lines, errors naming the file's line numbers."""
    if first_line == 1 and lines and lines[0].startswith("\ufeff"):
        lines = [lines[0][1:], *lines[1:]]
    return parse_lines(lines, config=config, name=name, first_line=first_line)


def fits(entry: Entry, config: DataConfig) -> bool:
    """Whether ``entry`` is within the configured lengths (longer pairs are not trained on)."""
    return len(entry.source) <= config.max_source_length and all(
        len(t) < config.max_target_length for t in entry.targets)


def split_chunk(entries: list[Entry], config: DataConfig) -> tuple[list[Entry], list[Entry], list[Entry]]:
    """``(train entries that fit, dev, test)`` by the seeded hash of each source."""
    train, dev, test = [], [], []
    for e in entries:
        part = split_of(e.source, seed=config.split_seed, dev_fraction=config.dev_fraction,
                        test_fraction=config.test_fraction)
        if part == "train":
            if fits(e, config):
                train.append(e)
        else:
            (dev if part == "dev" else test).append(e)
    return train, dev, test


def _batch_count(entries: list[Entry], batch_size: int, max_shapes: int) -> int:
    lengths = [(range(len(e.source)), range(len(t))) for e in entries for t in e.targets]
    # only the lengths matter to the buckets
    buckets = bucket_shapes(lengths, batch_size=batch_size, max_shapes=max_shapes)
    return sum(-(-len(indices) // batch_size) for indices in buckets.values())


def scan(path: str | Path, *, config: DataConfig, batch_size: int) -> Scan:
    """One pass over ``path``: vocabulary counts, held-out entries, the chunks and their batch counts."""
    path = Path(path)
    chunks, sources, targets, pairs, dev, test = [], Counter(), Counter(), 0, [], []
    for offset, first_line, lines in read_chunks(path, chunk_lines=config.chunk_lines):
        train, chunk_dev, chunk_test = split_chunk(parse_chunk(lines, config=config, name=str(path),
                                                               first_line=first_line), config)
        dev += chunk_dev
        test += chunk_test
        for e in train:
            sources.update(e.source)
            for t in e.targets:
                targets.update(t)
                pairs += 1
        chunks.append(Chunk(offset=offset, first_line=first_line, lines=len(lines),
                            batches=_batch_count(train, batch_size, config.max_shapes)))
    if not pairs:
        raise DataError(f"{path}: no training data (the file is empty, holds only comments, or every line is "
                        "held out or over the length limits)")
    return Scan(path=path, chunks=tuple(chunks), train_pairs=pairs, source_counts=sources, target_counts=targets,
                dev=dev, test=test)


def vocabularies(found: Scan, *, extra_target: tuple[str, ...] = ()) -> tuple[Vocabulary, Vocabulary]:
    """The source and target vocabularies of the scanned training lines (as :meth:`Vocabulary.build`)."""
    return (Vocabulary.from_counts(found.source_counts),
            Vocabulary.from_counts(found.target_counts, extra=extra_target))


class ChunkedBatches:
    """An epoch's batches of a scanned file, one chunk in memory at a time (see the module docstring).

    ``batch(index)`` is meant to be called in order within an epoch; ``set_epoch`` reshuffles.
    """

    def __init__(self, found: Scan, *, config: DataConfig, source_vocab: Vocabulary, target_vocab: Vocabulary,
                 batch_size: int, seed: int) -> None:
        self.found, self.config, self.batch_size, self.seed = found, config, batch_size, seed
        self.source_vocab, self.target_vocab = source_vocab, target_vocab
        self.order: list[int] = []
        self.starts = np.zeros(1, dtype=np.int64)
        self.cached: tuple[int, list] | None = None
        self.epoch = 0

    def __len__(self) -> int:
        return self.found.batches

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.order = [int(i) for i in np.random.default_rng([self.seed, epoch]).permutation(len(self.found.chunks))]
        self.starts = np.cumsum([0] + [self.found.chunks[i].batches for i in self.order])
        self.cached = None

    def batch(self, index: int):
        position = int(np.searchsorted(self.starts, index, side="right")) - 1
        chunk_index = self.order[position]
        if self.cached is None or self.cached[0] != chunk_index:
            self.cached = (chunk_index, self._chunk_batches(chunk_index))
        return self.cached[1][index - int(self.starts[position])]

    def _chunk_batches(self, chunk_index: int) -> list:
        chunk = self.found.chunks[chunk_index]
        entries = parse_chunk(read_chunk(self.found.path, chunk), config=self.config, name=str(self.found.path),
                              first_line=chunk.first_line)
        train, _, _ = split_chunk(entries, self.config)
        pairs = encode_pairs(train, self.source_vocab, self.target_vocab)
        # a file of one chunk is batched exactly as in memory (the same seeds)
        seeds = [self.seed, self.epoch] + ([chunk_index] if len(self.found.chunks) > 1 else [])
        batches = make_batches(pairs, batch_size=self.batch_size, rng=np.random.default_rng(seeds),
                               max_shapes=self.config.max_shapes)
        if len(batches) != chunk.batches:
            raise DataError(f"{self.found.path}, lines {chunk.first_line}-{chunk.first_line + chunk.lines - 1}: "
                            "the file changed while training read it")
        return batches
