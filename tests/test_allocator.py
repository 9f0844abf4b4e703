"""``biseq train`` restarts itself under tcmalloc where the system has it (a faster training step)."""

import os
import subprocess
import sys

import pytest

from biseq import allocator
from biseq.cli import main


class Exec:
    """Records ``os.execve`` instead of replacing the process."""

    def __init__(self):
        self.calls = []

    def __call__(self, path, args, env):
        self.calls.append((path, args, env))


def test_restart_preloads_tcmalloc_with_the_same_arguments(monkeypatch):
    execve = Exec()
    monkeypatch.setattr(allocator.os, "execve", execve)
    allocator.restart_under_tcmalloc(["train", "--epochs", "2"], environ={"HOME": "/h"}, library="/lib/libtc.so")
    [(path, args, env)] = execve.calls
    assert path == sys.executable and args == [sys.executable, "-m", "biseq.cli", "train", "--epochs", "2"]
    assert env == {"HOME": "/h", "LD_PRELOAD": "/lib/libtc.so"}


@pytest.mark.parametrize("environ", [{allocator.SWITCH: "system"}, {"LD_PRELOAD": "/some/other.so"}])
def test_no_restart_when_switched_off_or_already_preloading(monkeypatch, environ):
    execve = Exec()
    monkeypatch.setattr(allocator.os, "execve", execve)
    allocator.restart_under_tcmalloc(["train"], environ=environ, library="/lib/libtc.so")
    assert execve.calls == []


def test_no_restart_without_the_library(monkeypatch):
    execve = Exec()
    monkeypatch.setattr(allocator.os, "execve", execve)
    monkeypatch.setattr(allocator, "find_tcmalloc", lambda: None)
    allocator.restart_under_tcmalloc(["train"], environ={})
    assert execve.calls == []


def test_the_library_is_found_in_the_first_directory_holding_it(tmp_path):
    assert allocator.find_tcmalloc((str(tmp_path),)) is None
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "libtcmalloc_minimal.so.4").write_bytes(b"")
    found = allocator.find_tcmalloc((str(tmp_path / "a"), str(tmp_path / "b")))
    assert found == str(tmp_path / "b" / "libtcmalloc_minimal.so.4")


def test_only_the_command_line_train_restarts(monkeypatch, capsys):
    asked = []
    monkeypatch.setattr(allocator, "restart_under_tcmalloc", lambda argv: asked.append(list(argv)))
    args = ["train", "--config", "no-such-config.toml"]
    assert main(args) == 2  # called from Python with arguments: this process stays as it is
    assert asked == []
    monkeypatch.setattr(sys, "argv", ["biseq", *args])
    assert main() == 2
    assert asked == [args]
    assert "no-such-config.toml" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform != "linux" or allocator.find_tcmalloc() is None,
                    reason="no tcmalloc here (apt-get install libtcmalloc-minimal4)")
def test_biseq_train_runs_under_tcmalloc_and_says_so(tmp_path):
    data = tmp_path / "toy.tsv"
    data.write_text("".join(f"{w}\t{' '.join(w.upper())}\n" for w in ("abc", "bca", "cab", "acb", "bac", "cba") * 4))
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", allocator.SWITCH)}
    def train(out, **extra):
        command = [sys.executable, "-m", "biseq.cli", "train", "--data", str(data), "--epochs", "1", "--out",
                   str(tmp_path / out), "--quiet", "--show", "0"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                                env={**env, "KERAS_BACKEND": "jax", **extra})
        assert result.returncode == 0, result.stderr
        assert (tmp_path / out / "config.json").is_file()
        return result.stdout.splitlines()[0]

    assert train("run").endswith("; memory allocator: tcmalloc")
    assert "allocator" not in train("run2", **{allocator.SWITCH: "system"})


def test_the_environment_names_tcmalloc_only_where_train_would_preload_it():
    assert allocator.tcmalloc_environment({"HOME": "/h"}, library="/lib/libtc.so") == {
        "HOME": "/h", "LD_PRELOAD": "/lib/libtc.so"}
    assert allocator.tcmalloc_environment({allocator.SWITCH: "system"}, library="/lib/libtc.so") is None
    assert allocator.tcmalloc_environment({"LD_PRELOAD": "/x.so"}, library="/lib/libtc.so") is None
