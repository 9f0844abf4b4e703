"""A joint-sequence decoding worker: ``python -m biseq.joint_worker MODEL.fst``.

Started by :meth:`biseq.joint_sequence.JointModel.nbest` (the Phonetisaurus bindings
hold Python's GIL, so several processes, not threads, decode side by side). Reads one JSON request
per line on standard input, ``{"words": [...], "nbest": N, "beam": B}``, and answers each with one
JSON line: per word a list of ``[tokens, cost]``, best first. Ends when its input closes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from biseq.joint_sequence import JointModel


def main() -> int:
    model = JointModel(Path(sys.argv[1]))
    model.decoder()
    for line in sys.stdin:
        request = json.loads(line)
        found = model._decode(request["words"], nbest=request["nbest"], beam=request["beam"])  # noqa: SLF001
        sys.stdout.write(json.dumps(found) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
