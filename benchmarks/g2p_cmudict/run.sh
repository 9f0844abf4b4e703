#!/usr/bin/env bash
# CMUdict G2P benchmark (g014b2b split): train on the training file only, score the dev split
# (1/8 of the training words, by seeded hash) with greedy, beam 5 and the average of the last
# epochs, and a test file when one is given. Resumes from the last checkpoint when run again
# (an interrupted run with the time it had left; TIME_LIMIT=minutes, for the whole run, trains a
# finished run further).
#   [TIME_LIMIT=120] benchmarks/g2p_cmudict/run.sh quick|main|ensemble [TEST_FILE]
# `ensemble` trains ensemble-lstm.toml (quick.toml at learning rate 0.002, as measured),
# ensemble-feed.toml, ensemble-nols.toml and ensemble-gru.toml (18 minutes each, one after the
# other) and scores the four together: one beam over the mean of their distributions.
set -euo pipefail
cd "$(dirname "$0")/../.."
config=${1:-quick}
test_file=${2:-}
train=${G014B2B_TRAIN:-../shared/data/g014b2b/g014b2b.train}
biseq=${BISEQ:-.venv/bin/biseq}
extend=()
if [ -n "${TIME_LIMIT:-}" ]; then extend=(--time-limit "$TIME_LIMIT"); fi

train_run() {  # train_run CONFIG: trains (or resumes) runs/g014b2b-CONFIG
  "$biseq" train --config "benchmarks/g2p_cmudict/$1.toml" --data "$train" --out "runs/g014b2b-$1" \
    --resume --quiet "${extend[@]}"
}

if [ "$config" = ensemble ]; then
  models=()
  for member in ensemble-lstm ensemble-feed ensemble-nols ensemble-gru; do
    train_run "$member"
    models+=(--model "runs/g014b2b-$member")
  done
  "$biseq" evaluate "${models[@]}" --data "$train" --split dev --beam 5
  if [ -n "$test_file" ]; then "$biseq" evaluate "${models[@]}" --data "$test_file" --beam 5; fi
  exit 0
fi

out=runs/g014b2b-$config
train_run "$config"
"$biseq" evaluate --model "$out" --data "$train" --split dev --beam 5
best=$out
if [ -d "$out/epochs" ]; then
  "$biseq" average --model "$out" --last 5 --out "$out-avg"
  "$biseq" evaluate --model "$out-avg" --data "$train" --split dev
  "$biseq" evaluate --model "$out-avg" --data "$train" --split dev --beam 5
  best=$out-avg
fi
if [ -n "$test_file" ]; then
  "$biseq" evaluate --model "$best" --data "$test_file"
  "$biseq" evaluate --model "$best" --data "$test_file" --beam 5
fi
