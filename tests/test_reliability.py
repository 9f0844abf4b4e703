"""Reliability: SIGKILL at random moments and resume gives the same model; damaged or foreign model files refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from tests.kill_resume import ENV, run


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    return run(tmp_path_factory.mktemp("kills"), kills=5, seed=1, log=lambda _: None)


def test_killed_five_times_leaves_no_broken_checkpoint_and_resumes_to_the_end(killed):
    assert killed["problems"] == []
    assert killed["kills_before_the_last_epoch"] >= 3  # most attempts killed a run that still had work to do
    assert killed["resumed_from_distinct_epochs"] >= 2  # resumed after several epoch boundaries, not one


def test_killed_and_resumed_gives_the_uninterrupted_fingerprint(killed):
    assert killed["same"], (killed["fingerprint_uninterrupted"], killed["fingerprint_resumed"])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from biseq.config import Config
    from biseq.transducer import Transducer
    from biseq.vocabulary import SPECIALS, Vocabulary

    config = Config.from_dict({"model": {"embedding_dim": 8, "encoder_units": 8, "decoder_units": 16,
                                         "attention": "luong"}})
    t = Transducer(config=config, source_vocab=Vocabulary([*SPECIALS, "a", "b"]),
                   target_vocab=Vocabulary([*SPECIALS, "A", "B"]))
    out = tmp_path_factory.mktemp("saved") / "model"
    t.save(out)
    return out


def damaged(saved, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(saved, copy)
    return copy


def info(path):
    return subprocess.run([sys.executable, "-m", "biseq.cli", "info", "--model", str(path)], capture_output=True,
                          text=True, env=ENV, timeout=300)


def test_info_prints_a_stable_fingerprint(saved):
    first, second = info(saved), info(saved)
    assert first.returncode == 0, first.stderr
    line = [x for x in first.stdout.splitlines() if x.startswith("weights sha256: ")]
    assert len(line) == 1 and len(line[0].split()[-1]) == 64 and line == [
        x for x in second.stdout.splitlines() if x.startswith("weights sha256: ")]


def rewrite_zip(path, *, drop=(), add=None, replace=None):
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist() if n not in drop}
    members.update(add or {})
    for name, change in (replace or {}).items():
        members[name] = change(members[name])
    path.unlink()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def lambda_config(data: bytes) -> bytes:
    return json.dumps({"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Lambda", "config": {"function": "print"}}]}}).encode()


@pytest.mark.parametrize(("tamper", "message"), [
    (lambda d: (d / "vocab.json").unlink(), "missing vocab.json"),
    (lambda d: (d / "model.keras").write_bytes((d / "model.keras").read_bytes()[:300]), "not a readable .keras"),
    (lambda d: rewrite_zip(d / "model.keras", add={"payload.pkl": b"cos\nsystem\n(S'echo hi'\ntR."}),
     "unexpected member(s) ['payload.pkl']"),
    (lambda d: rewrite_zip(d / "model.keras", replace={"config.json": lambda_config}), "'Sequential' model"),
    (lambda d: rewrite_zip(d / "model.keras", drop=("model.weights.h5",)), "cannot be loaded"),
    (lambda d: (d / "vocab.json").write_text(json.dumps({"source": ["<pad>", "<s>", "</s>", "<unk>", "a", "b", "c"],
                                                          "target": ["<pad>", "<s>", "</s>", "<unk>", "A", "B"]})),
     "come from different runs"),
    (lambda d: (d / "config.json").write_text(json.dumps({"model": {"colour": 1}})), "Unknown key(s) ['colour']"),
    (lambda d: (d / "vocab.json").write_text("[1, 2]"), 'expected {"source"'),
])
def test_damaged_or_foreign_model_directories_are_refused_naming_the_file(saved, tmp_path, tamper, message):
    copy = damaged(saved, tmp_path)
    tamper(copy)
    result = info(copy)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_wrong_shapes_in_compact_weights_are_refused(saved, tmp_path):
    from biseq.transducer import ModelDirError, Transducer

    copy = damaged(saved, tmp_path)
    Transducer.load(copy).save(copy, weights_dtype="float16")
    (copy / "model.keras").unlink(missing_ok=True)
    with np.load(copy / "weights.npz") as arrays:
        values = {k: arrays[k] for k in arrays.files}
    values["w000"] = values["w000"][:-1]
    np.savez(copy / "weights.npz", **values)
    with pytest.raises(ModelDirError, match=r"weights.npz: array 0 .* has shape"):
        Transducer.load(copy)


def test_compact_weights_load_without_running_initialisers_and_match_the_plain_way(saved, tmp_path):
    """``build_from_weights`` skips Keras's random initialisers; the weights and outputs are the plain load's."""
    from biseq.model import Seq2Seq
    from biseq.model_dir import build_from_weights, read_model_dir, read_weights
    from biseq.transducer import Transducer

    copy = damaged(saved, tmp_path)
    Transducer.load(copy).save(copy, weights_dtype="float16")
    (copy / "model.keras").unlink(missing_ok=True)
    found = read_model_dir(copy)

    def build():
        return Seq2Seq(config=found.config.model, source_vocab_size=len(found.source_vocab),
                       target_vocab_size=len(found.target_vocab), name="seq2seq")

    plain = build()
    read_weights(plain, copy / "weights.npz")
    fast = build_from_weights(build, copy / "weights.npz")
    assert [w.path for w in fast.weights] == [w.path for w in plain.weights]
    for a, b in zip(fast.weights, plain.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a.value), np.asarray(b.value))
    loaded = Transducer.load(copy)  # the compact form goes this way
    words = ["ab", "ba", "aab"]
    reference = Transducer(config=found.config, source_vocab=found.source_vocab, target_vocab=found.target_vocab,
                           model=plain)
    assert loaded.predict(words, beam_size=2) == reference.predict(words, beam_size=2)


def test_a_full_disk_leaves_the_existing_file_untouched(tmp_path, monkeypatch):
    import errno
    import os

    from biseq.transducer import atomic_write_text

    target = tmp_path / "state.json"
    target.write_text("old")

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_an_output_path_that_cannot_be_a_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    data = tmp_path / "rev.tsv"
    from tests.conftest import reversal_lines

    data.write_text("\n".join(reversal_lines(40)) + "\n")
    result = subprocess.run([sys.executable, "-m", "biseq.cli", "train", "--data", str(data), "--source-split", "char",
                             "--out", str(blocker / "run"), "--epochs", "1", "--quiet"],
                            capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert str(blocker) in result.stderr and blocker.read_text() == "x"


def test_a_read_only_output_directory_is_a_clear_error_and_changes_nothing(tmp_path, monkeypatch, capsys):
    """As root, chmod does not stop writes: the kernel's EACCES is simulated at os.open for files created in it."""
    import errno
    import os

    from biseq.cli import main
    from tests.conftest import reversal_lines

    data = tmp_path / "rev.tsv"
    data.write_text("\n".join(reversal_lines(40)) + "\n")
    out = tmp_path / "read-only"
    out.mkdir()
    (out / "notes.txt").write_text("kept")
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and os.path.dirname(os.path.abspath(path)) == str(out):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    code = main(["train", "--data", str(data), "--source-split", "char", "--out", str(out), "--epochs", "1",
                 "--quiet", "--show", "0"])
    err = capsys.readouterr().err
    assert code == 1 and "Permission denied" in err and str(out) in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] and (out / "notes.txt").read_text() == "kept"
