"""Bidirectional decoders: the seed's leak, measured; the twin objective's routing, scoring and decoding."""

import keras
import numpy as np
import pytest
from keras import ops

import biseq
from biseq.batching import make_batches, reverse_targets
from biseq.search import BeamSearch, GreedySearch, LeakyDecodingError
from biseq.vocabulary import BOS_ID, EOS_ID
from tests.test_search_and_learning import small_model


def test_reverse_targets():
    pairs = [([4, 5], [6, 7, 8]), ([4], [9])]
    [batch] = make_batches(pairs, batch_size=2)
    rev = reverse_targets(batch)
    rows = {tuple(batch.decoder_target[r][batch.weight[r] > 0]): r for r in range(2)}
    r = rows[(6, 7, 8, EOS_ID)]
    assert rev.decoder_target[r][: 4].tolist() == [8, 7, 6, EOS_ID]
    assert rev.decoder_input[r][: 4].tolist() == [BOS_ID, 8, 7, 6]
    r = rows[(9, EOS_ID)]
    assert rev.decoder_target[r][:2].tolist() == [9, EOS_ID] and rev.decoder_input[r][:2].tolist() == [BOS_ID, 9]
    np.testing.assert_array_equal(rev.weight, batch.weight)
    assert (rev.decoder_target[batch.weight == 0] == 0).all()


def test_twin_decoders_start_from_matching_encoder_directions():
    system = small_model(decoder="bilstm", decoder_units=8, attention="luong")
    model = system.model
    assert model.objective == "twin"
    source = np.array([[4, 5, 6], [7, 8, 0]], "int32")
    encoded = model.encode(source)
    [[fh, fc, bh, bc]] = encoded.states
    layer_states = model.initial_decoder_states(encoded)
    [[h0, c0]] = model.direction_states(layer_states, 0)
    [[h1, c1]] = model.direction_states(layer_states, 1)
    for got, want in ((h0, fh), (c0, fc), (h1, bh), (c1, bc)):
        np.testing.assert_array_equal(ops.convert_to_numpy(got), ops.convert_to_numpy(want))


def test_twin_scorer_agrees_with_beam_log_probabilities():
    keras.utils.set_random_seed(7)
    system = small_model(decoder="bilstm", decoder_units=8, attention="luong")
    for w in system.model.weights:
        w.assign(ops.convert_to_numpy(w) * 3.0)
    for d in (0, 1):  # make </s> likely, so hypotheses finish (an unfinished one has no </s> to score)
        bias = system.model.decoder.direction(d).output_projection.bias
        bias.assign(ops.convert_to_numpy(bias) + np.eye(bias.shape[0], dtype="float32")[EOS_ID] * 4.0)
    sources = [[4, 5, 6], [7, 8], [5]]
    for direction in (0, 1):
        nbest = system.predict_nbest_ids(sources, beam_size=3, nbest=3, length_penalty=0.0, direction=direction)
        outputs = [ids for hyps in nbest for ids, _ in hyps]
        expected = [score for hyps in nbest for _, score in hyps]
        srcs = [s for s, hyps in zip(sources, nbest, strict=True) for _ in hyps]
        scored = system.twin_scores(srcs, outputs)[:, direction]
        np.testing.assert_allclose(scored, expected, atol=1e-4)
        if direction == 0:  # the ensembles' scorer (each source encoded once) reads left to right too
            left_to_right = [t.sum() for t in system.token_log_probs(srcs, outputs)]
            np.testing.assert_allclose(left_to_right, expected, atol=1e-4)
    rescored = system.predict_nbest_ids(sources, beam_size=3, nbest=2)
    assert all(1 <= len(r) <= 2 and r[0][1] >= r[-1][1] for r in rescored)


def test_twin_greedy_per_direction():
    system = small_model(decoder="bilstm", decoder_units=8, attention="none")
    out = [np.asarray(GreedySearch(system.model, direction=d, max_length=5).predict_on_batch(
        np.array([[4, 5, 6]], "int32"))) for d in (0, 1)]
    assert out[0].shape == out[1].shape == (1, 5)
    with pytest.raises(ValueError, match="direction must be one of"):
        BeamSearch(small_model().model, direction=1)


def test_the_seed_design_leaks_the_future():
    """The question's model, trained with teacher forcing, scores near 100% teacher-forced but cannot generate.

    Task: reverse 4-letter words. The decoder's backward half reads ``y_{t+1}`` at position ``t``, which
    is exactly the token to predict there, so teacher-forced accuracy is high; generating left to right
    has no future tokens to read, and the output is poor. This is why ``biseq`` refuses to decode it.
    """
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    vocab = 10  # 0 pad, 1 <s>, 2 </s>, 4..9 letters
    words = np.unique(rng.integers(4, vocab, size=(600, 4)), axis=0)[:300]
    targets = words[:, ::-1]
    dec_in = np.concatenate([np.full((len(words), 1), BOS_ID), targets], 1).astype("int32")
    dec_out = np.concatenate([targets, np.full((len(words), 1), EOS_ID)], 1).astype("int32")
    model = biseq.seed_model(total_words=vocab, emb_dimension=16, lstm_units=32)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit([words.astype("int32"), dec_in], dec_out, epochs=30, batch_size=32, verbose=0)

    teacher_forced = np.asarray(model.predict_on_batch([words.astype("int32"), dec_in])).argmax(-1)
    tf_accuracy = (teacher_forced == dec_out).mean()

    generated = np.full((len(words), 1), BOS_ID, "int32")
    for _ in range(5):  # left to right: the model sees only the tokens generated so far
        probs = np.asarray(model.predict_on_batch([words.astype("int32"), generated]))
        generated = np.concatenate([generated, probs[:, -1].argmax(-1)[:, None].astype("int32")], 1)
    free_exact = (generated[:, 1:] == dec_out).all(axis=1).mean()

    assert tf_accuracy > 0.95, tf_accuracy
    assert free_exact < 0.3, free_exact


def test_decoding_the_seed_objective_is_refused_with_the_explanation():
    system = small_model(decoder="bilstm", decoder_units=8, attention="none", objective="seed")
    for search in (GreedySearch, BeamSearch):
        with pytest.raises(LeakyDecodingError, match="reads the target tokens after position t"):
            search(system.model)


def test_mask_targets_hides_between_one_and_all_real_tokens():
    from biseq.training import mask_targets

    pairs = [([4], [6, 7, 8, 9]), ([5], [6]), ([4, 5], [7, 8])]
    [batch] = make_batches(pairs, batch_size=4)
    for seed in range(20):
        masked_input, tokens, weight, lengths = mask_targets(batch, mask_id=4, rng=np.random.default_rng(seed))
        real = tokens != 0
        assert sorted(lengths.tolist()) == [0, 1, 2, 4]
        assert ((weight > 0) <= real).all()  # only real positions are hidden
        hidden = weight.sum(axis=1)
        assert ((hidden >= 1) | (lengths == 0)).all() and (hidden <= lengths).all()
        np.testing.assert_array_equal(masked_input == 4, weight > 0)
        np.testing.assert_array_equal(np.where(weight > 0, tokens, masked_input), tokens)
        assert not (tokens == EOS_ID).any()


def test_mask_predict_outputs_plausible_sequences():
    system = small_model(decoder="bilstm", decoder_units=8, attention="none", objective="masked")
    assert system.target_vocab.symbols[4] == "<mask>"
    from biseq.search import MaskPredict

    search = MaskPredict(system.model, mask_id=4, iterations=3, length_candidates=2)
    tokens, scores = search.predict_on_batch(np.array([[5, 6, 7], [8, 9, 0]], "int32"))
    tokens = np.asarray(tokens)
    assert tokens.shape == (2, 2 * 3 + 5) and np.asarray(scores).shape == (2,)
    for row in tokens:
        n = int((row != 0).sum())
        assert n >= 1 and (row[:n] > 4).all() and (row[n:] == 0).all()  # no specials, no <mask> left
    with pytest.raises(LeakyDecodingError, match="non-autoregressive"):
        BeamSearch(system.model)
