"""benchmarks/g2p_cmudict/run.sh picks, on dev, between the best epochs and their averages, and the joint weight.

A stub ``biseq`` (given by ``BISEQ``) records its calls and reports a fixed WER per model, so the
script's choices are checked without training anything.
"""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

STUB = """#!/usr/bin/env bash
echo "$*" >> "$STUB_CALLS"
case "$1" in
  average) ;;
  joint-train) touch "${@: -1}";;
  build-system) out=""; prev=""; for a in "$@"; do [ "$prev" = --out ] && out=$a; prev=$a; done; mkdir -p "$out";;
  lexicon) out=""; prev=""; for a in "$@"; do [ "$prev" = --out ] && out=$a; prev=$a; done
    while read -r w; do printf '%s\tP %s\n' "$w" "${#w}"; done < "$2" > "$out";;
  evaluate) if [[ "$*" == *-avg* ]]; then wer=$AVG_WER; else wer=$BEST_WER; fi
    echo "data (dev split, 10 sources): WER ${wer}%  PER 5.00%  exact 70.00%  (10 items)"
    if [[ "$*" == *--joint-weight\ *,* ]]; then
      echo "lowest WER at joint weight $JOINT_BEST: WER 19.00%  PER 4.00%  exact 81.00%  (10 items)"; fi;;
esac
"""


def run_recipe(tmp_path: Path, recipe: str, *, best_wer: str, avg_wer: str, epochs: bool = True,
               joint_weights: str = "", **env_extra: str) -> list[str]:
    """Runs ``run.sh RECIPE test.tsv`` in a copy of the benchmark; returns the stub's calls."""
    shutil.copytree(ROOT / "benchmarks" / "g2p_cmudict", tmp_path / "benchmarks" / "g2p_cmudict")
    for config in ("main", "main-b", "quick", "main-distill"):
        (tmp_path / "runs" / f"g014b2b-{config}" / ("epochs" if epochs else "")).mkdir(parents=True, exist_ok=True)
    stub = tmp_path / "biseq"
    stub.write_text(STUB)
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    calls = tmp_path / "calls"
    env = dict(os.environ, BISEQ=str(stub), STUB_CALLS=str(calls), BEST_WER=best_wer, AVG_WER=avg_wer,
               G014B2B_TRAIN="train.tsv", JOINT_WEIGHTS=joint_weights, JOINT_BEST="0.4", **env_extra)
    done = subprocess.run(["bash", str(tmp_path / "benchmarks" / "g2p_cmudict" / "run.sh"), recipe, "test.tsv"],
                          env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return calls.read_text().splitlines()


def test_scores_the_test_file_with_the_averages_when_they_are_better_on_dev(tmp_path):
    calls = run_recipe(tmp_path, "main-pair", best_wer="23.61", avg_wer="23.50")
    test_calls = [c for c in calls if "test.tsv" in c]
    assert test_calls == ["evaluate --model runs/g014b2b-main-avg --model runs/g014b2b-main-b-avg "
                          "--data test.tsv --beam 5"]


@pytest.mark.parametrize("avg_wer", ["23.74", "23.61"])
def test_scores_the_test_file_with_the_best_epochs_unless_the_averages_are_better(tmp_path, avg_wer):
    calls = run_recipe(tmp_path, "quick", best_wer="23.61", avg_wer=avg_wer)
    dev_calls = [c for c in calls if "--split dev" in c]
    assert len(dev_calls) == 2  # both candidates scored on dev
    test_calls = [c for c in calls if "test.tsv" in c]
    expected = "runs/g014b2b-quick-avg" if avg_wer == "23.61" else "runs/g014b2b-quick"  # a tie keeps the average
    assert test_calls == [f"evaluate --model {expected} --data test.tsv --beam 5"]


def test_scores_once_when_no_epochs_were_kept(tmp_path):
    calls = run_recipe(tmp_path, "quick", best_wer="23.61", avg_wer="20.00", epochs=False)
    assert [c for c in calls if c.startswith("evaluate")] == [
        "evaluate --model runs/g014b2b-quick --data train.tsv --split dev --beam 5",
        "evaluate --model runs/g014b2b-quick --data test.tsv --beam 5",
    ]


def test_the_joint_model_is_trained_once_and_the_test_file_scored_at_the_dev_weight(tmp_path):
    calls = run_recipe(tmp_path, "quick", best_wer="23.61", avg_wer="23.70", joint_weights="0,0.4,0.6")
    joint = "runs/g014b2b-quick/joint.fst"
    assert [c for c in calls if c.startswith("joint-train")] == [
        f"joint-train --model runs/g014b2b-quick --data train.tsv --out {joint}"]
    assert ("evaluate --model runs/g014b2b-quick --data train.tsv --split dev --beam 5 "
            f"--joint {joint} --joint-weight 0,0.4,0.6") in calls
    assert [c for c in calls if "test.tsv" in c] == [
        f"evaluate --model runs/g014b2b-quick --data test.tsv --beam 5 --joint {joint} --joint-weight 0.4"]
    # one weight given: no choice to make, that weight scores the test file
    again = run_recipe(tmp_path / "again", "quick", best_wer="23.61", avg_wer="23.70", joint_weights="0.5")
    assert [c for c in again if "test.tsv" in c] == [
        f"evaluate --model runs/g014b2b-quick --data test.tsv --beam 5 --joint {joint} --joint-weight 0.5"]


def test_the_joint_model_is_not_retrained_when_present(tmp_path):
    (tmp_path / "runs" / "g014b2b-quick").mkdir(parents=True)
    (tmp_path / "runs" / "g014b2b-quick" / "joint.fst").write_text("trained")
    calls = run_recipe(tmp_path, "quick", best_wer="23.61", avg_wer="23.70", joint_weights="0,0.4")
    assert not [c for c in calls if c.startswith("joint-train")]
    assert any(c.endswith("--joint-weight 0.4") and "test.tsv" in c for c in calls)


def test_distill_labels_unlisted_words_with_the_teacher_and_scores_on_the_original_dev_split(tmp_path):
    (tmp_path / "train.tsv").write_text("HELLO\tHH AH0 L OW1\n")
    words = tmp_path / "words.txt"
    words.write_text("hello\nzyzzyvas\nqwertyish\ndog's\n")  # 'hello' is in the CMU dictionary
    calls = run_recipe(tmp_path, "distill", best_wer="22.0", avg_wer="21.0", joint_weights="0,0.4",
                       WORDS=str(words), PYTHON=sys.executable)
    teacher = "runs/g014b2b-main-avg"
    assert calls[0].startswith("train --config benchmarks/g2p_cmudict/main.toml --data train.tsv")
    data = "runs/g014b2b-distill-data"
    assert f"build-system --model {teacher} --joint runs/g014b2b-main/joint.fst --joint-weight 0.4 --beam 5 " \
           f"--joint-nbest 10 --out {data}/teacher" in calls
    assert f"lexicon {data}/words.txt --model {data}/teacher --model-only --format tsv --quiet " \
           f"--out {data}/words.tsv" in calls
    assert (tmp_path / data / "train.tsv").read_text().splitlines() == [
        "HELLO\tHH AH0 L OW1", "QWERTYISH\tP 9", "ZYZZYVAS\tP 8"]  # the training file, then the teacher's
    assert any(c.startswith(f"train --config benchmarks/g2p_cmudict/main-distill.toml --data {data}/train.tsv")
               for c in calls)
    scored = [c for c in calls if c.startswith("evaluate")]
    assert scored and all("--data train.tsv --split dev" in c or "--data test.tsv" in c for c in scored)
    assert f"evaluate --model {teacher} --data train.tsv --split dev --beam 5" in scored  # teacher, same run
    assert [c for c in scored if "test.tsv" in c] == [
        "evaluate --model runs/g014b2b-main-distill-avg --data test.tsv --beam 5 "
        "--joint runs/g014b2b-main-distill/joint.fst --joint-weight 0.4",
        f"evaluate --model {teacher} --model runs/g014b2b-main-distill-avg --data test.tsv --beam 5 "
        "--joint runs/g014b2b-main/joint.fst --joint-weight 0.4"]
