"""The persistent compilation cache: a repeated training run loads its XLA programs instead of compiling them."""

import json
import os
import subprocess
import sys

from biseq import compile_cache
from tests.conftest import reversal_lines

# train in a fresh process and count JAX's compilations and persistent-cache hits
COUNTING_TRAIN = """
import json, sys
import jax
counts = {"compiles": 0, "hits": 0}
def on_duration(event, duration, **_):
    counts["compiles"] += event.endswith("backend_compile_duration")
def on_event(event, **_):
    counts["hits"] += event == "/jax/compilation_cache/cache_hits"
jax.monitoring.register_event_duration_secs_listener(on_duration)
jax.monitoring.register_event_listener(on_event)
from biseq.cli import main
code = main(sys.argv[1:])
print(json.dumps(counts | {"exit": code}))
"""


def test_where_the_cache_lives(monkeypatch, tmp_path):
    for name in (compile_cache.ENV, "JAX_COMPILATION_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BISEQ_CACHE", str(tmp_path))
    assert compile_cache.directory() == tmp_path / "jax"
    monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "mine"))
    assert compile_cache.directory() == tmp_path / "mine"
    monkeypatch.setenv(compile_cache.ENV, "off")
    assert compile_cache.directory() is None
    monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "mine"))
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "jax-own"))  # JAX's own setting is left to JAX
    assert compile_cache.directory() is None


def test_an_unwritable_cache_is_not_turned_on(monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv(compile_cache.ENV, str(blocker / "jax"))  # cannot be created under a file
    assert compile_cache.enable() is None


def test_a_repeated_training_run_loads_its_programs_from_the_cache(tmp_path):
    data = tmp_path / "rev.tsv"
    data.write_text("\n".join(reversal_lines(120)) + "\n")
    env = {**os.environ, "KERAS_BACKEND": "jax", compile_cache.ENV: str(tmp_path / "cache")}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)

    def train(out):
        result = subprocess.run(
            [sys.executable, "-c", COUNTING_TRAIN, "train", "--data", str(data), "--source-split", "char",
             "--out", str(tmp_path / out), "--epochs", "1", "--encoder-units", "8", "--decoder-units", "16",
             "--max-shapes", "2", "--quiet", "--show", "0"], capture_output=True, text=True, env=env, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    first = train("a")
    assert first["exit"] == 0
    assert json.loads((tmp_path / "a" / "config.json").read_text())["data"]["max_shapes"] == 2
    assert any((tmp_path / "cache").iterdir())
    second = train("b")
    assert second["compiles"] == first["compiles"] > 0
    assert first["hits"] < first["compiles"] / 2  # a cold cache: compiled
    assert second["hits"] == second["compiles"]  # a warm one: every program loaded
    weights = [json.loads((tmp_path / out / "history.json").read_text())[0]["loss"] for out in ("a", "b")]
    assert weights[0] == weights[1]  # the same training, whether compiled or loaded
