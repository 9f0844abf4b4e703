"""Objective ``ctc``: the seed's bidirectional decoder over the upsampled source, trained with CTC."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
from keras import ops

from biseq.config import Config, ConfigError
from biseq.ctc import CTCLoss, alignable
from biseq.search import BeamSearch, CTCSearch, GreedySearch, LeakyDecodingError
from tests.test_search_and_learning import small_model


def collapse(path):
    """A frame labelling -> its output: repeats merged, blanks (0) dropped."""
    return [k for k, _ in itertools.groupby(path) if k != 0]


def brute_force_nll(log_probs: np.ndarray, target: list[int]) -> float:
    """``-log`` of the sum over every frame labelling that collapses to ``target``."""
    frames, classes = log_probs.shape
    total = -np.inf
    for path in itertools.product(range(classes), repeat=frames):
        if collapse(path) == target:
            total = np.logaddexp(total, sum(log_probs[t, k] for t, k in enumerate(path)))
    return -total


def test_ctc_loss_is_the_sum_over_alignments_and_ignores_padding_frames():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 4)).astype("float32")
    targets = np.array([[2, 3, 0], [3, 3, 0], [1, 2, 3]], "int32")
    # row 1 has 4 real frames: its last frame is padding, a certain blank as CTCDecoder makes it
    logits[1, 4] = [0.0, -1e9, -1e9, -1e9]
    per_token = np.asarray(CTCLoss(reduction=None)(targets, logits))
    log_probs = np.asarray(ops.log_softmax(logits, axis=-1))
    expected = [brute_force_nll(log_probs[0], [2, 3]) / 2, brute_force_nll(log_probs[1, :4], [3, 3]) / 2,
                brute_force_nll(log_probs[2], [1, 2, 3]) / 3]
    np.testing.assert_allclose(per_token, expected, rtol=1e-4)


def test_alignable_counts_the_blank_between_repeats():
    source = np.array([[5, 6, 0], [5, 0, 0], [5, 0, 0], [5, 6, 7]], "int32")
    targets = np.array([[4, 4, 4, 0], [4, 4, 0, 0], [4, 5, 0, 0], [0, 0, 0, 0]], "int32")
    # 4 frames: "4 4 4" needs 5; 2 frames: "4 4" needs 3, "4 5" needs 2; an empty target teaches nothing
    assert alignable(source, targets, upsampling=2).tolist() == [False, False, True, False]
    assert alignable(source, targets, upsampling=3).tolist() == [True, True, True, False]


def test_ctc_config_is_checked():
    with pytest.raises(ConfigError, match="takes one of"):
        Config.from_dict({"model": {"decoder": "lstm", "objective": "ctc"}})
    with pytest.raises(ConfigError, match="upsampling must be at least 1"):
        Config.from_dict({"model": {"decoder": "bilstm", "objective": "ctc", "upsampling": 0}})


def test_ctc_search_greedy_is_the_best_alignment_and_beam_agrees():
    keras.utils.set_random_seed(5)
    system = small_model(decoder="bilstm", decoder_units=8, attention="luong", objective="ctc", upsampling=2)
    for w in system.model.weights:  # larger random weights so the frames' argmax varies
        w.assign(ops.convert_to_numpy(w) * 3.0)
    source = np.array([[5, 6, 7], [8, 9, 0]], "int32")
    logits = np.asarray(system.model(source))
    assert logits.shape == (2, 6, len(system.target_vocab))
    assert (logits[1, 4:].argmax(axis=-1) == 0).all()  # the padding frames are blanks
    tokens, scores = (np.asarray(x) for x in CTCSearch(system.model).predict_on_batch(source))
    assert tokens.shape == (2, 1, 6)
    log_probs = np.asarray(ops.log_softmax(logits, axis=-1))
    for row in range(2):
        best = collapse(log_probs[row].argmax(axis=-1).tolist())
        assert [t for t in tokens[row, 0] if t] == best
        assert not set(best) & {1, 2}  # never <s> or </s>
        np.testing.assert_allclose(scores[row, 0], log_probs[row].max(axis=-1).sum(), rtol=1e-5)
    # the scorer sums every alignment exactly (the joint-sequence combination rescores with it)
    some = collapse(log_probs[1, :4].argmax(axis=-1).tolist()) or [5]
    np.testing.assert_allclose(system.output_log_probs([[8, 9]], [some]),
                               [-brute_force_nll(log_probs[1, :4], some)], rtol=1e-4)
    nbest = system.ctc_nbest_ids([[5, 6, 7]], beam_size=8, nbest=3)[0]
    assert len(nbest) == 3 and [s for _, s in nbest] == sorted((s for _, s in nbest), reverse=True)
    # beam scores sum over alignments: the best output is at least as likely as its best alignment
    assert nbest[0][1] >= scores[0, 0] - 1e-4
    for search in (GreedySearch, BeamSearch):
        with pytest.raises(LeakyDecodingError, match="non-autoregressive"):
            search(system.model)
    from biseq.attention_map import NoAttentionError, attention_weights

    with pytest.raises(NoAttentionError, match="objective 'ctc'"):  # the web page says so instead of failing
        attention_weights(system, list("abc"), ["C", "B", "A"])


def test_ctc_learns_to_reverse_held_out_words_and_reloads(reversal, tmp_path):
    from biseq.training import train
    from biseq.transducer import Transducer

    config = Config.from_dict({
        "data": {"path": str(reversal), "format": "tsv", "source_split": "char", "dev_fraction": 0.1,
                 "test_fraction": 0.1},
        "model": {"decoder": "bilstm", "objective": "ctc", "upsampling": 2, "attention": "luong",
                  "embedding_dim": 16, "encoder_units": 48, "decoder_units": 48},
        "train": {"epochs": 30, "batch_size": 32, "patience": 0, "lr_schedule": "cosine", "learning_rate": 0.005}})
    result = train(config, out=tmp_path / "ctc", verbose=0, log=lambda _: None)
    dev, test = result.dev, result.test
    exact = (dev.exact_match * dev.count + test.exact_match * test.count) / (dev.count + test.count)
    # measured 100 % dev, 98.9 % test (85 % without attention); mask-predict: 88-97 %
    assert exact >= 95.0, (dev, test)
    reloaded = Transducer.load(tmp_path / "ctc")
    words = [e.source for e in result.test_entries[:20]]
    assert reloaded.predict_tokens(words) == result.transducer.predict_tokens(words)
    assert reloaded.predict_nbest(["abc"], beam_size=4, nbest=2) == result.transducer.predict_nbest(
        ["abc"], beam_size=4, nbest=2)


def test_a_ctc_model_combines_with_the_joint_sequence_model():
    from biseq.joint_sequence import joint_nbest

    keras.utils.set_random_seed(2)
    system = small_model(decoder="bilstm", decoder_units=8, attention="luong", objective="ctc")

    class FakeJoint:  # the joint model's interface: per word its n-best (tokens, cost)
        def nbest(self, words, *, nbest, beam):
            return [[(("C", "B", "A"), 1.5), (("C", "A"), 2.0)] for _ in words]

    sources = [tuple("abc"), tuple("cab")]
    ranked = joint_nbest(system, FakeJoint(), sources, weights=[0.0, 0.5])
    ids = system.encode_sources(sources)
    greedy = system.predict_ids(ids)
    for i, source_ids in enumerate(ids):
        candidates = {tuple(system.target_vocab.decode(greedy[i])): None, ("C", "B", "A"): 1.5, ("C", "A"): 2.0}
        candidates = {c: cost for c, cost in candidates.items() if c}
        got = {tuple(tokens): score for tokens, score in ranked[0.5][i]}
        assert set(got) == set(candidates)
        for tokens in (("C", "B", "A"), ("C", "A")):  # exact CTC log p, weighted with the joint cost
            logp = system.output_log_probs([source_ids], [system.target_vocab.encode(list(tokens))])[0]
            assert got[tokens] == pytest.approx(0.5 * logp - 0.5 * candidates[tokens], abs=1e-4)
        assert ranked[0.0][i][0][1] >= max(s for _, s in ranked[0.0][i])  # best first
