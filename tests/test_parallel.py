"""Data-parallel training: 2 devices, and 2 processes (with --resume), reach one device's losses; clear errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import reversal_lines

ENV = {**os.environ, "KERAS_BACKEND": "jax"}
TWO_CPU_DEVICES = {**ENV, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
SMALL = ["--encoder-units", "16", "--decoder-units", "32", "--batch-size", "64", "--quiet", "--show", "0"]


def train(data, out, *more, env=ENV, epochs=3, wait=True):
    command = [sys.executable, "-m", "biseq.cli", "train", "--data", str(data), "--source-split", "char",
               "--out", str(out), "--epochs", str(epochs), *SMALL, *more]
    if not wait:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def losses(out):
    return [h["loss"] for h in json.loads((out / "history.json").read_text())]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("parallel") / "rev.tsv"
    path.write_text("\n".join(reversal_lines(400)) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def one_device(data):
    out = data.parent / "one"
    result = train(data, out)
    assert result.returncode == 0, result.stderr
    return out


def test_two_devices_reach_one_devices_losses(data, one_device):
    out = data.parent / "two-devices"
    result = train(data, out, "--devices", "2", env=TWO_CPU_DEVICES)
    assert result.returncode == 0, result.stderr
    assert "data-parallel over 2 devices (1 process(es)), global batch 64" in result.stdout
    assert len(losses(out)) == 3
    np.testing.assert_allclose(losses(out), losses(one_device), rtol=1e-5)


def two_processes(data, out, *, epochs, resume=False):
    port = free_port()
    more = ["--num-processes", "2", "--coordinator", f"127.0.0.1:{port}", *(["--resume"] if resume else [])]
    env = {**ENV, "TMPDIR": str(data.parent)}  # where process 1 writes its scratch copies
    second = train(data, out, *more, "--process-id", "1", env=env, epochs=epochs, wait=False)
    first = train(data, out, *more, "--process-id", "0", env=env, epochs=epochs)
    out1, err1 = second.communicate(timeout=600)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, err1
    return first.stdout, out1


def test_two_processes_reach_one_devices_losses_and_resume(data, one_device):
    out = data.parent / "two-processes"
    first, second = two_processes(data, out, epochs=2)
    assert "data-parallel over 2 devices (2 process(es))" in first and "held-out" in first
    assert f"process 1 of 2 done; process 0 wrote the model to {out}/" in second
    assert json.loads((out / "state.json").read_text())["epoch"] == 2
    two_processes(data, out, epochs=3, resume=True)
    np.testing.assert_allclose(losses(out), losses(one_device), rtol=1e-5)
    assert not list(data.parent.glob("biseq-process-*"))  # process 1's scratch directories are gone


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--devices", "3"], TWO_CPU_DEVICES, "--devices 3: this process has 2 cpu device(s)"),
    (["--devices", "2", "--batch-size", "63"], TWO_CPU_DEVICES, "batch_size 63 does not split over 2 devices"),
    (["--num-processes", "2"], ENV, "needs --coordinator HOST:PORT"),
    (["--num-processes", "2", "--process-id", "2", "--coordinator", "127.0.0.1:1"], ENV,
     "--process-id must be in 0..1"),
    (["--devices", "0"], ENV, "--devices must be at least 1"),
])
def test_devices_and_processes_that_do_not_fit_are_clear_errors(data, tmp_path, args, env, message):
    result = train(data, tmp_path / "run", *args, env=env, epochs=1)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "run").exists()


def test_decoding_over_two_devices_splits_the_rows_and_gives_the_same_answers():
    placed = subprocess.run([sys.executable, "-c", (
        "import numpy as np\n"
        "from biseq.parallel import setup_decoding, spread_rows\n"
        "setup_decoding(2)\n"
        "x = spread_rows(np.zeros((4, 3), np.int32))\n"
        "print(len(x.sharding.device_set), x.addressable_shards[0].data.shape)\n")],
        capture_output=True, text=True, env=TWO_CPU_DEVICES, timeout=300)
    assert placed.stdout.split() == ["2", "(2,", "3)"], placed.stderr
    words = ["quizzaciously", "brillig", "zorbulent"]
    answers = [subprocess.run([sys.executable, "-m", "biseq.cli", "predict", "--model-only", "--nbest", "2",
                               *devices, *words], capture_output=True, text=True, env=TWO_CPU_DEVICES, timeout=300)
               for devices in ([], ["--devices", "2"])]
    assert all(a.returncode == 0 for a in answers), answers[1].stderr
    assert answers[0].stdout == answers[1].stdout and len(answers[0].stdout.splitlines()) == 6
