"""Beam search against hand-built step functions (no model), and on a model against greedy search."""

import keras
import numpy as np
import pytest
from keras import ops

from biseq.search import BeamSearch, GreedySearch, beam_search
from biseq.vocabulary import BOS_ID, EOS_ID, PAD_ID

A, B_, C = 4, 5, 6  # token ids after the 4 reserved ones
V = 7


def table_step(table):
    """A step function whose next-token distribution depends only on the previous token."""
    log_table = np.log(np.asarray(table, "float32") + 1e-12)

    def step(tokens, state):
        return ops.take(ops.convert_to_tensor(log_table), tokens, axis=0), state

    return step


def tricky_table():
    table = np.zeros((V, V), "float32")
    table[BOS_ID, [A, B_]] = [0.6, 0.4]  # greedy takes A ...
    table[A, [EOS_ID, A, C]] = [0.35, 0.35, 0.3]  # ... and then can only reach p <= 0.6 * 0.35 = 0.21
    table[B_, EOS_ID] = 1.0  # while B </s> has p = 0.4
    table[C, EOS_ID] = 1.0
    for row in (EOS_ID, 0, 3):
        table[row, EOS_ID] = 1.0
    return table


def run(step, *, batch=1, beam=3, length=4, alpha=0.0, settle=0):
    dummy = ops.zeros((batch * beam, 1))
    seqs, scores, logps = beam_search(step, dummy, batch_size=batch, beam_size=beam, max_length=length,
                                      vocab_size=V, length_penalty=alpha, settle=settle)
    return ops.convert_to_numpy(seqs), ops.convert_to_numpy(scores), ops.convert_to_numpy(logps)


def test_beam_finds_the_better_sequence_greedy_misses():
    seqs, scores, logps = run(table_step(tricky_table()), beam=2)
    assert seqs[0, 0, :2].tolist() == [B_, EOS_ID]
    assert logps[0, 0] == pytest.approx(np.log(0.4), abs=1e-5)
    greedy_first = run(table_step(tricky_table()), beam=1)[0][0, 0]
    assert greedy_first[0] == A  # beam size 1 is greedy: it commits to A
    assert logps[0, 0] > np.log(0.21)


def test_nbest_is_sorted_and_distinct_and_keeps_finished():
    seqs, scores, _ = run(table_step(tricky_table()), beam=3, length=5)
    assert (np.diff(scores[0]) <= 1e-6).all()
    as_tuples = [tuple(s) for s in seqs[0]]
    assert len(set(as_tuples)) == 3
    # B </s> (0.4), A </s> (0.6 * 0.35 = 0.21), A C </s> (0.6 * 0.3 * 1 = 0.18); A A ... is below
    assert as_tuples[0][:2] == (B_, EOS_ID) and as_tuples[1][:2] == (A, EOS_ID)
    assert as_tuples[2][:3] == (A, C, EOS_ID)
    np.testing.assert_allclose(np.exp(scores[0]), [0.4, 0.21, 0.18], rtol=1e-5)
    assert (seqs[0, 0, 2:] == 0).all()  # padding after </s>


def test_settling_one_answer_stops_early_and_keeps_the_full_search_best():
    """``settle=1``: the loop stops once the best is final, here at step 2 while the full search (three
    finished hypotheses wanted, the others never end) runs every step; the best is the same."""
    table = np.zeros((V, V), "float32")
    table[BOS_ID, [A, B_]] = [0.9, 0.1]
    table[A, EOS_ID] = 1.0  # A </s>: p 0.9, final at step 2
    table[B_, B_] = 1.0  # B B B ...: never ends, p 0.1
    for row in (EOS_ID, 0, 3, C):
        table[row, EOS_ID] = 1.0
    full = run(table_step(table), beam=3, length=6)
    early = run(table_step(table), beam=3, length=6, settle=1)
    assert full[0][0, 0].tolist() == early[0][0, 0].tolist() == [A, EOS_ID, 0, 0, 0, 0]
    assert full[2][0, 0] == pytest.approx(early[2][0, 0]) == pytest.approx(np.log(0.9))
    assert full[0][0, 1].tolist() == [B_] * 6  # the unfinished runner-up, as far as the loop went
    assert early[0][0, 1].tolist() == [B_, B_, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="settle must be between 1 and the beam size 3"):
        run(table_step(table), beam=3, settle=4)


@pytest.mark.parametrize("seed", range(6))
def test_settling_n_keeps_the_n_best_of_random_searches(seed):
    """Random next-token tables over 3 rows: with ``settle=n`` the ``n`` best of every row (sequences,
    scores) are those of the full search, whatever the length penalty."""
    rng = np.random.default_rng(seed)
    tables = rng.dirichlet(np.full(V, 0.5), size=(3, V)).astype("float32")  # one table per row
    log_tables = ops.convert_to_tensor(np.log(tables + 1e-12).reshape(3 * V, V))
    rows = ops.convert_to_tensor(np.repeat(np.arange(3), 4) * V)

    def step(tokens, state):
        return ops.take(log_tables, rows + tokens, axis=0), state

    alpha = float(rng.uniform(0.0, 1.5))
    full = run(step, batch=3, beam=4, length=7, alpha=alpha)
    for n in (1, 2):
        part = run(step, batch=3, beam=4, length=7, alpha=alpha, settle=n)
        np.testing.assert_array_equal(part[0][:, :n], full[0][:, :n])
        np.testing.assert_allclose(part[1][:, :n], full[1][:, :n], rtol=1e-5)


def test_length_penalty_prefers_longer_when_alpha_is_high():
    table = np.zeros((V, V), "float32")
    table[BOS_ID, [EOS_ID, A]] = [0.55, 0.45]
    table[A, [A, EOS_ID]] = [0.1, 0.9]
    for row in (EOS_ID, 0, 3, B_, C):
        table[row, EOS_ID] = 1.0
    short = run(table_step(table), beam=2, alpha=0.0)[0][0, 0]
    long = run(table_step(table), beam=2, alpha=1.0)[0][0, 0]
    assert short[0] == EOS_ID  # log .55 > log(.45 * .9)
    assert long[:2].tolist() == [A, EOS_ID]  # log(.405) / 2 > log(.55) / 1


def random_step(seed, hidden=5):
    rng = np.random.default_rng(seed)
    emb = ops.convert_to_tensor(rng.normal(size=(V, hidden)).astype("float32"))
    w = ops.convert_to_tensor(rng.normal(size=(hidden, hidden)).astype("float32"))
    out = ops.convert_to_tensor((2 * rng.normal(size=(hidden, V))).astype("float32"))

    def step(tokens, state):
        state = ops.tanh(ops.matmul(state, w) + ops.take(emb, tokens, axis=0))
        return ops.log_softmax(ops.matmul(state, out), axis=-1), state

    return step


def test_beam_one_equals_a_plain_greedy_loop():
    step = random_step(0)
    batch, length = 4, 6
    state0 = ops.convert_to_tensor(np.random.default_rng(1).normal(size=(batch, 5)).astype("float32"))
    seqs, _, _ = beam_search(step, state0, batch_size=batch, beam_size=1, max_length=length, vocab_size=V,
                             length_penalty=0.0)
    tokens, state, expected, done = np.full(batch, BOS_ID), state0, [], np.zeros(batch, bool)
    for _ in range(length):
        logp, state = step(ops.convert_to_tensor(tokens.astype("int32")), state)
        logp = ops.convert_to_numpy(logp).copy()
        logp[:, [PAD_ID, BOS_ID]] = -np.inf  # never generated
        tokens = logp.argmax(-1)
        expected.append(np.where(done, 0, tokens))
        done |= tokens == EOS_ID
    np.testing.assert_array_equal(ops.convert_to_numpy(seqs)[:, 0], np.stack(expected, 1))


def test_beam_rows_are_independent():
    """Batch rows do not mix: each row's result equals running it alone (state reordered per row)."""
    step = random_step(2)
    state = np.random.default_rng(3).normal(size=(3, 5)).astype("float32")
    together = beam_search(step, ops.convert_to_tensor(np.repeat(state, 4, 0)), batch_size=3, beam_size=4,
                           max_length=5, vocab_size=V)[0]
    for row in range(3):
        alone = beam_search(step, ops.convert_to_tensor(np.repeat(state[row : row + 1], 4, 0)), batch_size=1,
                            beam_size=4, max_length=5, vocab_size=V)[0]
        np.testing.assert_array_equal(ops.convert_to_numpy(together)[row], ops.convert_to_numpy(alone)[0])


def test_model_beam_one_equals_greedy_and_nbest_is_sorted():
    from tests.test_search_and_learning import small_model

    keras.utils.set_random_seed(5)
    system = small_model(attention="luong")
    for w in system.model.weights:
        w.assign(ops.convert_to_numpy(w) * 3.0)
    source = np.array([[4, 5, 6, 7], [8, 9, 4, 0], [5, 5, 0, 0]], "int32")
    greedy = np.asarray(GreedySearch(system.model, max_length=7).predict_on_batch(source))
    seqs, _, _ = BeamSearch(system.model, beam_size=1, length_penalty=0.0, max_length=7).predict_on_batch(source)
    np.testing.assert_array_equal(np.asarray(seqs)[:, 0], greedy)
    seqs5, scores5, logps5 = BeamSearch(system.model, beam_size=5, length_penalty=0.0,
                                        max_length=7).predict_on_batch(source)
    assert np.asarray(seqs5).shape == (3, 5, 7)
    assert (np.diff(np.asarray(scores5), axis=1) <= 1e-5).all()
    np.testing.assert_allclose(np.asarray(logps5), np.asarray(scores5), rtol=1e-6)  # length_penalty 0: score = log p


@pytest.mark.parametrize("search", [GreedySearch, BeamSearch])
def test_a_search_is_traced_once_not_first_run_eagerly(search, monkeypatch):
    """Keras builds an unbuilt model by calling it eagerly before compiling: a whole search op by op (~3 s)."""
    from tests.test_search_and_learning import small_model

    system = small_model(attention="luong")
    model = search(system.model, max_length=5)
    calls = []
    original = type(model).call
    monkeypatch.setattr(type(model), "call", lambda self, source: calls.append(1) or original(self, source))
    model.predict_on_batch(np.array([[4, 5, 6]], "int32"))
    assert model.built and len(calls) == 1  # traced by jit once; 2 when Keras first ran it eagerly to build it


def test_run_matches_predict_on_batch_and_follows_the_current_weights():
    """``SearchModel.run`` (one jitted stateless call) gives Keras's ``predict_on_batch`` answers, new weights too."""
    from biseq.search import OutputScorer
    from tests.test_search_and_learning import small_model

    keras.utils.set_random_seed(7)
    system = small_model(attention="luong")
    source = np.array([[4, 5, 6, 7], [8, 9, 4, 0], [5, 5, 0, 0]], "int32")
    searches = [GreedySearch(system.model, max_length=7), BeamSearch(system.model, beam_size=3, max_length=7)]
    scorer = OutputScorer(system.model)
    scored = (source, np.array([0, 1, 2], "int32"), np.array([[BOS_ID, 4, 5], [BOS_ID, 6, 0], [BOS_ID, 0, 0]], "int32"),
              np.array([[4, 5, EOS_ID], [6, EOS_ID, 0], [EOS_ID, 0, 0]], "int32"))
    for _weights_changed in range(2):
        for model, inputs in [*((s, source) for s in searches), (scorer, scored)]:
            fast, keras_way = model.run(inputs), model.predict_on_batch(inputs)
            for a, b in zip(keras.tree.flatten(fast), keras.tree.flatten(keras_way), strict=True):
                np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
        before = np.asarray(scorer.run(scored))
        for w in system.model.weights:  # as training does between epochs: the next run must see it
            w.assign(ops.convert_to_numpy(w) * 1.5)
        assert not np.allclose(np.asarray(scorer.run(scored)), before)
