import numpy as np
import pytest

from biseq.batching import bucket_shapes, bucket_width, make_batches, padding_share
from biseq.metrics import score
from biseq.vocabulary import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Vocabulary


def test_vocabulary_reserved_ids_and_order():
    vocab = Vocabulary.build([["b", "a"], ["a", "c"], ["a"]])
    assert vocab.symbols[:4] == ("<pad>", "<s>", "</s>", "<unk>")
    assert vocab.symbols[4:] == ("a", "b", "c")
    assert (PAD_ID, BOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3)


def test_unknown_symbols_warn_once_listing_them():
    vocab = Vocabulary.build([["a", "b"]])
    with pytest.warns(UserWarning, match=r"Unknown symbol\(s\) mapped to <unk>: \['x', 'y'\]") as record:
        ids = vocab.encode(["a", "x", "y", "x"])
    assert len(record) == 1
    assert ids == [4, UNK_ID, UNK_ID, UNK_ID]


def test_decode_stops_at_end():
    vocab = Vocabulary.build([["a", "b"]])
    assert vocab.decode([BOS_ID, 4, 5, EOS_ID, 4]) == ["a", "b"]


def test_batches_are_masked_and_complete():
    rng = np.random.default_rng(0)
    pairs = [([4] * int(n), [5] * int(m)) for n, m in zip(rng.integers(1, 20, 300), rng.integers(1, 20, 300),
                                                          strict=True)]
    batches = make_batches(pairs, batch_size=32, rng=np.random.default_rng(1))
    assert sum(int((b.weight.sum(axis=1) > 0).sum()) for b in batches) == len(pairs)
    for b in batches:
        assert b.source.shape[0] == b.decoder_input.shape[0] == 32
        assert b.source.shape[1] in (4, 6, 8, 10, 12, 14, 16, 20)
        np.testing.assert_array_equal(b.weight > 0, b.decoder_target != PAD_ID)
        real = b.weight.sum(axis=1) > 0
        assert (b.decoder_input[real, 0] == BOS_ID).all()
        # decoder_target is decoder_input shifted left by one, ending with </s>
        lengths = b.weight.sum(axis=1).astype(int)
        for row in np.flatnonzero(real):
            n = lengths[row]
            assert b.decoder_target[row, n - 1] == EOS_ID
            np.testing.assert_array_equal(b.decoder_target[row, : n - 1], b.decoder_input[row, 1:n])
    tokens = sum(len(t) + 1 for _, t in pairs)
    assert padding_share(batches) == pytest.approx(100 * (1 - tokens / sum(b.weight.size for b in batches)))
    assert bucket_width(5) == 6 and bucket_width(4) == 4 and bucket_width(1000) == 1000


def test_max_shapes_bounds_the_shapes_and_costs_few_padded_steps():
    rng = np.random.default_rng(0)
    pairs = [([4] * int(n), [5] * int(m)) for n, m in zip(rng.integers(1, 15, 3000), rng.integers(1, 15, 3000),
                                                          strict=True)] + [([4] * 40, [5] * 30)]

    def steps(buckets):  # padded recurrent steps: source + target width of every pair's shape
        return sum(len(rows) * (s + t) for (s, t), rows in buckets.items())

    default = bucket_shapes(pairs, batch_size=8)
    assert len(default) > 8
    costs = []
    for most in (8, 4, 2, 1):
        buckets = bucket_shapes(pairs, batch_size=8, max_shapes=most)
        assert len(buckets) == most
        assert (48, 32) in buckets  # the largest shape stays: the longest pair needs it
        assert sorted(i for rows in buckets.values() for i in rows) == list(range(len(pairs)))
        for (s, t), rows in buckets.items():
            assert all(len(pairs[i][0]) <= s and len(pairs[i][1]) + 1 <= t for i in rows)
        costs.append(steps(buckets))
    assert steps(default) <= costs[0] < costs[1] < costs[2] < costs[3]
    # fewer padded steps than the blunt way to 8 shapes: keeping only the shapes with the most pairs
    blunt = next(b for m in range(4, 400) if len(b := bucket_shapes(pairs, batch_size=8, min_batches=m)) <= 8)
    assert costs[0] < steps(blunt)
    batches = make_batches(pairs, batch_size=8, max_shapes=3, rng=np.random.default_rng(1))
    assert len({b.source.shape + b.decoder_target.shape for b in batches}) == 3
    assert sum(int((b.weight.sum(axis=1) > 0).sum()) for b in batches) == len(pairs)


def test_scores_against_closest_reference():
    hyps = ["R IY D", "R EH", "K AE T", "D AO G Z"]
    refs = [["R IY D", "R EH D"], ["R IY D", "R EH D"], ["K AE T"], ["D AO G"]]
    s = score(hyps, refs)
    assert s.wer == pytest.approx(50.0)
    assert s.exact_match == pytest.approx(50.0)
    # edits: 0 + 1 (vs R EH D) + 0 + 1 = 2 over reference lengths 3 + 3 + 3 + 3 = 12
    assert s.per == pytest.approx(100 * 2 / 12)
    assert s.count == 4


def test_score_errors():
    with pytest.raises(ValueError, match="2 hypotheses but 1 reference lists"):
        score(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="at least one reference"):
        score(["a"], [[]])


def test_decoding_pads_to_few_shapes():
    from biseq.batching import decode_rows, decode_width

    assert {decode_width(n) for n in range(1, 17)} == {8, 16}  # every word up to 16 letters: two shapes
    assert decode_width(300) == 300
    assert [decode_rows(n, 64) for n in (1, 2, 5, 9, 16, 17, 64, 65)] == [1, 4, 8, 16, 16, 64, 64, 64]
    assert decode_rows(3000, 2048) == 2048
