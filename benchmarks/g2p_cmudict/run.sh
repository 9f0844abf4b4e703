#!/usr/bin/env bash
# CMUdict G2P benchmark (g014b2b split): train on the training file only, score the dev split
# (1/8 of the training words, by seeded hash) with greedy, beam 5 and the average of the last
# epochs, and a test file when one is given. Resumes from the last checkpoint when run again
# (an interrupted run with the time it had left; TIME_LIMIT=minutes, for the whole run, trains a
# finished run further).
#   [TIME_LIMIT=120] benchmarks/g2p_cmudict/run.sh quick|main [TEST_FILE]
set -euo pipefail
cd "$(dirname "$0")/../.."
config=${1:-quick}
train=${G014B2B_TRAIN:-../shared/data/g014b2b/g014b2b.train}
out=runs/g014b2b-$config
biseq=${BISEQ:-.venv/bin/biseq}
extend=()
if [ -n "${TIME_LIMIT:-}" ]; then extend=(--time-limit "$TIME_LIMIT"); fi
"$biseq" train --config "benchmarks/g2p_cmudict/$config.toml" --data "$train" --out "$out" --resume --quiet "${extend[@]}"
"$biseq" evaluate --model "$out" --data "$train" --split dev --beam 5
models=("$out")
if [ -d "$out/epochs" ]; then
  "$biseq" average --model "$out" --last 5 --out "$out-avg"
  "$biseq" evaluate --model "$out-avg" --data "$train" --split dev
  "$biseq" evaluate --model "$out-avg" --data "$train" --split dev --beam 5
  models=("$out-avg")
fi
if [ -n "${2:-}" ]; then
  "$biseq" evaluate --model "${models[0]}" --data "$2"
  "$biseq" evaluate --model "${models[0]}" --data "$2" --beam 5
fi
