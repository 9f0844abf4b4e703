"""Batches with length buckets and masks.

Examples are grouped by (source width, target width) buckets so padding waste
stays small while the number of distinct tensor shapes (each one a compilation
on JAX) stays bounded. Every batch has exactly ``batch_size`` rows; a short
last batch is filled with all-padding rows whose weights are zero.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Sequence

import numpy as np

from biseq.corpus import Entry
from biseq.vocabulary import BOS_ID, EOS_ID, PAD_ID, Vocabulary

BUCKET_WIDTHS = (4, 6, 8, 10, 12, 14, 16, 20, 24, 32, 48, 64, 96, 128, 192, 256)


# Decoding pads to fewer, coarser shapes than training: each shape is one compilation of a whole
# search loop (seconds), while a few padded positions cost microseconds.
DECODE_WIDTHS = (8, 16, 24, 32, 48, 64, 96, 128, 192, 256)
DECODE_ROWS = (1, 4, 8, 16, 64, 256, 1024)


def bucket_width(length: int) -> int:
    """The smallest bucket width that holds ``length`` tokens."""
    i = bisect.bisect_left(BUCKET_WIDTHS, length)
    return BUCKET_WIDTHS[i] if i < len(BUCKET_WIDTHS) else length


def decode_width(length: int) -> int:
    """The padded width of ``length`` tokens at decoding (see ``DECODE_WIDTHS``)."""
    i = bisect.bisect_left(DECODE_WIDTHS, length)
    return DECODE_WIDTHS[i] if i < len(DECODE_WIDTHS) else length


def default_max_length(source_width: int) -> int:
    """Decoding steps for a source padded to ``source_width`` tokens."""
    return 2 * source_width + 5


def width_chunks(sources: Sequence[Sequence[int]], batch_size: int) -> list[tuple[list[int], int]]:
    """Decoding batches: ``(indices, padded width)``, length-sorted, each within one ``decode_width`` bucket."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    chunks, start = [], 0
    while start < len(order):
        width = decode_width(max(1, len(sources[order[start]])))
        chunk = [i for i in order[start : start + batch_size] if len(sources[i]) <= width]
        chunks.append((chunk, width))
        start += len(chunk)
    return chunks


def length_sorted_chunks(sources: Sequence[Sequence[int]], outputs: Sequence[Sequence[int]],
                          batch_size: int) -> list[list[int]]:
    """Indices sorted by (source, output) length, cut into chunks of ``batch_size``: little padding per batch."""
    order = sorted(range(len(sources)), key=lambda i: (len(sources[i]), len(outputs[i])))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def decode_rows(count: int, batch_size: int) -> int:
    """Rows of a decoding batch holding ``count`` sequences: a ``DECODE_ROWS`` size, at most ``batch_size``."""
    i = bisect.bisect_left(DECODE_ROWS, count)
    return min(DECODE_ROWS[i] if i < len(DECODE_ROWS) else count, batch_size)


@dataclasses.dataclass(frozen=True)
class Batch:
    """One padded batch.

    Attributes:
        source: ``[B, S]`` int32 source ids, 0-padded on the right.
        decoder_input: ``[B, T]`` int32, ``<s>`` then the target (teacher forcing).
        decoder_target: ``[B, T]`` int32, the target then ``</s>``.
        weight: ``[B, T]`` float32, 1 where ``decoder_target`` is a real token, else 0.
    """

    source: np.ndarray
    decoder_input: np.ndarray
    decoder_target: np.ndarray
    weight: np.ndarray


def pad_ids(rows: Sequence[Sequence[int]], width: int, rows_total: int | None = None) -> np.ndarray:
    """``[rows_total, width]`` int32 array of ``rows`` padded with 0 on the right."""
    out = np.full((rows_total or len(rows), width), PAD_ID, dtype=np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def encode_pairs(entries: Sequence[Entry], source_vocab: Vocabulary,
                 target_vocab: Vocabulary) -> list[tuple[list[int], list[int]]]:
    """One (source ids, target ids) pair per reference of each entry."""
    return [
        (source_vocab.encode(e.source, warn=False), target_vocab.encode(t, warn=False))
        for e in entries
        for t in e.targets
    ]


def bucket_shapes(pairs: Sequence[tuple[list[int], list[int]]], *, batch_size: int,
                  min_batches: int = 4, max_shapes: int = 0) -> dict[tuple[int, int], list[int]]:
    """Pair indices by padded ``(source width, target width)``.

    Each pair first gets the smallest bucket widths that hold it; a shape with
    fewer than ``min_batches`` batches of pairs is not kept on its own, its pairs
    move to the smallest kept shape that holds them (the largest shape is always
    kept). This bounds the number of shapes, hence of compilations. ``max_shapes``
    (0: no limit) bounds it further: while more shapes are kept, the one whose
    pairs cost the fewest extra padded steps (source + target width) in their next
    home is merged into it.
    """
    keys = [(bucket_width(len(s)), bucket_width(len(t) + 1)) for s, t in pairs]
    counts: dict[tuple[int, int], int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    if not keys:
        return {}
    largest = (max(k[0] for k in keys), max(k[1] for k in keys))
    kept = sorted({k for k, n in counts.items() if n >= min_batches * batch_size} | {largest},
                  key=lambda k: (k[0] * k[1], k))
    home = _homes(counts, kept)
    while 0 < max_shapes < len(kept):
        kept.remove(min((k for k in kept if k != largest), key=lambda k: _merge_cost(k, kept, home, counts)))
        home = _homes(counts, kept)
    buckets: dict[tuple[int, int], list[int]] = {}
    for index, key in enumerate(keys):
        buckets.setdefault(home[key], []).append(index)
    return buckets


def _homes(counts: dict[tuple[int, int], int], kept: list[tuple[int, int]]) -> dict[tuple[int, int], tuple[int, int]]:
    """Each key's home: the smallest kept shape (``kept`` is sorted by area) that holds it."""
    return {k: next(s for s in kept if s[0] >= k[0] and s[1] >= k[1]) for k in counts}


def _merge_cost(shape: tuple[int, int], kept: list[tuple[int, int]], home: dict, counts: dict) -> int:
    """Extra padded steps if ``shape`` were dropped: its pairs move to their next home among the rest."""
    moved = _homes({k: n for k, n in counts.items() if home[k] == shape}, [s for s in kept if s != shape])
    return sum(counts[k] * (h[0] + h[1] - shape[0] - shape[1]) for k, h in moved.items())


def make_batches(pairs: Sequence[tuple[list[int], list[int]]], *, batch_size: int,
                 rng: np.random.Generator | None = None, max_shapes: int = 0) -> list[Batch]:
    """Bucket ``pairs`` by (source width, target width) and cut them into padded batches.

    With ``rng`` the pairs are shuffled within buckets and the batch order is
    shuffled; without it the order is deterministic. ``max_shapes``: see :func:`bucket_shapes`.
    """
    buckets = bucket_shapes(pairs, batch_size=batch_size, max_shapes=max_shapes)
    batches = []
    for (s_width, t_width), indices in sorted(buckets.items()):
        if rng is not None:
            rng.shuffle(indices)
        for start in range(0, len(indices), batch_size):
            chunk = [pairs[i] for i in indices[start : start + batch_size]]
            targets = [t for _, t in chunk]
            weight = np.zeros((batch_size, t_width), dtype=np.float32)
            for row, target in enumerate(targets):
                weight[row, : len(target) + 1] = 1.0
            batches.append(Batch(
                source=pad_ids([s for s, _ in chunk], s_width, batch_size),
                decoder_input=pad_ids([[BOS_ID, *t] for t in targets], t_width, batch_size),
                decoder_target=pad_ids([[*t, EOS_ID] for t in targets], t_width, batch_size),
                weight=weight,
            ))
    if rng is not None:
        order = rng.permutation(len(batches))
        batches = [batches[i] for i in order]
    return batches


def padding_share(batches: Sequence[Batch]) -> float:
    """Share of target positions that are padding, in percent (0 for no batches)."""
    total = sum(b.weight.size for b in batches)
    return 0.0 if total == 0 else 100.0 * (1 - sum(float(b.weight.sum()) for b in batches) / total)


def reverse_targets(batch: Batch) -> Batch:
    """The same batch with each target read right to left: ``<s> y_n .. y_1`` -> ``y_n .. y_1 </s>``."""
    lengths = batch.weight.sum(axis=1).astype(np.int64)  # tokens including </s>
    rows, width = batch.decoder_target.shape
    pos = np.arange(width)[None, :]
    n = lengths[:, None]
    source_index = np.clip(n - 2 - pos, 0, width - 1)
    reversed_tokens = np.take_along_axis(batch.decoder_target, source_index, axis=1)
    target = np.where(pos < n - 1, reversed_tokens, np.where(pos == n - 1, EOS_ID, PAD_ID)).astype(np.int32)
    target[lengths == 0] = PAD_ID
    decoder_input = np.full_like(target, PAD_ID)
    decoder_input[:, 0] = np.where(lengths > 0, BOS_ID, PAD_ID)
    decoder_input[:, 1:] = np.where(pos[:, 1:] < n, target[:, :-1], PAD_ID)
    return Batch(source=batch.source, decoder_input=decoder_input, decoder_target=target, weight=batch.weight)


def target_batch(sources: Sequence[Sequence[int]], targets: Sequence[Sequence[int]], *, rows: int | None = None,
                 source_width: int | None = None, target_width: int | None = None) -> Batch:
    """One padded batch of given (source, target) id pairs, in order (for scoring hypotheses)."""
    rows = rows or len(sources)
    s_width = source_width or max(len(s) for s in sources)
    t_width = target_width or max(len(t) for t in targets) + 1
    weight = np.zeros((rows, t_width), dtype=np.float32)
    for row, target in enumerate(targets):
        weight[row, : len(target) + 1] = 1.0
    return Batch(source=pad_ids(sources, s_width, rows),
                 decoder_input=pad_ids([[BOS_ID, *t] for t in targets], t_width, rows),
                 decoder_target=pad_ids([[*t, EOS_ID] for t in targets], t_width, rows), weight=weight)
