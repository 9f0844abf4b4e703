#!/usr/bin/env bash
# CMUdict G2P benchmark (g014b2b split): train on the training file only, score the dev split
# (1/8 of the training words, by seeded hash) with beam 5 and the average of the last epochs, and a
# test file when one is given. Resumes from the last checkpoint when run again (an interrupted run
# with the time it had left; TIME_LIMIT=minutes, for the whole run, trains a finished run further).
#   [TIME_LIMIT=120] [JOINT_WEIGHTS=0,0.5] benchmarks/g2p_cmudict/run.sh quick|main|main-pair|main-two|ensemble|p2g|distill [TEST_FILE]
# distill: main (teacher, with the joint model) labels out-of-dictionary English words; main-distill.toml
# trains on the training file plus those (about 3 hours in all; the word list: apt-get install wamerican-large).
# p2g: the other direction, phoneme-to-grapheme (spelling from pronunciation), quick.toml's model and budget
# with data.transpose; no joint-sequence model.
# main-pair trains main.toml and main-b.toml at the same time, each pinned to its own half of the
# cores, and scores the two together: one beam over the mean of their distributions. Each trains at
# ~0.85x the speed of one alone on the Intel machine but ~0.6x on the AMD one, where `main` alone
# scores better (22.17 against 22.72: README).
# main-two trains main.toml and main-seed2.toml (another training seed) one after the other and scores the two
# together, with the joint-sequence model (TIME_LIMIT=55: about 2 hours in all).
# Every recipe scores on dev both its best epochs and the averages of their last 5 epochs (with few
# epochs the last ones can score better: README), and scores TEST_FILE with whichever is better on dev.
# Then a joint-sequence (Phonetisaurus n-gram) model is trained on the same training split
# (`biseq joint-train`, 2.1 minutes on g014b2b) and combined with the chosen model(s) at decoding: the dev split
# is scored at each of JOINT_WEIGHTS in one decoding, and TEST_FILE at the weight best on dev.
# `ensemble` trains ensemble-lstm.toml (quick.toml at learning rate 0.002, as measured),
# ensemble-feed.toml, ensemble-nols.toml and ensemble-gru.toml one after the other.
set -euo pipefail
cd "$(dirname "$0")/../.."
recipe=${1:-quick}
test_file=${2:-}
train=${G014B2B_TRAIN:-../shared/data/g014b2b/g014b2b.train}
biseq=${BISEQ:-.venv/bin/biseq}
joint_weights=${JOINT_WEIGHTS-0,0.2,0.3,0.4,0.5,0.6,0.7,0.8}  # JOINT_WEIGHTS= (empty): no joint-sequence model
extend=()
if [ -n "${TIME_LIMIT:-}" ]; then extend=(--time-limit "$TIME_LIMIT"); fi

train_run() {  # train_run CONFIG [CPUS]: trains (or resumes) runs/g014b2b-CONFIG, on CPUS when given
  local pin=()
  if [ -n "${2:-}" ] && command -v taskset > /dev/null; then pin=(taskset -c "$2"); fi
  "${pin[@]}" "$biseq" train --config "benchmarks/g2p_cmudict/$1.toml" --data "$train" \
    --out "runs/g014b2b-$1" --resume --quiet "${extend[@]}"
}

train_together() {  # train_together JOBS CONFIG...: JOBS models at a time, each on its share of the cores
  local cores jobs share cpus i=0 failed=0 pids=() configs=("${@:2}")
  cores=$(nproc)
  jobs=$(( $1 < cores ? $1 : cores ))
  share=$(( cores / jobs ))
  while [ "$i" -lt "${#configs[@]}" ]; do
    pids=()
    for (( j = 0; j < jobs && i < ${#configs[@]}; j++, i++ )); do
      cpus=$(( j * share ))-$(( j * share + share - 1 ))
      mkdir -p "runs/g014b2b-${configs[$i]}"
      echo "training ${configs[$i]} on cpus $cpus (log: runs/g014b2b-${configs[$i]}.log)"
      train_run "${configs[$i]}" "$cpus" >> "runs/g014b2b-${configs[$i]}.log" 2>&1 &
      pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    if [ "$failed" -ne 0 ]; then echo "a training run failed; see runs/g014b2b-*.log" >&2; exit 1; fi
  done
}

averaged() {  # averaged OUT: averages OUT's last 5 epochs into OUT-avg and prints it (OUT without epochs)
  if [ -d "$1/epochs" ]; then "$biseq" average --model "$1" --last 5 --out "$1-avg" > /dev/null; echo "$1-avg"
  else echo "$1"; fi
}

dev_wer() {  # dev_wer EVALUATE-ARGS...: runs `biseq evaluate` on the dev split, shows it, prints the WER last
  local report
  report=$("$biseq" evaluate "$@" --data "$train" --split dev --beam 5)
  echo "$report" >&2
  echo "$report" | sed -n 's/.*WER \([0-9.]*\)%.*/\1/p' | head -n 1
}

better() {  # better WER_A A WER_B B: prints A when its dev WER is not above B's, else B
  if awk -v a="$1" -v b="$3" 'BEGIN { exit !(a <= b) }'; then echo "$2"; else echo "$4"; fi
}

score_together() {  # score_together CONFIG...: one beam over the mean of the models' distributions
  local best=() avg=() config wer_best wer_avg chosen=best joint report weight=""
  for config in "$@"; do
    best+=(--model "runs/g014b2b-$config")
    avg+=(--model "$(averaged "runs/g014b2b-$config")")
  done
  echo "best epochs:" >&2
  wer_best=$(dev_wer "${best[@]}")
  if [ "${avg[*]}" != "${best[*]}" ]; then  # equal when no epoch checkpoints were kept to average
    echo "averages of the last 5 epochs:" >&2
    wer_avg=$(dev_wer "${avg[@]}")
    chosen=$(better "$wer_avg" avg "$wer_best" best)
    echo "better on dev: $chosen (WER $wer_avg averaged, $wer_best best epochs)"
  fi
  if [ "$chosen" = avg ]; then best=("${avg[@]}"); fi
  if [ -n "$joint_weights" ]; then  # the joint-sequence model, trained on the same split, weight chosen on dev
    joint="runs/g014b2b-$1/joint.fst"
    if [ ! -f "$joint" ]; then "$biseq" joint-train --model "runs/g014b2b-$1" --data "$train" --out "$joint"; fi
    echo "with the joint-sequence model ($joint), joint weights $joint_weights:" >&2
    report=$("$biseq" evaluate "${best[@]}" --data "$train" --split dev --beam 5 --joint "$joint" \
      --joint-weight "$joint_weights")
    echo "$report" >&2
    weight=$(echo "$report" | sed -n 's/^lowest WER at joint weight \([0-9.]*\):.*/\1/p')
    weight=${weight:-${joint_weights%%,*}}  # one weight given: that one
    echo "joint weight on dev: $weight"
  fi
  if [ -n "$test_file" ]; then
    if [ -n "$weight" ]; then
      "$biseq" evaluate "${best[@]}" --data "$test_file" --beam 5 --joint "$joint" --joint-weight "$weight"
    else "$biseq" evaluate "${best[@]}" --data "$test_file" --beam 5; fi
  fi
}

jobs=1
case "$recipe" in
  main-pair) members=(main main-b) jobs=2 ;;
  main-two) members=(main main-seed2) ;;
  ensemble) members=(ensemble-lstm ensemble-feed ensemble-nols ensemble-gru) ;;
  *) members=() ;;
esac
if [ "${#members[@]}" -gt 0 ]; then
  train_together "$jobs" "${members[@]}"
  score_together "${members[@]}"
  exit 0
fi

if [ "$recipe" = distill ]; then
  # teacher: main.toml + the joint-sequence model at DISTILL_WEIGHT (0.4: main's best on dev), as a system;
  # it labels English words the CMU dictionary lacks (so none of the test words, 11,996 of which it lists);
  # main-distill.toml trains on the training file plus those; scored alone, with the joint model, and as
  # an ensemble with the teacher
  train_run main
  teacher=$(averaged runs/g014b2b-main)
  joint=runs/g014b2b-main/joint.fst
  if [ ! -f "$joint" ]; then "$biseq" joint-train --model runs/g014b2b-main --data "$train" --out "$joint"; fi
  data=runs/g014b2b-distill-data
  if [ ! -f "$data/train.tsv" ]; then
    words=${WORDS:-/usr/share/dict/american-english-large}
    if [ ! -f "$words" ]; then echo "$words: no word list (apt-get install wamerican-large; or WORDS=path)" >&2; exit 2; fi
    mkdir -p "$data"
    rm -rf "$data/teacher"
    "$biseq" build-system --model "$teacher" --joint "$joint" --joint-weight "${DISTILL_WEIGHT:-0.4}" --beam 5 \
      --joint-nbest 10 --out "$data/teacher" > /dev/null
    "${PYTHON:-.venv/bin/python}" benchmarks/g2p_cmudict/unlabelled_words.py --words "$words" --out "$data/words.txt"
    "$biseq" lexicon "$data/words.txt" --model "$data/teacher" --model-only --format tsv --quiet --out "$data/words.tsv"
    { cat "$train"; awk -F'\t' '{print toupper($1) "\t" $2}' "$data/words.tsv"; } > "$data/train.tmp"
    mv "$data/train.tmp" "$data/train.tsv"
  fi
  train="$data/train.tsv" train_run main-distill
  train=${G014B2B_TRAIN:-../shared/data/g014b2b/g014b2b.train}  # scored on the training file's dev split
  mkdir -p runs/g014b2b-main-distill && cp -n "$joint" runs/g014b2b-main-distill/joint.fst
  test_file="" score_together main  # the teacher alone, on dev only, in the same run as the student
  score_together main-distill
  score_together main main-distill
  exit 0
fi
if [ "$recipe" = p2g ]; then joint_weights=""; fi  # the joint-sequence model reads characters as sources
mkdir -p runs
train_run "$recipe"
score_together "$recipe"
