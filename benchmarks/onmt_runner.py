"""OpenNMT-py 3.5 training and decoding, timed, for ``benchmarks/speed.py`` (stack ``opennmt``).

Runs under the OpenNMT-py environment's Python (see ``benchmarks/onmt_setup.sh``), not biseq's:

    ONMT_PY train CONFIG.yaml TIMING.json
        ``onmt_train -config CONFIG.yaml`` in this process; TIMING.json gets, after every optimiser
        step, ``[perf_counter seconds, target tokens so far]`` (OpenNMT's own count: non-padding
        target tokens, ``</s>`` included, ``<s>`` not), so a caller can leave start-up and the first
        steps out.
    ONMT_PY translate MODEL.pt SRC.txt RESULT.json BATCH BEAM MAX_LENGTH WARMUP_LINES
        builds OpenNMT's translator once, decodes the first WARMUP_LINES lines (warm-up, untimed),
        then every line of SRC.txt, timed (decode time only: model loading and start-up excluded).

Three changes to OpenNMT-py, all here and nowhere else:

* ``RNNDecoderBase.init_state`` keeps the top ``dec_layers`` layers of the encoder's final states:
  OpenNMT initialises decoder layer i from encoder layer i and fails when the encoder has more
  layers than the decoder (biseq's main recipe: 2 encoder layers, 1 decoder layer, every decoder
  layer from the top encoder layer).
* ``Trainer._gradient_accumulation`` is wrapped to record the time and token count of each step.
* ``torch.load`` defaults to ``weights_only=False`` again (torch >= 2.6 made it True; OpenNMT-py 3.5
  pinned torch < 2.3 and its checkpoints hold an ``argparse.Namespace``).

Torch runs on ``os.cpu_count()`` threads, as the PyTorch stack of speed.py does.
"""

from __future__ import annotations

import json
import os
import sys
import time


def patch_decoder_layers() -> None:
    from onmt.decoders.decoder import RNNDecoderBase

    original = RNNDecoderBase.init_state

    def init_state(self, src, enc_out, enc_final_hs):
        original(self, src, enc_out, enc_final_hs)
        n = self.num_layers
        self.state["hidden"] = tuple(h[-n:] for h in self.state["hidden"])

    RNNDecoderBase.init_state = init_state


def train(config: str, timing_path: str) -> None:
    import onmt.trainer
    from onmt.bin import train as onmt_train

    marks: list[list[float]] = []
    original = onmt.trainer.Trainer._gradient_accumulation

    def timed(self, true_batches, normalization, total_stats, report_stats):
        original(self, true_batches, normalization, total_stats, report_stats)
        marks.append([time.perf_counter(), float(total_stats.n_words)])

    onmt.trainer.Trainer._gradient_accumulation = timed
    sys.argv = ["onmt_train", "-config", config]
    onmt_train.main()
    with open(timing_path, "w", encoding="utf-8") as f:
        json.dump(marks, f)


def translate(model: str, src: str, result_path: str, batch: int, beam: int, max_length: int,
              warmup: int) -> None:
    from onmt.bin.translate import _get_parser
    from onmt.inference_engine import InferenceEnginePY
    from onmt.utils.misc import set_random_seed
    from onmt.utils.parse import ArgumentParser

    opt = _get_parser().parse_args([
        "-model", model, "-src", src, "-output", os.devnull, "-batch_size", str(batch), "-batch_type", "sents",
        "-beam_size", str(beam), "-max_length", str(max_length), "-n_best", "1", "-seed", "1"])
    ArgumentParser.validate_translate_opts(opt)
    ArgumentParser._get_all_transform_translate(opt)
    ArgumentParser._validate_transforms_opts(opt)
    ArgumentParser.validate_translate_opts_dynamic(opt)
    set_random_seed(opt.seed, False)
    engine = InferenceEnginePY(opt)
    with open(src, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f]
    engine.infer_list(lines[:warmup])
    start = time.perf_counter()
    _, preds = engine.infer_list(lines)
    seconds = time.perf_counter() - start
    lengths = [len(p[0].split()) for p in preds]
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump({"words": len(lines), "seconds": seconds, "words_per_s": len(lines) / seconds,
                   "mean_output_tokens": sum(lengths) / max(len(lengths), 1)}, f)


def allow_full_checkpoints() -> None:
    """torch >= 2.6 loads ``weights_only`` by default; OpenNMT-py 3.5's checkpoints hold its options
    (an ``argparse.Namespace``) and vocabularies. The checkpoint is the one this run just trained."""
    import torch

    original = torch.load

    def load(*args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return original(*args, **kwargs)

    torch.load = load


def main() -> None:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    allow_full_checkpoints()
    patch_decoder_layers()
    command, rest = sys.argv[1], sys.argv[2:]
    if command == "train":
        train(*rest)
    elif command == "translate":
        model, src, result, batch, beam, max_length, warmup = rest
        translate(model, src, result, int(batch), int(beam), int(max_length), int(warmup))
    else:
        raise SystemExit(f"unknown command {command!r}: train or translate")


if __name__ == "__main__":
    main()
