"""Kill a training run with SIGKILL at random moments, resume it each time, compare with one uninterrupted run.

Usage (the long run; CI runs 5 kills in tests/test_reliability.py):
    python -m tests.kill_resume --kills 20 [--seed 0] [--json runs/kill_resume.json]

After every kill the run directory is checked: every ``.keras`` file is a complete zip archive,
``state.json`` parses and names a checkpoint that is there, ``model.keras`` (once written) opens,
and no temporary file is left visible under a final name. At the end the resumed run's weights
fingerprint (``biseq info``) must equal the uninterrupted run's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from tests.conftest import reversal_lines

# no persistent compilation cache: every attempt starts up as the uninterrupted run did (compiling), so
# the kill moments drawn from its start-up and epoch times land where they are meant to
ENV = {**{k: v for k, v in os.environ.items() if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE"))},
       "KERAS_BACKEND": "jax", "BISEQ_COMPILE_CACHE": "off"}
TRAIN = ["--encoder-units", "16", "--decoder-units", "32",
         "--keep-checkpoints", "2", "--quiet", "--show", "0"]


# no early stopping: the run lasts its epochs, so kills land while it still has work to do
CONFIG = '[data]\nformat = "tsv"\nsource_split = "char"\n\n[train]\npatience = 0\n'


def train_command(data: Path, out: Path, epochs: int) -> list[str]:
    return [sys.executable, "-m", "biseq.cli", "train", "--config", str(data.with_name("kill.toml")),
            "--data", str(data), "--out", str(out), "--resume", "--epochs", str(epochs), *TRAIN]


def fingerprint(model: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "biseq.cli", "info", "--model", str(model)],
                            capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr
    return re.search(r"weights sha256: ([0-9a-f]{64})", result.stdout).group(1)


def check_run_directory(out: Path) -> list[str]:
    """What is wrong with ``out`` after a kill (empty: nothing)."""
    problems = []
    for path in out.glob("[!.]*.keras"):  # a dot name is a temporary file, never read, removed on resume
        try:
            with zipfile.ZipFile(path) as archive:
                if archive.testzip() is not None:
                    problems.append(f"{path.name}: a corrupt member")
        except zipfile.BadZipFile:
            problems.append(f"{path.name}: not a complete .keras file")
    state_path = out / "state.json"
    if state_path.exists():
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
            if not (out / state["checkpoint"]).is_file():
                problems.append(f"state.json names {state['checkpoint']}, which is missing")
        except (json.JSONDecodeError, KeyError) as error:
            problems.append(f"state.json: {error}")
    for name in ("config.json", "vocab.json", "history.json"):
        if (out / name).exists():
            try:
                json.loads((out / name).read_text(encoding="utf-8"))
            except json.JSONDecodeError as error:
                problems.append(f"{name}: {error}")
    return problems


def committed_epoch(out: Path) -> int:
    """The last epoch whose checkpoint ``state.json`` names (0 before the first)."""
    try:
        return json.loads((out / "state.json").read_text(encoding="utf-8"))["epoch"]
    except (OSError, ValueError, KeyError):
        return 0


def kill_moment(process: subprocess.Popen, out: Path, *, rng: random.Random, startup: float, per_epoch: float,
                k: int) -> float | None:
    """Wait for a random moment of the attempt, then SIGKILL it; ``None`` when it finished first.

    Every third attempt dies at a random moment of its start-up or first epoch (imports, compilation,
    the first batches); the others once they have committed an epoch of their own, at a random moment of
    the epochs after it (batches, dev scoring, checkpoint writes): so resumes start from many epoch
    boundaries, not only from the first.
    """
    started = time.perf_counter()
    if k % 3 == 0:
        delay = rng.uniform(0.5 * startup, startup + 2 * per_epoch)
    else:
        before = committed_epoch(out)
        while committed_epoch(out) == before and process.poll() is None:
            time.sleep(0.01)
        delay = time.perf_counter() - started + rng.uniform(0, 2 * per_epoch)
    try:
        process.wait(max(delay - (time.perf_counter() - started), 0))
        return None
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return delay


def run(root: Path, *, kills: int, seed: int = 0, log=print) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    data = root / "rev.tsv"
    data.write_text("\n".join(reversal_lines(600)) + "\n", encoding="utf-8")
    data.with_name("kill.toml").write_text(CONFIG, encoding="utf-8")
    epochs = 2 * kills + 2  # an attempt commits at most two epochs before its kill: every kill lands mid-run
    started = time.perf_counter()
    errors = (root / "whole.err").open("w")
    process = subprocess.Popen(train_command(data, root / "whole", epochs), stdout=subprocess.DEVNULL,
                               stderr=errors, env=ENV)
    commits = []  # when each epoch's checkpoint was committed, from the start of the process
    while process.poll() is None:
        if committed_epoch(root / "whole") > len(commits):
            commits.append(time.perf_counter() - started)
        time.sleep(0.005)
    errors.close()
    assert process.returncode == 0, (root / "whole.err").read_text()
    duration = time.perf_counter() - started
    reference = fingerprint(root / "whole")
    # start-up: imports, data, compilation and the first epoch; then an epoch as the run lives it
    # (batches, dev scoring, checkpoint writes)
    startup = commits[0] if commits else duration
    per_epoch = max((commits[-1] - commits[0]) / max(len(commits) - 1, 1), 0.05) if commits else 0.5
    rng = random.Random(seed)
    out = root / "killed"
    survived, problems, resumed_epochs, mid_training = 0, [], [], 0
    for k in range(kills):
        before = committed_epoch(out)
        process = subprocess.Popen(train_command(data, out, epochs), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env=ENV)
        moment = kill_moment(process, out, rng=rng, startup=startup, per_epoch=per_epoch, k=k)
        if moment is not None:
            survived += 1
            mid_training += before < epochs
        found = check_run_directory(out)
        problems += [f"kill {k + 1} at {moment}s: {p}" for p in found]
        resumed_epochs.append(committed_epoch(out))
        log(f"kill {k + 1}: at {moment if moment is None else round(moment, 2)}s, after epoch {resumed_epochs[-1]}; "
            f"problems: {found or 'none'}")
    final = subprocess.run(train_command(data, out, epochs), capture_output=True, text=True, env=ENV, timeout=1200)
    assert final.returncode == 0, final.stderr
    resumed = fingerprint(out)
    return {"kills": survived, "kills_before_the_last_epoch": mid_training, "epochs": epochs,
            "attempts": kills, "problems": problems, "epochs_at_kills": resumed_epochs,
            "resumed_from_distinct_epochs": len(set(resumed_epochs)),
            "uninterrupted_seconds": round(duration, 1), "fingerprint_uninterrupted": reference,
            "fingerprint_resumed": resumed, "same": resumed == reference}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", default="runs/kill_resume")
    parser.add_argument("--json", default="runs/kill_resume.json")
    args = parser.parse_args()
    import shutil

    shutil.rmtree(args.dir, ignore_errors=True)
    result = run(Path(args.dir), kills=args.kills, seed=args.seed)
    Path(args.json).write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(json.dumps(result, indent=1))
    sys.exit(0 if result["same"] and not result["problems"] else 1)


if __name__ == "__main__":
    main()
