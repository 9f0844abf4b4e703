"""The command line end to end on tiny data, in fresh processes, and its bad-input errors."""

import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import reversal_lines

ENV = {**os.environ, "KERAS_BACKEND": "jax"}


def biseq(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "biseq.cli", *map(str, args)], capture_output=True, text=True,
                          input=stdin, env=ENV, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = root / "rev.tsv"
    data.write_text("\n".join(reversal_lines(150)) + "\n")
    out = root / "model"
    result = biseq("train", "--data", data, "--source-split", "char", "--out", out, "--epochs", 3,
                   "--encoder-units", 16, "--decoder-units", 32, "--quiet", "--show", 3, "--keep-checkpoints", 2)
    assert result.returncode == 0, result.stderr
    return root, data, out, result.stdout


def test_train_writes_a_complete_model_directory(trained):
    _, _, out, stdout = trained
    for name in ("model.keras", "vocab.json", "config.json", "last-003.keras", "state.json", "history.json",
                 "history.png"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in out.glob("last*.keras")) == ["last-003.keras"]  # older checkpoints removed
    assert json.loads((out / "state.json").read_text())["checkpoint"] == "last-003.keras"
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    pairs = int(re.search(r"training: (\d+) pairs in", stdout).group(1))
    for h in history:  # whole epochs: every training pair once, over the epoch's training seconds
        assert h["pairs_per_second"] * h["seconds"] == pytest.approx(pairs)
        assert f"{h['seconds']:.0f}s  {h['pairs_per_second']:.0f} pairs/s" in stdout
    assert "word error rate on held-out words:" in stdout
    assert "held-out predictions" in stdout
    assert "lstm layer 1 h (batch, 32) <- [bilstm layer 1 forward h (batch, 16); bilstm layer 1 backward h" \
           in stdout


def test_predict_after_load_is_identical_to_in_process(trained):
    _, _, out, _ = trained
    from biseq.transducer import Transducer

    words = ["abc", "fed", "dacbe"]
    expected = Transducer.load(out).predict(words)
    result = biseq("predict", "--model", out, *words)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{w}\t{p}" for w, p in zip(words, expected, strict=True)]
    piped = biseq("predict", "--model", out, stdin="abc\n\nfed\n")
    assert piped.stdout.splitlines() == result.stdout.splitlines()[:2]


def test_unknown_symbols_warn_once(trained):
    _, _, out, _ = trained
    result = biseq("predict", "--model", out, "abz", "zq")
    assert result.returncode == 0
    assert result.stderr.count("warning") == 1
    assert "Unknown source symbol(s) mapped to <unk>: ['z', 'q']" in result.stderr
    assert len(result.stdout.splitlines()) == 2


def test_evaluate_and_info(trained):
    root, data, out, _ = trained
    result = biseq("evaluate", "--model", out, "--data", data)
    assert result.returncode == 0, result.stderr
    assert "WER" in result.stdout and "PER" in result.stdout and "(150 items)" in result.stdout
    assert re.search(r"decoded 150 sources in \d+\.\ds \(greedy, compilation included\): \d+ per second",
                     result.stdout), result.stdout
    from biseq.config import Config
    from biseq.corpus import read_corpus, split_corpus

    config = Config.from_dict(json.loads((out / "config.json").read_text())).data
    dev = split_corpus(read_corpus(data, config=config), config)["dev"]
    result = biseq("evaluate", "--model", out, "--data", data, "--split", "dev")
    assert result.returncode == 0, result.stderr
    assert f"(dev split, {len(dev)} sources)" in result.stdout and f"({len(dev)} items)" in result.stdout
    assert 0 < len(dev) < 150
    info = biseq("info", "--model", out)
    assert info.returncode == 0
    assert "bridge: concat" in info.stdout
    assert "lstm layer 1 c (batch, 32) <- [bilstm layer 1 forward c (batch, 16); bilstm layer 1 backward c " \
           "(batch, 16)]" in info.stdout


def test_resume_continues_after_the_last_epoch(trained):
    root, data, out, _ = trained
    before = (out / "model.keras").read_bytes()
    again = biseq("train", "--data", data, "--source-split", "char", "--out", out, "--epochs", 1, "--quiet")
    assert again.returncode == 2 and "already holds a training run" in again.stderr and "--resume" in again.stderr
    assert (out / "model.keras").read_bytes() == before
    result = biseq("train", "--data", data, "--source-split", "char", "--out", out, "--epochs", 4,
                   "--encoder-units", 16, "--decoder-units", 32, "--quiet", "--resume", "--show", 0)
    assert result.returncode == 0, result.stderr
    assert "resuming from" in result.stdout and "after epoch 3" in result.stdout
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]


def test_cosine_schedule_and_a_spent_time_budget(tmp_path):
    from biseq.schedule import cosine_rate

    data = tmp_path / "rev.tsv"
    data.write_text("\n".join(reversal_lines(60)) + "\n")
    out = tmp_path / "model"
    common = ("--data", data, "--source-split", "char", "--out", out, "--encoder-units", 8, "--decoder-units", 16,
              "--quiet", "--show", 0, "--lr-schedule", "cosine", "--learning-rate", 0.01)
    result = biseq("train", *common, "--epochs", 2)
    assert result.returncode == 0, result.stderr
    history = json.loads((out / "history.json").read_text())
    rates = [h["learning_rate"] for h in history]  # set at the start of each epoch, from its middle's progress
    assert rates == pytest.approx([cosine_rate(p, base=0.01, final_fraction=0.01) for p in (0.25, 0.75)])
    assert rates[0] == pytest.approx(0.01 * (0.01 + 0.99 * 0.5 * (1 + 2 ** -0.5)))
    # the whole run's time limit is already spent: resuming trains nothing and says how to go on
    again = biseq("train", *common, "--epochs", 5, "--resume", "--time-limit", 0.001)
    assert again.returncode == 0, again.stderr
    assert "time limit of 0.001 minutes is spent" in again.stdout and "larger --time-limit" in again.stdout
    assert len(json.loads((out / "history.json").read_text())) == 2


@pytest.mark.parametrize(("lines", "message"), [
    ("ab\tA B\nno tab\n", "bad.tsv, line 2: expected 'source<TAB>target' (exactly one tab), found 0 tab(s)"),
    ("\n\n", "bad.tsv: no data"),
    ("ab\t\n", "bad.tsv, line 1: the target side is empty"),
])
def test_bad_training_data_is_a_one_line_error(tmp_path, lines, message):
    bad = tmp_path / "bad.tsv"
    bad.write_text(lines)
    result = biseq("train", "--data", bad, "--out", tmp_path / "m", "--quiet")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_other_user_errors(tmp_path, trained):
    _, _, out, _ = trained
    cases = [
        (("predict", "--model", tmp_path / "none", "abc"), "is not a biseq model directory: missing model.keras"),
        (("train", "--data", tmp_path / "missing.tsv", "--out", tmp_path / "m"), "missing.tsv: file not found"),
        (("train", "--encoder-units", 8, "--decoder-units", 9, "--out", tmp_path / "m"),
         "bridge='concat' gives each decoder state the shape (batch, 16)"),
        (("predict", "--model", out), "nothing to predict"),
    ]
    for args, message in cases:
        result = biseq(*args, stdin="")
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr
        assert "Traceback" not in result.stderr
    config = tmp_path / "c.json"
    config.write_text('{"model": {"units": 3}}')
    result = biseq("train", "--config", config, "--out", tmp_path / "m")
    assert result.returncode == 2 and "Unknown key(s) ['units'] for [model]" in result.stderr


@pytest.mark.parametrize("objective", ["twin", "masked"])
def test_bidirectional_objectives_train_save_and_predict_identically(tmp_path, objective):
    from biseq.transducer import Transducer

    data = tmp_path / "rev.tsv"
    data.write_text("\n".join(reversal_lines(100)) + "\n")
    out = tmp_path / objective
    result = biseq("train", "--data", data, "--source-split", "char", "--out", out, "--epochs", 2,
                   "--decoder", "bilstm", "--objective", objective, "--encoder-units", 16, "--quiet", "--show", 0)
    assert result.returncode == 0, result.stderr
    info = biseq("info", "--model", out)
    assert f"objective: {objective}" in info.stdout
    assert "bilstm layer 1 backward c (batch, 16) <- bilstm layer 1 backward c (batch, 16)" in info.stdout
    words = ["abc", "fed", "dacbe"]
    system = Transducer.load(out)
    expected = system.predict(words)
    args = ["--beam", 3, "--nbest", 2] if objective == "twin" else ["--iterations", 4]
    result = biseq("predict", "--model", out, *words, *args)
    assert result.returncode == 0, result.stderr
    if objective == "twin":
        expected_nbest = system.predict_nbest(words, beam_size=3, nbest=2)
        lines = [line.split("\t") for line in result.stdout.splitlines()]
        assert [(w, h) for w, h, _ in lines] == [(w, h) for w, hyps in zip(words, expected_nbest, strict=True)
                                                 for h, _ in hyps]
        assert all(float(s) <= 0 for _, _, s in lines)
    else:
        assert result.stdout.splitlines() == [f"{w}\t{p}" for w, p in zip(words, expected, strict=True)]
        refused = biseq("predict", "--model", out, "abc", "--beam", 2)
        assert refused.returncode == 2 and "non-autoregressive" in refused.stderr


def test_train_flags_become_a_config():
    from biseq.cli import _build_parser, _train_config

    def config(*argv):
        return _train_config(_build_parser().parse_args(["train", *map(str, argv)]))

    default = config()
    assert default.data.path == "" and default.train.time_limit_minutes == 12
    tsv = config("--data", "pairs.tsv")
    assert (tsv.data.format, tsv.data.source_split, tsv.data.target_split) == ("tsv", "space", "space")
    assert tsv.train.time_limit_minutes == 0
    assert config("--data", "p.tsv", "--char").data.source_split == "char"
    assert config("--data", "p.tsv", "--char").data.target_split == "char"
    twin = config("--decoder", "bilstm", "--encoder-units", 64)
    assert (twin.model.resolved_objective, twin.model.decoder_units, twin.model.attention) == ("twin", 64, "luong")
    masked = config("--decoder", "bilstm", "--objective", "masked")
    assert (masked.model.attention, masked.model.decoder_units) == ("luong", 128)
    seed = config("--decoder", "bilstm", "--objective", "seed")
    assert seed.model.attention == "none"
    assert config("--encoder", "lstm").model.decoder_units == 128  # direct bridge: same size
    assert config("--layers", 2).model.decoder_layers == 2


def test_average_of_the_last_epochs_is_a_working_model(trained, tmp_path):
    root, data, out, _ = trained
    assert sorted(p.name for p in (out / "epochs").iterdir()) == ["epoch-002.weights.h5", "epoch-003.weights.h5"]
    result = biseq("average", "--model", out, "--last", 2, "--out", tmp_path / "avg")
    assert result.returncode == 0, result.stderr
    assert "averaged 2 checkpoints (epoch-002.weights.h5, epoch-003.weights.h5)" in result.stdout
    result = biseq("evaluate", "--model", tmp_path / "avg", "--data", data)
    assert result.returncode == 0, result.stderr
    assert "WER" in result.stdout
    # the run's best model and the average decode together as an ensemble
    result = biseq("predict", "--model", out, "--model", tmp_path / "avg", "--beam", 2, "--nbest", 2, "abc")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2 and result.stdout.startswith("abc\t")
    # --nbest without --beam: the beam is as wide as the n-best list (was an error); too narrow a beam still is one
    result = biseq("predict", "--model", out, "--nbest", 3, "abc")
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 3, result.stderr
    result = biseq("predict", "--model", out, "--beam", 2, "--nbest", 3, "abc")
    assert result.returncode == 2 and "--nbest 3 needs --beam of at least 3" in result.stderr
    for args, message in (((out, "--last", 0, "--out", tmp_path / "x"), "--last must be at least 1"),
                          ((out, "--out", out), "--out must be a new directory"),
                          ((tmp_path / "avg", "--out", tmp_path / "y"), "no epoch checkpoints")):
        result = biseq("average", "--model", *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr


def test_the_cli_shows_biseqs_warnings_and_not_a_librarys_deprecations(capsys):
    """``biseq predict | lexicon`` print each UserWarning (unknown characters) once as ``biseq: warning:``; a
    library's DeprecationWarning raised while decoding (NumPy 2's ``__array__`` copy keyword, from a dependency)
    once filled the terminal with one line per batch."""
    import warnings

    from biseq import cli

    with cli._warnings_to_stderr():
        for _ in range(3):
            warnings.warn("__array__ implementation doesn't accept a copy keyword", DeprecationWarning, stacklevel=1)
        warnings.warn("word 'the': characters the model never saw skipped: 't'", UserWarning, stacklevel=1)
    assert capsys.readouterr().err.splitlines() == [
        "biseq: warning: word 'the': characters the model never saw skipped: 't'"]
