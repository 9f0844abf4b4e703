"""Ensembles: one beam search over the models' averaged next-token distributions."""

import keras
import numpy as np
import pytest
from keras import ops

from biseq.batching import target_batch
from biseq.ensemble import Ensemble, EnsembleError
from tests.test_search_and_learning import small_model

SOURCES = [list("abcde"), list("fed"), list("ab"), list("cafebad")]


def _models(count):
    models = []
    for seed in range(count):
        keras.utils.set_random_seed(seed)
        models.append(small_model())
    return models


def _teacher_forced_log_probs(transducer, sources, outputs):
    """``[N, T, V]`` log-probabilities and ``[N, T]`` targets/weights for given outputs."""
    batch = target_batch(sources, outputs, rows=len(sources), source_width=max(map(len, sources)),
                         target_width=max(map(len, outputs)) + 1)
    logits = transducer.model((batch.source, batch.decoder_input))
    return ops.convert_to_numpy(ops.log_softmax(logits, axis=-1)), batch.decoder_target, batch.weight


def _greedy(ensemble):
    """The ensemble's greedy outputs of SOURCES (at most 12 tokens) and their scores (log p)."""
    ensemble.config = ensemble.config.replace(train={"max_decode_length": 12})
    sources = ensemble.encode_sources(SOURCES)
    found = ensemble.predict_nbest_ids(sources, beam_size=1, length_penalty=0.0)
    return sources, [n[0][0] for n in found], np.array([n[0][1] for n in found])


def _expected(mean, target, weight, outputs):
    """``sum_t log p(target_t)`` under ``mean [N, T, V]``; no ``</s>`` for an output that never ended."""
    weight = np.array(weight)
    for row, out in enumerate(outputs):
        if len(out) == 12:  # never ended: no </s> in its score
            weight[row, 12] = 0
    picked = np.take_along_axis(mean, np.asarray(target)[..., None].astype(int), axis=-1)[..., 0]
    return (picked * weight).sum(-1)


def test_ensemble_scores_are_the_log_of_the_mean_probability():
    a, b = _models(2)
    sources, outputs, score = _greedy(Ensemble([a, b]))
    (la, target, weight), (lb, _, _) = (_teacher_forced_log_probs(m, sources, outputs) for m in (a, b))
    mean = np.logaddexp(la, lb) - np.log(2)
    np.testing.assert_allclose(score, _expected(mean, target, weight, outputs), rtol=1e-4, atol=1e-4)
    # and it differs from each member's own greedy output somewhere, or at least in score
    alone = [n[0][1] for n in Ensemble([a]).predict_nbest_ids(sources, beam_size=1, length_penalty=0.0)]
    assert not np.allclose(alone, score)


def test_ensemble_of_one_and_of_copies_equals_the_model():
    (a,) = _models(1)
    sources = a.encode_sources(SOURCES)
    single = a.predict_nbest_ids(sources, beam_size=3, nbest=3)
    for members in ([a], [a, a]):
        got = Ensemble(members).predict_nbest_ids(sources, beam_size=3, nbest=3)
        assert [[ids for ids, _ in n] for n in got] == [[ids for ids, _ in n] for n in single]
        np.testing.assert_allclose([[s for _, s in n] for n in got], [[s for _, s in n] for n in single],
                                   rtol=1e-5, atol=1e-5)


def test_models_with_different_vocabularies_are_refused():
    (a,) = _models(1)
    from biseq.config import Config
    from biseq.transducer import Transducer
    from biseq.vocabulary import Vocabulary

    other = Transducer(config=Config().replace(model=dict(embedding_dim=8, encoder_units=8, decoder_units=16)),
                       source_vocab=Vocabulary.build([list("xyz")]), target_vocab=a.target_vocab)
    with pytest.raises(EnsembleError, match="Model 2 has a different source vocabulary"):
        Ensemble([a, other])


def test_members_with_the_same_symbols_in_another_order_decode_in_their_own_ids():
    """Vocabularies built by frequency on other data order the same symbols differently: each member
    reads and scores in its own ids, and the ensemble is the mean of the members' probabilities."""
    from biseq.transducer import Transducer
    from biseq.vocabulary import Vocabulary

    a, b = _models(2)

    def shuffled(vocab):
        symbols = vocab.to_list()
        return Vocabulary(symbols[:4] + symbols[4:][::-1])

    other = Transducer(config=b.config, source_vocab=shuffled(b.source_vocab), target_vocab=shuffled(b.target_vocab))
    other.model.set_weights(b.model.get_weights())  # b's weights, read through other ids: another model
    ensemble = Ensemble([a, other])
    sources, outputs, score = _greedy(ensemble)
    tmap = np.array([other.target_vocab.id(s) for s in a.target_vocab.to_list()])
    smap = np.array([other.source_vocab.id(s) for s in a.source_vocab.to_list()])
    la, target, weight = _teacher_forced_log_probs(a, sources, outputs)
    lo, _, _ = _teacher_forced_log_probs(other, [[int(smap[t]) for t in s] for s in sources],
                                         [[int(tmap[t]) for t in o] for o in outputs])
    mean = np.logaddexp(la, lo[..., tmap]) - np.log(2)  # other's log-probs in a's order
    np.testing.assert_allclose(score, _expected(mean, target, weight, outputs), rtol=1e-4, atol=1e-4)
    ended = [row for row, out in enumerate(outputs) if len(out) < 12]
    np.testing.assert_allclose(ensemble.output_log_probs([sources[r] for r in ended], [outputs[r] for r in ended]),
                               score[ended], rtol=1e-4, atol=1e-4)
