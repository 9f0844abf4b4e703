"""The NumPy decoding path gives the Keras path's outputs and scores, loads without Keras or JAX,
and refuses what it does not compute or cannot read with a message naming the file."""

import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

from biseq import numpy_decoding
from biseq.model_files import ModelDirError
from biseq.numpy_decoding import NumpyTransducer
from biseq.numpy_model import UnsupportedModel
from biseq.transducer import Transducer
from tests.test_search_and_learning import small_model

CONFIGS = [
    # the bundled English model's shape
    dict(encoder="bilstm", encoder_layers=2, decoder="lstm", bridge="dense", attention="luong", input_feeding=False),
    dict(encoder="bigru", encoder_layers=2, decoder="gru", decoder_layers=2, attention="bahdanau",
         input_feeding=True),
    dict(encoder="lstm", decoder="lstm", attention="none", decoder_units=8),
    dict(encoder="bilstm", decoder="gru", bridge="concat", attention="luong", input_feeding=True),
    dict(encoder="gru", decoder="lstm", attention="bahdanau", input_feeding=False, bridge="dense"),
]
# lengths 1..9: padding inside batches, both directions of the encoder over it
SOURCES = [[4, 5, 6, 7], [8, 9, 4], [5], [6, 7, 8, 9, 4, 5, 6, 7, 8], [9, 9, 9, 4, 4], [7, 4]]


def saved_pair(tmp_path, seed: int = 3, **kwargs):
    """A random model (weights x3, so the argmax path is not trivial) saved compactly, read back both ways."""
    keras.utils.set_random_seed(seed)
    system = small_model(**kwargs)
    for w in system.model.weights:
        w.assign(ops.convert_to_numpy(w) * 3.0)
    system.save(tmp_path, weights_dtype="float16")
    return NumpyTransducer.load(tmp_path), Transducer.load(tmp_path)


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_numpy_path_matches_keras(tmp_path, kwargs):
    fast, reference = saved_pair(tmp_path, **kwargs)
    assert fast.predict_ids(SOURCES) == [reference.target_vocab.encode(reference.target_vocab.decode(r), warn=False)
                                         for r in reference.predict_ids(SOURCES)]
    mine = fast.beam_nbest_ids(SOURCES, beam_size=4, nbest=4, length_penalty=0.8)
    theirs = reference.beam_nbest_ids(SOURCES, beam_size=4, nbest=4, length_penalty=0.8)
    assert [[h for h, _, _ in hyps] for hyps in mine] == [[h for h, _, _ in hyps] for hyps in theirs]
    np.testing.assert_allclose([s for hyps in mine for _, s, _ in hyps], [s for hyps in theirs for _, s, _ in hyps],
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose([p for hyps in mine for _, _, p in hyps], [p for hyps in theirs for _, _, p in hyps],
                               rtol=1e-4, atol=1e-4)
    # teacher forcing over candidates of several lengths; sources repeat (each is encoded once)
    sources = [SOURCES[i] for i, hyps in enumerate(theirs) for _ in hyps] + [SOURCES[0]]
    outputs = [h for hyps in theirs for h, _, _ in hyps] + [[5, 6, 7, 8, 9]]
    np.testing.assert_allclose(fast.output_log_probs(sources, outputs), reference.output_log_probs(sources, outputs),
                               rtol=1e-4, atol=1e-4)


def test_beam_drops_settled_sources_and_keeps_the_full_search_results(tmp_path, monkeypatch):
    """A source leaves the NumPy beam once its K finished hypotheses cannot be beaten; the n-best lists
    (order, scores) stay those of the compiled search, which runs every source until all are settled."""
    fast, reference = saved_pair(tmp_path, seed=11, **CONFIGS[0])
    calls = []  # per beam search: its sources, then the rows of each step
    step, search = fast.model.step, numpy_decoding.beam_ids
    monkeypatch.setattr(fast.model, "step", lambda tokens, *a: calls[-1].append(len(tokens)) or step(tokens, *a))
    monkeypatch.setattr(numpy_decoding, "beam_ids", lambda m, sources, **kw: calls.append([len(sources)]) or
                        search(m, sources, **kw))
    mine = fast.beam_nbest_ids(SOURCES, beam_size=3, nbest=3)
    theirs = reference.beam_nbest_ids(SOURCES, beam_size=3, nbest=3)
    assert sum(c[0] for c in calls) == len(SOURCES)
    assert all(c[1] == 3 * c[0] and c[1:] == sorted(c[1:], reverse=True) for c in calls), calls
    assert any(c[-1] < c[1] for c in calls), calls  # some source left before the last step
    assert [[h for h, _, _ in hyps] for hyps in mine] == [[h for h, _, _ in hyps] for hyps in theirs]
    np.testing.assert_allclose([s for hyps in mine for _, s, _ in hyps], [s for hyps in theirs for _, s, _ in hyps],
                               rtol=1e-4, atol=1e-4)


def test_one_answer_settles_sooner_with_the_full_search_best(tmp_path, monkeypatch):
    """Asked for the best only, the NumPy beam drops a source once its best is final: fewer decoder rows,
    the same best (ids, score, log p) as the full search, NumPy and compiled alike."""
    fast, reference = saved_pair(tmp_path, seed=11, **CONFIGS[0])
    rows = []
    step = fast.model.step
    monkeypatch.setattr(fast.model, "step", lambda tokens, *a: rows.append(len(tokens)) or step(tokens, *a))
    full = fast.beam_nbest_ids(SOURCES, beam_size=4, nbest=4, length_penalty=0.8)
    full_rows, rows[:] = sum(rows), []
    best = fast.beam_nbest_ids(SOURCES, beam_size=4, nbest=1, length_penalty=0.8)
    assert sum(rows) < full_rows
    compiled = reference.beam_nbest_ids(SOURCES, beam_size=4, nbest=1, length_penalty=0.8)
    assert [h[0][0] for h in best] == [h[0][0] for h in full] == [h[0][0] for h in compiled]
    np.testing.assert_allclose([h[0][1:] for h in best], [h[0][1:] for h in full], rtol=1e-5)
    np.testing.assert_allclose([h[0][1:] for h in best], [h[0][1:] for h in compiled], rtol=1e-4, atol=1e-4)


def test_beam_of_one_is_greedy_when_ranked_by_log_p(tmp_path):
    fast, _ = saved_pair(tmp_path, seed=5, **CONFIGS[0])
    found = fast.beam_nbest_ids(SOURCES, beam_size=1, length_penalty=0.0)
    assert [hyps[0][0] for hyps in found] == fast.predict_ids(SOURCES)


def test_loads_and_decodes_without_keras_or_jax(tmp_path):
    saved_pair(tmp_path, **CONFIGS[0])
    code = ("import sys; from biseq.numpy_decoding import NumpyTransducer; "
            f"m = NumpyTransducer.load({str(tmp_path)!r}); print(m.predict_ids([[4, 5, 6]])); "
            "print(sorted({'keras', 'jax'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"


def test_refuses_what_it_does_not_compute(tmp_path):
    keras.utils.set_random_seed(1)
    twin = small_model(encoder="bilstm", decoder="bilstm", objective="twin", attention="luong", decoder_units=8)
    twin.save(tmp_path / "twin", weights_dtype="float16")
    with pytest.raises(UnsupportedModel, match="objective 'twin'"):
        NumpyTransducer.load(tmp_path / "twin")
    plain = small_model()
    plain.save(tmp_path / "keras")  # model.keras: the Keras path reads it
    with pytest.raises(UnsupportedModel, match="no weights.npz, and its model.keras has no cached copy yet"):
        NumpyTransducer.load(tmp_path / "keras")


def test_a_model_keras_directory_gets_a_numpy_copy_after_its_first_compiled_load(tmp_path):
    from biseq.g2p.api import G2P
    from biseq.g2p.system import System

    keras.utils.set_random_seed(2)
    trained = small_model(**CONFIGS[0])
    trained.save(tmp_path / "run")  # what 'biseq train' writes: model.keras
    first = G2P(System.open(tmp_path / "run"))
    assert first.numpy_decoder is None
    words = ["abc", "cab", "bca", "aabbcc"]
    compiled = first.predict(words, nbest=2)  # loads the compiled path, which caches the weights
    again = G2P(System.open(tmp_path / "run"))
    assert again.numpy_decoder is not None
    fast = again.predict(words, nbest=2)
    assert [[p.phones for p in r.pronunciations] for r in fast] == [[p.phones for p in r.pronunciations]
                                                                   for r in compiled]
    np.testing.assert_allclose([p.prob for r in fast for p in r.pronunciations],
                               [p.prob for r in compiled for p in r.pronunciations], atol=1e-4)
    (tmp_path / "run" / "model.keras").touch()  # a replaced model.keras: the copy is stale, not used
    assert G2P(System.open(tmp_path / "run")).numpy_decoder is None
    # the CLI on a plain model directory: the first run compiles (and caches), the next runs in NumPy
    code = ("import sys; from biseq.cli import main; rc = main(['predict', '--model', sys.argv[1], *sys.argv[2:]]); "
            "print('heavy:', sorted(m for m in ('keras', 'jax') if m in sys.modules)); sys.exit(rc)")
    runs = [subprocess.run([sys.executable, "-c", code, str(tmp_path / "run"), *args], capture_output=True,
                           text=True, timeout=300) for args in (words, words, ["--beam", "3", "--nbest", "2", *words],
                                                                ["--beam", "3", "--nbest", "2", *words])]
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    assert runs[0].stdout.splitlines()[-1] == "heavy: ['jax', 'keras']"
    assert runs[1].stdout.splitlines()[-1] == runs[3].stdout.splitlines()[-1] == "heavy: []"
    assert runs[0].stdout.splitlines()[:-1] == runs[1].stdout.splitlines()[:-1]
    assert len(runs[3].stdout.splitlines()) == 2 * len(words) + 1


def test_damaged_or_mismatched_weights_are_named(tmp_path):
    saved_pair(tmp_path / "a", **CONFIGS[0])
    weights = tmp_path / "a" / "weights.npz"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(ModelDirError, match="weights.npz: not a readable weights file"):
        NumpyTransducer.load(tmp_path / "a")
    saved_pair(tmp_path / "b", **CONFIGS[1])
    (tmp_path / "a" / "weights.npz").write_bytes((tmp_path / "b" / "weights.npz").read_bytes())
    with pytest.raises(ModelDirError, match=r"weights.npz: .*shape"):
        NumpyTransducer.load(tmp_path / "a")
