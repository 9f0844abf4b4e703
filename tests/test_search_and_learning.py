"""Greedy decoding and learning: overfit a reversal task, greedy == teacher-forced argmax on own outputs."""

import keras
import numpy as np
import pytest
from keras import ops

from biseq.config import Config
from biseq.corpus import parse_tsv
from biseq.search import GreedySearch, LeakyDecodingError
from biseq.training import MaskedCrossEntropy, evaluate, prepare
from biseq.transducer import Transducer
from biseq.vocabulary import BOS_ID, EOS_ID, PAD_ID
from tests.conftest import reversal_lines


def small_model(**kwargs) -> Transducer:
    entries = parse_tsv(reversal_lines(40), name="rev", source_split="char")
    from biseq.vocabulary import Vocabulary

    config = Config().replace(data={"format": "tsv", "source_split": "char"},
                              model=dict(dict(embedding_dim=8, encoder_units=8, decoder_units=16), **kwargs))
    return Transducer(config=config, source_vocab=Vocabulary.build(e.source for e in entries),
                      target_vocab=Vocabulary.build((t for e in entries for t in e.targets),
                                                    extra=("<mask>",) if kwargs.get("objective") == "masked" else ()))


@pytest.mark.parametrize("kwargs", [
    {"attention": "luong"},
    {"attention": "bahdanau", "input_feeding": False},
    {"attention": "none", "encoder": "bigru", "decoder": "gru"},
    {"attention": "luong", "encoder": "lstm", "decoder": "lstm", "decoder_units": 8,
     "encoder_layers": 2, "decoder_layers": 2},
])
def test_greedy_equals_teacher_forced_argmax_on_own_outputs(kwargs):
    keras.utils.set_random_seed(3)
    system = small_model(**kwargs)
    for w in system.model.weights:  # larger random weights so the argmax path is not trivial
        w.assign(ops.convert_to_numpy(w) * 3.0)
    source = np.array([[4, 5, 6, 7], [8, 9, 4, 0], [5, 5, 0, 0]], "int32")
    greedy = np.asarray(GreedySearch(system.model, max_length=7).predict_on_batch(source))
    assert greedy.shape == (3, 7)
    decoder_input = np.concatenate([np.full((3, 1), BOS_ID), greedy[:, :-1]], axis=1).astype("int32")
    logits = ops.convert_to_numpy(system.model((source, decoder_input)))
    logits[..., [PAD_ID, BOS_ID]] = -np.inf  # never generated
    argmax = logits.argmax(-1)
    for row in range(3):
        ends = np.flatnonzero(greedy[row] == EOS_ID)
        n = ends[0] + 1 if len(ends) else greedy.shape[1]
        np.testing.assert_array_equal(greedy[row, :n], argmax[row, :n])
        assert (greedy[row, n:] == PAD_ID).all()


def test_seed_objective_refuses_greedy_decoding():
    system = small_model(decoder="bilstm", decoder_units=8, attention="none", objective="seed")
    with pytest.raises(LeakyDecodingError, match="backward half reads the target tokens after position t.*'twin'"
                                                 ".*'masked'"):
        system.predict(["abc"])


def test_overfits_reversal_to_full_exact_match(tmp_path):
    """A small model learns to reverse 120 words: 100% exact match with greedy decoding."""
    data = tmp_path / "rev.tsv"
    data.write_text("\n".join(reversal_lines(120)) + "\n")
    config = Config().replace(
        data={"path": str(data), "format": "tsv", "source_split": "char", "dev_fraction": 0.0,
              "test_fraction": 0.0},
        model={"embedding_dim": 16, "encoder_units": 32, "decoder_units": 64, "dropout": 0.0},
        train={"batch_size": 32, "learning_rate": 0.01})
    keras.utils.set_random_seed(0)
    prepared = prepare(config)
    system = Transducer(config=config, source_vocab=prepared.source_vocab, target_vocab=prepared.target_vocab)
    system.model.compile(optimizer=keras.optimizers.Adam(0.01, global_clipnorm=5.0), loss=MaskedCrossEntropy())
    from biseq.batching import encode_pairs
    from biseq.training import BatchSequence

    seq = BatchSequence(encode_pairs(prepared.train, prepared.source_vocab, prepared.target_vocab),
                        batch_size=32, seed=0)
    system.model.fit(seq, epochs=60, verbose=0)
    scores, hyps = evaluate(system, prepared.train)
    assert scores.exact_match == 100.0, list(zip(prepared.train[:5], hyps[:5], strict=False))
    assert system.predict(["fab", "cafe"]) == ["B A F", "E F A C"]


def test_input_case_follows_the_vocabulary():
    system = small_model()  # sources are lower-case letters
    assert system.tokenize_source("CaFe") == ("c", "a", "f", "e")
    from biseq.vocabulary import Vocabulary

    upper = Transducer(config=system.config, source_vocab=Vocabulary.build(["AB", "C"]),
                       target_vocab=system.target_vocab, model=system.model)
    assert upper.tokenize_source("abc") == ("A", "B", "C")
    mixed = Transducer(config=system.config, source_vocab=Vocabulary.build(["aB"]),
                       target_vocab=system.target_vocab, model=system.model)
    assert mixed.tokenize_source("Ab") == ("A", "b")


def test_a_transposed_model_reads_phones_and_writes_letters():
    """Phoneme-to-grapheme from the cmudict format: phones are not folded to lower case and split by spaces."""
    import dataclasses

    from biseq.vocabulary import Vocabulary

    system = small_model()
    config = dataclasses.replace(system.config, data=dataclasses.replace(system.config.data, format="cmudict",
                                                                         transpose=True))
    p2g = Transducer(config=config, source_vocab=Vocabulary.build([["R", "IY", "D"]]),
                     target_vocab=Vocabulary.build(["read"]), model=system.model)
    assert p2g.tokenize_source("R IY D") == ("R", "IY", "D")
    assert p2g.tokenize_source("r iy d") == ("R", "IY", "D")  # the vocabulary's case
    assert p2g.target_text(["r", "e", "a", "d"]) == "read" and p2g.source_text(("R", "IY", "D")) == "R IY D"
