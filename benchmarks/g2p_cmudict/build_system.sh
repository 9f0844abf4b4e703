#!/usr/bin/env bash
# Builds the bundled English G2P system (src/biseq/g2p/en) from the embedded CMU dictionary:
#   1. trains bundled.toml on the whole dictionary with stress, 3 % held out (85 min on 2 CPU cores;
#      an interrupted run resumes where it stopped: run the script again);
#   2. trains the joint-sequence (Phonetisaurus 8-gram) model on the same training split;
#   3. averages the last 5 epochs;
#   4. scores the held-out words with beam 5 at each of JOINT_WEIGHTS, for the model card;
#   5. writes the system directory (float16 weights, xz joint model) with the weight JOINT_WEIGHT.
# Usage: [OUT=src/biseq/g2p/en] [JOINT_WEIGHT=0.4] benchmarks/g2p_cmudict/build_system.sh
# Measured (2 cores): 22 epochs, 85.2 min; held-out WER 27.24 % (network alone), 24.44 % at weight 0.4 (joint beam 2000).
set -euo pipefail
cd "$(dirname "$0")/../.."
biseq=${BISEQ:-.venv/bin/biseq}
out=${OUT:-src/biseq/g2p/en}
weight=${JOINT_WEIGHT:-0.4}
weights=${JOINT_WEIGHTS:-0,0.3,0.4,0.5,0.6}
data=src/biseq/resources/cmudict.dict.gz
run=runs/cmudict-bundled

"$biseq" train --config benchmarks/g2p_cmudict/bundled.toml --out "$run" --resume --quiet
if [ ! -f runs/joint-bundled/joint.fst ]; then
  "$biseq" joint-train --model "$run" --order 8 --out runs/joint-bundled/joint.fst
fi
"$biseq" average --model "$run" --last 5 --out "$run-avg" > /dev/null
"$biseq" evaluate --model "$run-avg" --data "$data" --format cmudict --split dev --beam 5 \
  --joint runs/joint-bundled/joint.fst --joint-weight "$weights"
rm -rf "$out.new"
"$biseq" build-system --model "$run-avg" --joint runs/joint-bundled/joint.fst --joint-weight "$weight" \
  --beam 1 --joint-nbest 5 --skip-joint-above 0.9 --dictionary embedded --compact --name "biseq English G2P (CMUdict)" \
  --card benchmarks/g2p_cmudict/card.json --out "$out.new"
rm -rf "$out.old"
if [ -d "$out" ]; then mv "$out" "$out.old"; fi
mv "$out.new" "$out" && rm -rf "$out.old"
"$biseq" info --model "$out"
