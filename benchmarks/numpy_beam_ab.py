"""The NumPy beam search against an earlier revision's, in the same process, on the bundled model.

Usage:
    python benchmarks/numpy_beam_ab.py [--base REV] [--words 1024] [--batch 256] [--beam 5] [--rounds 3]
        [--json benchmarks/numpy_beam_ab.json]

``--base`` names a git revision whose ``src/biseq/numpy_decoding.py`` is loaded beside today's (default:
``d15d703``, before sources left the beam once settled). Both search the same held-out words of the CMU
dictionary in the transducer's batches (length-sorted, at most ``--batch``, its step limit), alternating, ``--rounds``
times; the JSON has words/s per round and the ratio of the medians ("ratio": above 1, today's is faster), and
how many n-best lists differ (float rounding of different batch shapes may move a score's last digits). Set
``OPENBLAS_NUM_THREADS=1`` when the machine is shared: NumPy's threads spin against other processes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def load_revision(rev: str):
    """``biseq.numpy_decoding`` as it was at ``rev``, as a separate module."""
    source = subprocess.run(["git", "show", f"{rev}:src/biseq/numpy_decoding.py"], check=True, capture_output=True,
                            text=True, cwd=Path(__file__).resolve().parent.parent).stdout
    with tempfile.TemporaryDirectory() as folder:  # read once, at exec_module
        path = Path(folder) / "numpy_decoding_base.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("numpy_decoding_base", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="d15d703")
    parser.add_argument("--words", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default="benchmarks/numpy_beam_ab.json")
    args = parser.parse_args()

    import g2p_speed

    from biseq import numpy_decoding
    from biseq.batching import default_max_length, width_chunks
    from biseq.config import Config
    from biseq.g2p.api import bundled_path
    from biseq.g2p.system import System

    base = load_revision(args.base)
    system = System.open(bundled_path())
    config = Config.load(os.path.join(system.model_paths[0], "config.json"))
    transducer = numpy_decoding.NumpyTransducer.load(system.model_paths[0])
    ids = transducer.encode_sources([list(w) for w in g2p_speed.held_out_words(config.data, args.words)])
    # the transducer's batches: length-sorted, within one width bucket, its step limit
    chunks = [([ids[i] for i in part], width) for part, width in width_chunks(ids, args.batch)]

    def search(module, chunk):
        sources, width = chunk
        return module.beam_ids(transducer.model, sources, beam_size=args.beam, length=default_max_length(width))

    differing = sum(a != b for chunk in chunks
                    for a, b in zip(search(base, chunk), search(numpy_decoding, chunk), strict=True))
    rates: dict[str, list[float]] = {"base": [], "today": []}
    for _ in range(args.rounds):
        for name, module in (("base", base), ("today", numpy_decoding)):
            start = time.perf_counter()
            for chunk in chunks:
                search(module, chunk)
            rates[name].append(len(ids) / (time.perf_counter() - start))
    report = {"base": args.base, "words": len(ids), "batch": args.batch, "beam": args.beam,
              "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
              "words_per_second": rates, "nbest_lists_differing": differing,
              "today_over_base_ratio": statistics.median(rates["today"]) / statistics.median(rates["base"])}
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
