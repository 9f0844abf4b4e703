#!/usr/bin/env bash
# CMUdict G2P benchmark (g014b2b split): train on the training file only, score on dev, and on a
# test file when one is given. Resumes from the last checkpoint when run again.
#   benchmarks/g2p_cmudict/run.sh quick|main [TEST_FILE]
set -euo pipefail
cd "$(dirname "$0")/../.."
config=${1:-quick}
train=${G014B2B_TRAIN:-../shared/data/g014b2b/g014b2b.train}
out=runs/g014b2b-$config
biseq=${BISEQ:-.venv/bin/biseq}
"$biseq" train --config "benchmarks/g2p_cmudict/$config.toml" --data "$train" --out "$out" --resume --quiet
if [ -n "${2:-}" ]; then
  "$biseq" evaluate --model "$out" --data "$2"
  "$biseq" evaluate --model "$out" --data "$2" --beam 5
fi
