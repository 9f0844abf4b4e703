#!/usr/bin/env bash
# Distils the bundled English system (network + joint-sequence model) into a smaller network:
#   1. out-of-dictionary English words (WORDS, default SCOWL's american-english-large: Debian package
#      wamerican-large) minus the CMU dictionary's words and possessives (unlabelled_words.py);
#   2. the bundled system (TEACHER) labels them: biseq lexicon --model-only (what its network and joint
#      model answer for a word the dictionary lacks);
#   3. trains student.toml on the dictionary (same 3 % held out as the bundled system) plus those words
#      (an interrupted run resumes: run the script again);
#   4. averages the last 5 epochs; scores the held-out words with the student alone (greedy) and with the
#      teacher's joint-sequence model at each of JOINT_WEIGHTS;
#   5. writes a system directory with the student network and the teacher's joint-sequence model (at the
#      best weight, or JOINT_WEIGHT), dictionary and card (runs/cmudict-student-system), and scores it.
# Usage: [WORDS=path] [TEACHER=src/biseq/g2p/en] benchmarks/g2p_cmudict/build_student.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
biseq=${BISEQ:-.venv/bin/biseq}
python=${PYTHON:-.venv/bin/python}
words=${WORDS:-/usr/share/dict/american-english-large}
teacher=${TEACHER:-src/biseq/g2p/en}
work=runs/distill
run=runs/cmudict-student
system=runs/cmudict-student-system
dictionary=src/biseq/resources/cmudict.dict.gz
if [ ! -f "$work/combined.dict" ]; then
  if [ ! -f "$words" ]; then
    echo "$words: no word list (Debian: apt-get install wamerican-large; or WORDS=path)" >&2
    exit 2
  fi
  mkdir -p "$work"
  "$python" benchmarks/g2p_cmudict/unlabelled_words.py --words "$words" --out "$work/extra.txt"
  "$biseq" lexicon "$work/extra.txt" --model "$teacher" --model-only --format tsv --quiet --out "$work/extra.tsv"
  { zcat "$dictionary"; awk -F'\t' '{print $1" "$2}' "$work/extra.tsv"; } > "$work/combined.tmp"
  mv "$work/combined.tmp" "$work/combined.dict"
fi
"$biseq" train --config benchmarks/g2p_cmudict/student.toml --data "$work/combined.dict" --out "$run" --resume --quiet
"$biseq" average --model "$run" --last 5 --out "$run-avg" > /dev/null
joint_nbest=$("$python" -c "import json,sys; print(json.load(open(sys.argv[1]))['joint_nbest'])" "$teacher/system.json")
echo "held-out words, the student network alone (greedy), then with the joint-sequence model at each weight:"
"$biseq" evaluate --model "$run-avg" --data "$dictionary" --format cmudict --split dev
sweep=$("$biseq" evaluate --model "$run-avg" --data "$dictionary" --format cmudict --split dev \
  --joint "$teacher/joint.fst.xz" --joint-nbest "$joint_nbest" --joint-weight "${JOINT_WEIGHTS:-0.3,0.4,0.5,0.6}")
echo "$sweep"
joint_weight=${JOINT_WEIGHT:-$(echo "$sweep" | sed -n 's/^lowest WER at joint weight \([0-9.]*\):.*/\1/p')}
rm -rf "$system"
"$biseq" build-system --model "$run-avg" --joint "$teacher/joint.fst.xz" --joint-weight "$joint_weight" \
  --beam 1 --joint-nbest "$joint_nbest" --dictionary "$teacher/dictionary.dict.gz" --compact \
  --name "biseq English G2P (CMUdict), distilled" --card "benchmarks/g2p_cmudict/card.json" --out "$system"
echo "held-out words, the student system (network + joint-sequence model at weight $joint_weight, as it answers):"
"$biseq" evaluate --model "$system" --data "$dictionary" --format cmudict --split dev
