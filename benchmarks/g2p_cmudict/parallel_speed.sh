#!/usr/bin/env bash
# Training speed of one model alone against two models at once, each pinned to one core, on the same
# data in the same run: every 4th word of g014b2b.train (~24,800 training pairs), CONFIG (quick or
# main) for MINUTES each. Prints pairs/s per epoch (from history.json; the first epoch is mostly XLA
# compilation and the last is cut by the time limit, so compare the epochs in between) and the ratio
# of the two-at-once medians to the alone median.
#   benchmarks/g2p_cmudict/parallel_speed.sh [quick|main] [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/../.."
config=${1:-quick}
minutes=${2:-5}
biseq=${BISEQ:-.venv/bin/biseq}
python=${PYTHON:-.venv/bin/python}
dir=runs/parallel-speed-$config
rm -rf "$dir" && mkdir -p "$dir"
awk 'NR % 4 == 0' "${G014B2B_TRAIN:-../shared/data/g014b2b/g014b2b.train}" > "$dir/words.tsv"
run() {  # run NAME [taskset args...]
  local name=$1; shift
  "$@" "$biseq" train --config "benchmarks/g2p_cmudict/$config.toml" --data "$dir/words.tsv" \
    --out "$dir/$name" --time-limit "$minutes" --quiet > "$dir/$name.log" 2>&1
}
run alone
run pinned0 taskset -c 0 & run pinned1 taskset -c 1; wait
"$python" - "$dir" <<'PY'
import json, statistics, sys
rates = {}
for name in ("alone", "pinned0", "pinned1"):
    epochs = json.load(open(f"{sys.argv[1]}/{name}/history.json"))
    rates[name] = [e["pairs_per_second"] for e in epochs[1:-1]] or [epochs[-1]["pairs_per_second"]]
    print(f"{name:8s} epoch 1 (compilation) {epochs[0]['seconds']:4.0f} s;  pairs/s, epochs in between: "
          + " ".join(f"{r:.0f}" for r in rates[name]))
alone = statistics.median(rates["alone"])
each = [statistics.median(rates[n]) for n in ("pinned0", "pinned1")]
print(f"two at once, each / alone: {each[0] / alone:.2f}, {each[1] / alone:.2f}; together / alone: {sum(each) / alone:.2f}")
PY
