"""Command line: ``biseq predict | lexicon | train | evaluate | average | joint-train | build-system | info``.

``biseq predict hello world`` answers from the bundled English system (dictionary, then model);
``biseq train`` with no arguments trains the default grapheme-to-phoneme model on the embedded
CMU Pronouncing Dictionary and prints held-out scores and predictions.

This module is the application layer: it imports the core and the English G2P subpackage
(``biseq.g2p``), both lazily, so ``biseq --help`` and a dictionary word never import Keras or JAX.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings
from collections.abc import Sequence

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_OUT = "runs/g2p"
DEFAULT_TIME_LIMIT = 12.0


class UsageError(Exception):
    """A user mistake reported as one line, without a traceback."""


_USER_ERRORS = {"biseq.checkpoints": "CheckpointError", "biseq.config": "ConfigError", "biseq.corpus": "DataError",
                "biseq.ensemble": "EnsembleError", "biseq.joint_sequence": "JointSequenceError",
                "biseq.parallel": "ParallelError",
                "biseq.routing": "BridgeError", "biseq.search": "LeakyDecodingError",
                "biseq.training": "RunExistsError", "biseq.model_files": "ModelDirError",
                "biseq.g2p.system": "SystemDirError", "biseq.g2p.api": "G2PError",
                "biseq.g2p.lexicon": "LexiconError", "biseq.numpy_model": "UnsupportedModel"}


def _user_errors() -> tuple[type[BaseException], ...]:
    """The user-mistake errors of the modules loaded so far (one not loaded cannot have raised)."""
    loaded = [getattr(sys.modules[m], name) for m, name in _USER_ERRORS.items() if m in sys.modules]
    return (UsageError, *loaded)


@contextlib.contextmanager
def _recorded_warnings():
    """Record the warnings raised inside: every ``UserWarning`` (biseq's own: unknown symbols, skipped characters),
    other categories as Python's default filters say (a library's DeprecationWarning stays hidden)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        yield caught


@contextlib.contextmanager
def _warnings_to_stderr():
    """Show warnings raised inside (e.g. unknown symbols) as one ``biseq: warning:`` line each."""
    with _recorded_warnings() as caught:
        yield
    _print_warnings(caught)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="biseq", description="Bidirectional recurrent seq2seq models in Keras 3.")
    sub = parser.add_subparsers(dest="command", required=True)

    tr = sub.add_parser("train", help="train a model (no arguments: G2P on the embedded CMU dictionary)")
    tr.add_argument("--config", help="JSON or TOML file with [data], [model], [train] sections")
    tr.add_argument("--data", help="training data; default: the embedded CMU dictionary")
    tr.add_argument("--format", choices=["cmudict", "tsv"], help="data format (default: tsv when --data is given)")
    tr.add_argument("--dev", help="dev data file (default: a seeded hash split of --data)")
    tr.add_argument("--char", action="store_true", help="split both sides of TSV data into characters")
    tr.add_argument("--transpose", action="store_true",
                    help="train the other way round: the data's targets become the sources (phoneme-to-grapheme "
                         "from a pronouncing dictionary); --source-split/--target-split name the model's sides")
    tr.add_argument("--stream", action="store_true",
                    help="read --data a chunk at a time (files larger than memory; data.streaming)")
    tr.add_argument("--chunk-lines", type=int, help="lines per streamed chunk, the shuffle buffer (default 100000)")
    tr.add_argument("--max-shapes", type=int,
                    help="at most N padded batch shapes, each one compilation (default 0: the length buckets)")
    tr.add_argument("--source-split", choices=["char", "space", "sentencepiece"],
                    help="how TSV sources become tokens: characters, space-separated words, or subword pieces "
                         "(a SentencePiece model trained on the training split)")
    tr.add_argument("--target-split", choices=["char", "space", "sentencepiece"],
                    help="how TSV targets become tokens (as --source-split)")
    tr.add_argument("--pieces", type=int, help="most subword pieces per sentencepiece side (default 1000)")
    tr.add_argument("--out", default=None, help=f"output model directory (default: {DEFAULT_OUT})")
    tr.add_argument("--resume", action="store_true", help="continue from OUT/last.keras")
    tr.add_argument("--epochs", type=int)
    tr.add_argument("--batch-size", type=int)
    tr.add_argument("--learning-rate", type=float)
    tr.add_argument("--time-limit", type=float,
                    help="minutes of training for the whole run, across resumes (0: none)")
    tr.add_argument("--lr-schedule", choices=["plateau", "cosine"],
                    help="plateau: halve on dev plateaus; cosine: anneal over the time limit (or the epochs)")
    tr.add_argument("--keep-checkpoints", type=int, help="keep the last N epochs' weights (for 'biseq average')")
    tr.add_argument("--distill-from", metavar="TEACHER", action="append",
                    help="sequence-level distillation: train on this model's beam outputs for the training sources "
                         "(a run on the same split; its decoding is not counted in the time limit); repeat it for "
                         "an ensemble of teachers")
    tr.add_argument("--distill-beam", type=int, help="the teacher's beam size (default 5)")
    tr.add_argument("--encoder", choices=["lstm", "bilstm", "gru", "bigru"])
    tr.add_argument("--decoder", choices=["lstm", "bilstm", "gru", "bigru"])
    tr.add_argument("--bridge", choices=["concat", "sum", "dense", "forward", "zero", "direct"])
    tr.add_argument("--attention", choices=["none", "luong", "bahdanau"])
    tr.add_argument("--objective", choices=["autoregressive", "twin", "masked", "ctc", "seed"],
                    help="how a bidirectional decoder is trained (default twin; masked and ctc are non-autoregressive)")
    tr.add_argument("--upsampling", type=int, help="objective ctc: decoder frames per source token (default 2)")
    tr.add_argument("--encoder-units", type=int)
    tr.add_argument("--decoder-units", type=int)
    tr.add_argument("--layers", type=int, help="encoder and decoder layers")
    tr.add_argument("--show", type=int, default=10, help="held-out predictions to print")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    dp = tr.add_argument_group("data-parallel training (the same global batch, split by rows)")
    dp.add_argument("--devices", type=int,
                    help="local JAX devices per process (default: all local accelerators, or one CPU)")
    dp.add_argument("--num-processes", type=int, default=1, help="processes in the run (jax.distributed)")
    dp.add_argument("--process-id", type=int, default=0, help="this process, 0..P-1; 0 writes checkpoints and logs")
    dp.add_argument("--coordinator", default="", help="HOST:PORT where process 0 listens, the same for all")

    pr = sub.add_parser("predict", help="pronounce words (default: the bundled English system), or decode inputs "
                                        "with any model", description=PREDICT_HELP,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    pr.add_argument("--model", action="append",
                    help="system directory or model directory (default: the bundled English system); repeat "
                         "model directories to decode with an ensemble")
    pr.add_argument("inputs", nargs="*", help="words or text (e.g. hello world); none: read lines from stdin")
    pr.add_argument("--nbest", type=int, default=1,
                    help="candidates per word, each with a probability normalised over the candidates shown "
                         "(dictionary variants share it equally; model candidates: softmax of their scores); "
                         "with a model directory and no --beam, the beam is K wide")
    pr.add_argument("--all", action="store_true", help="every pronunciation the dictionary lists")
    pr.add_argument("--no-stress", action="store_true", help="strip stress digits (AH0 -> AH)")
    pr.add_argument("--model-only", action="store_true", help="decode every word with the model, ignoring the "
                                                              "dictionary")
    pr.add_argument("--batch-size", type=int, default=256)
    pr.add_argument("--beam", type=int, help="beam size (default: the system's, 1 for a model directory: greedy)")
    pr.add_argument("--iterations", type=int, default=4, help="mask-predict iterations (objective masked)")
    pr.add_argument("--length-candidates", type=int, default=3, help="mask-predict lengths tried (masked)")
    pr.add_argument("--length-penalty", type=float, default=1.0, help="beam score = log p / length ** this")
    _add_joint_arguments(pr, several=False)
    pr.add_argument("--devices", type=int, default=1,
                    help="local JAX devices to split each decoding batch over (default 1)")

    lx = sub.add_parser("lexicon", help="write a pronunciation dictionary for a word list (MFA, Kaldi, TSV)")
    lx.add_argument("words", help="word list: one word per line (or text: every word of it); - for stdin")
    lx.add_argument("--model", help="system directory (default: the bundled English system)")
    lx.add_argument("--format", choices=["mfa", "kaldi", "tsv"], default="mfa",
                    help="mfa: Montreal Forced Aligner dictionary with pronunciation probabilities; kaldi: "
                         "lexiconp.txt; tsv: word<TAB>phones (biseq train reads it back)")
    lx.add_argument("--nbest", type=int, default=1, help="pronunciations per word (model candidates)")
    lx.add_argument("--all", action="store_true", help="every variant the dictionary lists")
    lx.add_argument("--model-only", action="store_true", help="decode every word, ignoring the dictionary")
    lx.add_argument("--no-stress", action="store_true", help="strip stress digits")
    lx.add_argument("--out", help="output file (default: stdout); written atomically")
    lx.add_argument("--quiet", action="store_true", help="no progress bar")
    lx.add_argument("--devices", type=int, default=1,
                    help="local JAX devices to split each decoding batch over (default 1)")

    ev = sub.add_parser("evaluate", help="score a model on a data file (WER, PER, exact match; BLEU and "
                                         "chrF from sacrebleu on the detokenized text)")
    ev.add_argument("--model", action="append", help="system or model directory (default: the bundled English "
                                                     "system; its dictionary is not consulted); repeat model "
                                                     "directories for an ensemble")
    ev.add_argument("--data", required=True)
    ev.add_argument("--format", choices=["cmudict", "tsv"], help="default: the format the model was trained on")
    ev.add_argument("--split", choices=["all", "train", "dev", "test"], default="all",
                    help="score only this part of DATA, split as the model's training run split it "
                         "(seeded hash of the source; e.g. the dev words of the training file)")
    ev.add_argument("--show", type=int, default=0, help="print this many errors")
    ev.add_argument("--beam", type=int, help="beam size (default: the system's, 1 for a model directory: greedy)")
    ev.add_argument("--iterations", type=int, default=4, help="mask-predict iterations (objective masked)")
    ev.add_argument("--length-candidates", type=int, default=3, help="mask-predict lengths tried (masked)")
    ev.add_argument("--length-penalty", type=float, default=1.0)
    _add_joint_arguments(ev, several=True)
    ev.add_argument("--devices", type=int, default=1,
                    help="local JAX devices to split each decoding batch over (default 1)")

    jt = sub.add_parser("joint-train", help="train a joint-sequence (Phonetisaurus n-gram) model on a run's "
                                            "training split, to combine with it at decoding (--joint-weight)")
    jt.add_argument("--model", required=True, help="model directory written by 'biseq train': its data settings "
                                                   "and split are used, and joint.fst is written there")
    jt.add_argument("--data", help="the run's training data file (default: the run's data.path, or the embedded "
                                   "CMU dictionary)")
    jt.add_argument("--format", choices=["cmudict", "tsv"], help="default: the format the model was trained on")
    jt.add_argument("--order", type=int, default=8, help="n-gram order over aligned symbol pairs (default 8)")
    jt.add_argument("--out", help="model file to write (default: MODEL/joint.fst)")

    av = sub.add_parser("average", help="average the weights of a run's last epochs into a new model directory")
    av.add_argument("--model", required=True, help="training run directory (trained with train.keep_checkpoints)")
    av.add_argument("--last", type=int, default=5, help="how many of the newest epoch checkpoints to average")
    av.add_argument("--out", required=True, help="new model directory")

    bs = sub.add_parser("build-system", help="assemble a system directory: model(s), joint-sequence model and its "
                                             "weight, dictionary (what 'biseq predict --model DIR' loads)")
    bs.add_argument("--model", required=True, action="append", help="trained model directory; repeat: ensemble")
    bs.add_argument("--joint", help="joint-sequence model file ('biseq joint-train'; or a system's joint.fst.xz)")
    bs.add_argument("--joint-weight", type=_weight, default=0.0, help="its weight in the combination")
    bs.add_argument("--joint-nbest", type=int, default=10)
    bs.add_argument("--skip-joint-above", type=_weight, default=0.0, metavar="Q",
                    help="one answer a word: a word whose network best has a geometric-mean token probability "
                         "of at least Q keeps it without the joint model's search (0: none skipped)")
    bs.add_argument("--beam", type=int, default=5)
    bs.add_argument("--dictionary", help="pronouncing dictionary file (CMU format), or 'embedded' for the "
                                         "embedded CMU dictionary")
    bs.add_argument("--name", default="", help="the system's name (default: the directory's)")
    bs.add_argument("--card", help="JSON file: the model card (data, licence, scores)")
    bs.add_argument("--compact", action="store_true", help="float16 weights and an xz joint model: half the size")
    bs.add_argument("--out", required=True, help="new system directory")

    sv = sub.add_parser("serve", help="serve a system over HTTP: POST /v1/predict, GET /health, a web page at /",
                        description="HTTP API with dynamic micro-batching (FastAPI on uvicorn; needs "
                                    "pip install 'biseq[serve]'). OpenAPI docs at /docs. SIGTERM finishes "
                                    "the requests in flight, then exits 0.")
    sv.add_argument("--model", help="system or model directory (default: the bundled English system)")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--max-batch-words", type=int, default=1024, help="words decoded together at most (1024)")
    sv.add_argument("--max-wait-ms", type=float, default=5.0,
                    help="how long a request waits for others to join its batch (5 ms)")
    sv.add_argument("--no-batching", action="store_true", help="decode every request alone (for comparison)")
    sv.add_argument("--max-queue-words", type=int, default=8192, help="words waiting at most; then 503 (8192)")
    sv.add_argument("--max-request-words", type=int, default=256, help="words in one request at most; 413 (256)")
    sv.add_argument("--max-body-bytes", type=int, default=65536, help="request body at most; 413 (65536)")
    sv.add_argument("--max-nbest", type=int, default=10, help="nbest at most; 422 (10)")
    sv.add_argument("--cache-words", type=int, default=100_000,
                    help="results kept for words asked again (100000; 0: no cache)")
    sv.add_argument("--workers", type=int, default=1,
                    help="server processes sharing the port, each with its own copy of the system (~0.5 GB for the "
                         "bundled one): one process uses one core; give the cores to spare (1)")

    info = sub.add_parser("info", help="print a system's or model's configuration and state routing")
    info.add_argument("--model", help="system or model directory (default: the bundled English system)")
    return parser


PREDICT_HELP = """\
With no --model, words come from the bundled English system: words in its pronouncing dictionary
(the CMU dictionary) are looked up, the others are decoded by its model (beam search combined with
its joint-sequence model). Arguments that are not single words are split as text (numbers spelled
out): biseq predict "The 3 quick foxes!".

Output: word<TAB>phones; with --nbest K or --all also <TAB>probability<TAB>source (dictionary or
model). Probabilities are normalised over the candidates shown for the word, not over all
possible pronunciations.
"""


def _add_joint_arguments(parser: argparse.ArgumentParser, *, several: bool) -> None:
    parser.add_argument("--joint-weight", type=_weights if several else _weight, metavar="W" + (",W..." * several),
                        help="combine with a joint-sequence model (see 'biseq joint-train'): score = (1 - W) "
                             "log p_neural + W log p_joint over both models' n-best lists"
                             + ("; several weights: one score line each, one decoding" if several else ""))
    parser.add_argument("--joint", metavar="PATH", help="the joint model: a .fst file or a directory holding "
                                                        "joint.fst (default: the first --model directory)")
    parser.add_argument("--joint-nbest", type=int, default=10, help="joint-model candidates per input (default 10)")
    parser.add_argument("--joint-beam", type=int, default=None, metavar="N",
                        help="the joint model's search beam (default 2000; Phonetisaurus's own default is 10000)")
    parser.add_argument("--skip-joint-above", type=_weight, default=None, metavar="Q",
                        help="one answer per input: an input whose neural best has a geometric-mean token "
                             "probability of at least Q keeps it without the joint model's search (default: "
                             "the system's setting, else 0: every input is searched)")


def _weight(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value


def _weights(text: str) -> list[float]:
    return [_weight(part) for part in text.split(",")]


def _joint_decode(args: argparse.Namespace, transducer, sources, weights: list[float]):
    """``{w: per source [(tokens, score), ...]}`` from the model(s) combined with the joint model."""
    from biseq.joint_sequence import JointModel, joint_nbest

    if args.joint_nbest < 1:
        raise UsageError(f"--joint-nbest must be at least 1, got {args.joint_nbest}")
    if args.joint_beam is not None and args.joint_beam < 1:
        raise UsageError(f"--joint-beam must be at least 1, got {args.joint_beam}")
    joint = JointModel.find(args.joint or args.model[0])
    beam = {} if args.joint_beam is None else {"joint_beam": args.joint_beam}
    return joint_nbest(transducer, joint, sources, weights=weights, beam_size=max(args.beam, 1),
                       joint_nbest_size=args.joint_nbest, length_penalty=args.length_penalty,
                       skip_joint_above=args.skip_joint_above or 0.0, answers=getattr(args, "nbest", 1), **beam)


def _train_config(args: argparse.Namespace):
    from biseq.config import Config

    config = Config.load(args.config) if args.config else Config()
    data: dict = {}
    if args.data:
        data["path"] = args.data
        data["format"] = args.format or ("tsv" if not args.config else config.data.format)
        if not args.config and data["format"] == "tsv":
            data["source_split"] = "space"  # TSV tokens are space-separated unless --char/--source-split
    elif args.format:
        data["format"] = args.format
    if args.dev:
        data["dev_path"] = args.dev
    if args.char:
        data.update(source_split="char", target_split="char")
    if args.stream:
        data["streaming"] = True
    if args.transpose:
        data["transpose"] = True
    if args.chunk_lines is not None:
        data["chunk_lines"] = args.chunk_lines
    if args.max_shapes is not None:
        data["max_shapes"] = args.max_shapes
    if args.source_split:
        data["source_split"] = args.source_split
    if args.target_split:
        data["target_split"] = args.target_split
    if args.pieces is not None:
        data.update(source_pieces=args.pieces, target_pieces=args.pieces)
    model = {k: v for k, v in (("encoder", args.encoder), ("decoder", args.decoder), ("bridge", args.bridge),
                               ("attention", args.attention), ("objective", args.objective),
                               ("encoder_units", args.encoder_units),
                               ("decoder_units", args.decoder_units), ("upsampling", args.upsampling))
             if v is not None}
    if args.layers is not None:
        model.update(encoder_layers=args.layers, decoder_layers=args.layers)
    if model.get("objective") == "seed" and "attention" not in model:
        model["attention"] = "none"  # the question's model has no attention ("masked" attends to the source)
    if "decoder_units" not in model and model:  # size the decoder for the bridge unless told otherwise
        from biseq.routing import default_bridge, required_decoder_units

        merged = {**config.model.to_dict(), **model}
        bridge = merged["bridge"] or default_bridge(encoder_kind=merged["encoder"], decoder_kind=merged["decoder"])
        needed = required_decoder_units(bridge=bridge, encoder_kind=merged["encoder"],
                                        encoder_units=merged["encoder_units"])
        if needed:
            model["decoder_units"] = needed
    train = {k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size),
                               ("learning_rate", args.learning_rate), ("time_limit_minutes", args.time_limit),
                               ("lr_schedule", args.lr_schedule),
                               ("keep_checkpoints", args.keep_checkpoints),
                               ("distill_from", ",".join(args.distill_from or []) or None),
                               ("distill_beam", args.distill_beam))
             if v is not None}
    if not args.config and not args.data and args.time_limit is None:
        train["time_limit_minutes"] = DEFAULT_TIME_LIMIT
    return config.replace(data=data, model=model, train=train)


def cmd_train(args: argparse.Namespace) -> int:
    from biseq.parallel import Parallelism, setup

    config = _train_config(args)
    parallelism = Parallelism(devices=args.devices, num_processes=args.num_processes, process_id=args.process_id,
                              coordinator=args.coordinator)
    shard = setup(parallelism, batch_size=config.train.batch_size)  # before any model: JAX joins the processes
    from biseq.training import train

    out = args.out or DEFAULT_OUT
    if not shard.writes:
        train(config, out=out, resume=args.resume, verbose=0, log=lambda _: None, shard=shard)
        print(f"biseq train: process {shard.index} of {shard.count} done; process 0 wrote the model to {out}/")
        return 0
    source = config.data.path or (
        "the embedded CMU Pronouncing Dictionary" + (" (stress stripped)" if config.data.strip_stress else ""))
    limit = config.train.time_limit_minutes
    from biseq.allocator import allocator_name

    print(f"biseq train: {source} -> {out}" + (f" (time limit {limit:g} min; --time-limit 0 for none)"
                                                if limit else "")
          + ("; memory allocator: tcmalloc" if allocator_name() == "tcmalloc" else ""))
    if shard.devices > 1:
        print(f"data-parallel over {shard.devices} devices ({shard.count} process(es)), global batch "
              f"{config.train.batch_size}")
    result = train(config, out=out, resume=args.resume, verbose=0 if args.quiet else 2, shard=shard)
    print()
    if result.dev:
        print(f"dev  (held out): {result.dev}")
    if result.test:
        print(f"test (held out): {result.test}")
        print(f"\nword error rate on held-out words: {result.test.wer:.2f}%")
        pairs = list(zip(result.test_entries, result.test_hypotheses, strict=True))
        if args.show and pairs:
            import random

            shown = sorted(random.Random(0).sample(range(len(pairs)), min(args.show, len(pairs))))
            print(f"\n{len(shown)} held-out predictions:")
            for entry, hyp in (pairs[i] for i in shown):
                refs = [" ".join(t) for t in entry.targets]
                mark = "ok " if hyp in refs else "ERR"
                word = result.transducer.source_text(entry.source)
                print(f"  {mark} {word:<20} {hyp:<30} (reference: {' | '.join(refs)})")
    print(f"\ntrained in {result.seconds / 60:.1f} min; model saved in {out}/")
    print(f"next: biseq predict --model {out} hello world")
    return 0


def _system(args: argparse.Namespace):
    """The system directory named by a single --model (or the bundled one), or None for model directories."""
    from pathlib import Path

    from biseq.g2p.system import SYSTEM_FILE, System, bundled_path

    models = getattr(args, "model", None) or []
    if isinstance(models, str):
        models = [models]
    if not models:
        return System.open(bundled_path())
    if len(models) == 1 and (Path(models[0]) / SYSTEM_FILE).is_file():
        return System.open(models[0])
    return None


def _numpy_for_predict(args: argparse.Namespace, system):
    """One plain model directory decoded in NumPy (no JAX, nothing to compile), or ``None``: a system,
    several models, or a model the NumPy path does not run (see :mod:`biseq.numpy_decoding`)."""
    models = [args.model] if isinstance(args.model, str) else list(args.model or [])
    if system is not None or len(models) != 1:
        return None
    from biseq.model_files import ModelDirError
    from biseq.numpy_decoding import NumpyTransducer
    from biseq.numpy_model import UnsupportedModel

    try:
        found = NumpyTransducer.load(models[0])
    except (UnsupportedModel, ModelDirError):  # the compiled path's loading says what is wrong, in full
        return None
    if args.beam is None:
        args.beam = 1
    return found


def _load_for_decoding(args: argparse.Namespace):
    """One model (a Transducer) or an Ensemble; a system directory also sets the joint-model arguments."""
    from biseq.ensemble import Ensemble
    from biseq.transducer import Transducer

    system = _system(args)
    if system is not None:
        config = system.config
        if args.beam is None:
            args.beam = config.beam
        if args.joint_weight is None and system.joint_path is not None and config.joint_weight > 0:
            several = args.command == "evaluate"
            args.joint_weight = [config.joint_weight] if several else config.joint_weight
            args.joint, args.joint_nbest = str(system.joint_path), config.joint_nbest
            if args.skip_joint_above is None:
                args.skip_joint_above = config.skip_joint_above
        paths = [str(p) for p in system.model_paths]
    else:
        paths = args.model
    if args.beam is None:
        args.beam = 1
    transducers = [Transducer.load(m) for m in paths]
    for t in transducers:
        t.iterations, t.length_candidates = args.iterations, args.length_candidates
    if len(transducers) == 1:
        return transducers[0]
    if any(t.model.objective in ("masked", "ctc", "seed") for t in transducers):
        raise UsageError("an ensemble decodes left to right: every --model must be autoregressive or twin")
    return Ensemble(transducers)


def _input_words(inputs: list[str]) -> list[str]:
    """Arguments or lines as words: a single word stays as it is, anything else is split as text."""
    from biseq.g2p.text import fold, words

    out = []
    for item in inputs:
        item = item.strip()
        if not item:
            continue
        single = fold(item)
        out.extend([single] if words(item) == [single] else words(item))
    return out


def _print_warnings(caught) -> None:
    for w in caught:
        print(f"biseq: warning: {w.message}", file=sys.stderr)


def cmd_predict(args: argparse.Namespace) -> int:
    inputs = list(args.inputs) or [line.rstrip("\n") for line in sys.stdin]
    inputs = [i for i in inputs if i.strip()]
    if not inputs:
        raise UsageError("nothing to predict: give inputs as arguments or lines on stdin")
    if args.nbest < 1:
        raise UsageError(f"--nbest must be at least 1, got {args.nbest}")
    system = _system(args)
    if system is not None and args.joint_weight is None and args.beam is None:
        return _predict_with_system(args, system, inputs)
    if system is None and args.beam is None and args.nbest > 1:
        args.beam = args.nbest  # an n-best list of K needs a beam at least K wide
    if args.nbest > max(args.beam or 1, 1) and args.joint_weight is None and system is None:
        raise UsageError(f"--nbest {args.nbest} needs --beam of at least {args.nbest}")
    transducer = _numpy_for_predict(args, system) or _load_for_decoding(args)
    if system is not None:
        inputs = _input_words(inputs)
    with _warnings_to_stderr():
        if args.joint_weight is not None:
            if args.nbest > max(args.beam, 1) + args.joint_nbest:
                raise UsageError(f"--nbest {args.nbest} is more than --beam + --joint-nbest candidates")
            sources = [transducer.tokenize_source(t) for t in inputs]
            ranked = _joint_decode(args, transducer, sources, [args.joint_weight])[args.joint_weight]
            found = [[(transducer.target_text(tokens), score) for tokens, score in hyps[: args.nbest]]
                     for hyps in ranked]
        elif args.beam > 1:
            found = transducer.predict_nbest(inputs, beam_size=args.beam, nbest=args.nbest,
                                             length_penalty=args.length_penalty)
        else:
            found = [[(o, None)] for o in transducer.predict(inputs, batch_size=args.batch_size)]
    for text, hyps in zip(inputs, found, strict=True):
        for output, score in hyps:
            print(f"{text}\t{output}" + (f"\t{score:.4f}" if args.nbest > 1 else ""))
    return 0


def _predict_with_system(args: argparse.Namespace, system, inputs: list[str]) -> int:
    """Dictionary first, then the model: ``word<TAB>phones[<TAB>prob<TAB>source]``."""
    from biseq.g2p.api import G2P

    words = _input_words(inputs)
    if not words:
        raise UsageError("nothing to predict: the inputs hold no words")
    with _recorded_warnings() as caught:
        results = G2P(system).predict(words, nbest=args.nbest, all_variants=args.all, model_only=args.model_only,
                                      stress=not args.no_stress, batch_size=args.batch_size)
    _print_warnings(caught)
    detailed = args.nbest > 1 or args.all
    for result in results:
        if not result.pronunciations:
            print(f"{result.word}\t")
        for pron in result.pronunciations[: None if args.all else args.nbest]:
            print(f"{result.word}\t{pron.phones}" + (f"\t{pron.prob:.4f}\t{pron.source}" if detailed else ""))
    return 0


def cmd_lexicon(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from biseq.g2p.api import G2P
    from biseq.g2p.lexicon import read_word_list, write_lexicon
    from biseq.g2p.system import System, bundled_path

    if args.nbest < 1:
        raise UsageError(f"--nbest must be at least 1, got {args.nbest}")
    words = read_word_list(args.words)
    if not words:
        raise UsageError(f"{args.words}: no words in it")
    g2p = G2P(System.open(args.model or bundled_path()))
    results = []
    with _recorded_warnings() as caught:
        chunk = 512
        with tqdm(total=len(words), unit="word", disable=True if args.quiet else None, file=sys.stderr,
                  desc="biseq lexicon") as bar:
            for start in range(0, len(words), chunk):
                part = words[start:start + chunk]
                results.extend(g2p.predict(part, nbest=args.nbest, all_variants=args.all,
                                           model_only=args.model_only, stress=not args.no_stress))
                bar.update(len(part))
    _print_warnings(caught)
    write_lexicon(results, fmt=args.format, out=args.out)
    counts: dict[str, int] = {}
    for r in results:
        for p in r.pronunciations[:1]:
            counts[p.source] = counts.get(p.source, 0) + 1
    if args.out:
        print(f"{len(results)} words ({counts.get('dictionary', 0)} from the dictionary, {counts.get('model', 0)} "
              f"from the model) -> {args.out} ({args.format})", file=sys.stderr)
    return 0


def cmd_build_system(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from biseq.corpus import default_cmudict_path
    from biseq.g2p.system import write_system

    card = {}
    if args.card:
        try:
            card = json.loads(Path(args.card).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise UsageError(f"{args.card}: not a readable JSON model card ({err})") from None
    dictionary = default_cmudict_path() if args.dictionary == "embedded" else args.dictionary
    system = write_system(args.out, models=args.model, joint=args.joint, joint_weight=args.joint_weight,
                          joint_nbest=args.joint_nbest, skip_joint_above=args.skip_joint_above, beam=args.beam,
                          dictionary=dictionary, name=args.name,
                          card=card, compact=args.compact)
    size = sum(f.stat().st_size for f in system.root.rglob("*") if f.is_file())
    print(f"system {system.name!r} written to {system.root}/ ({size / 1e6:.1f} MB): "
          f"{len(system.model_paths)} model(s)" + (f", joint-sequence model at weight {args.joint_weight:g}"
                                                   if args.joint else "")
          + (", dictionary" if dictionary else ""))
    print(f"use it with: biseq predict --model {system.root} hello")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from biseq.corpus import read_corpus
    from biseq.ensemble import decode_entries
    from biseq.metrics import score, text_scores

    transducer = _load_for_decoding(args)
    entries = read_corpus(args.data, config=transducer.config.data, fmt=args.format)
    if args.split != "all":
        from biseq.corpus import split_corpus

        entries = split_corpus(entries, transducer.config.data)[args.split]
        if not entries:
            raise UsageError(f"{args.data}: the {args.split} split is empty (the model's data.dev_fraction is "
                             f"{transducer.config.data.dev_fraction}, test_fraction "
                             f"{transducer.config.data.test_fraction})")
    started = time.perf_counter()
    part = "" if args.split == "all" else f" ({args.split} split, {len(entries)} sources)"
    search = f"beam {args.beam}" if args.beam > 1 else "greedy"
    with _warnings_to_stderr():
        refs = [[" ".join(t) for t in e.targets] for e in entries]
        if args.joint_weight is None:
            tokens = decode_entries(transducer, entries, beam_size=args.beam, length_penalty=args.length_penalty)
            hyps = [" ".join(h) for h in tokens]
            scores = score(hyps, refs)
            print(f"{args.data}{part}: {scores}")
        else:
            ranked = _joint_decode(args, transducer, [e.source for e in entries], args.joint_weight)
            results = {}
            for w in args.joint_weight:
                best_tokens = [list(h[0][0]) if h else [] for h in ranked[w]]
                hyps = [" ".join(h) for h in best_tokens]
                results[w] = (score(hyps, refs), hyps, best_tokens)
                print(f"{args.data}{part}, joint weight {w:g}: {results[w][0]}")
            if len(results) > 1:
                best = min(results, key=lambda w: (results[w][0].wer, results[w][0].per))
                print(f"lowest WER at joint weight {best:g}: {results[best][0]}")
            else:
                best = args.joint_weight[0]
            scores, hyps, tokens = results[best]
            search += f" + joint model, {args.joint_nbest} candidates"
    seconds = time.perf_counter() - started
    print(f"{args.data}{part}: " + str(text_scores([transducer.target_text(h) for h in tokens],
                                                  [[transducer.target_text(t) for t in e.targets] for e in entries],
                                                  characters=transducer.config.data.splits[1] == "char")))
    print(f"decoded {len(entries)} sources in {seconds:.1f}s ({search}, compilation included): "
          f"{len(entries) / max(seconds, 1e-9):.0f} per second")
    shown = 0
    for entry, hyp in zip(entries, tokens, strict=True):
        if shown >= args.show:
            break
        if tuple(hyp) not in entry.targets:
            refs = " | ".join(transducer.target_text(t) for t in entry.targets)
            print(f"  {transducer.source_text(entry.source)}\t{transducer.target_text(hyp)}\t(reference: {refs})")
            shown += 1
    return 0


def cmd_average(args: argparse.Namespace) -> int:
    from pathlib import Path

    from biseq.checkpoints import average_checkpoints, epoch_checkpoints
    from biseq.transducer import Transducer

    run, out = Path(args.model), Path(args.out)
    if args.last < 1:
        raise UsageError(f"--last must be at least 1, got {args.last}")
    if out.resolve() == run.resolve():
        raise UsageError("--out must be a new directory: averaging does not overwrite the run's best model")
    paths = epoch_checkpoints(run)
    if not paths:
        raise UsageError(f"{run}: no epoch checkpoints in {run}/epochs/; train with train.keep_checkpoints = N")
    paths = paths[-args.last:]
    transducer = Transducer.load(run)
    average_checkpoints(transducer.model, paths)
    transducer.save(out)
    print(f"averaged {len(paths)} checkpoints ({', '.join(p.name for p in paths)}) -> {out}/")
    return 0


def cmd_joint_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from biseq.corpus import load_default_corpus, read_corpus, split_corpus
    from biseq.joint_sequence import JOINT_FILE, check_char_sources, train_joint
    from biseq.transducer import Transducer

    transducer = Transducer.load(args.model)
    data = transducer.config.data
    check_char_sources(data)
    path = args.data or data.path
    entries = read_corpus(args.data, config=data, fmt=args.format) if args.data else load_default_corpus(data)
    train = split_corpus(entries, data)["train"]  # the sources 'biseq train' trained on (as training.prepare)
    out = Path(args.out) if args.out else Path(args.model) / JOINT_FILE
    name = path or "the embedded CMU dictionary"
    print(f"training a {args.order}-gram joint-sequence model on the {len(train)} training sources of {name} "
          "(the run's split) ...", flush=True)
    started = time.perf_counter()
    train_joint(train, path=out, order=args.order, name=name)
    print(f"joint-sequence model written to {out} in {(time.perf_counter() - started) / 60:.1f} min; "
          f"use it with: biseq evaluate --model {args.model} --joint-weight 0.5 ...")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from biseq.transducer import Transducer

    system = _system(args)
    paths = [str(p) for p in system.model_paths] if system is not None else [args.model]
    if system is not None:
        c = system.config
        print(f"system: {system.name} ({system.root})")
        parts = [f"{len(paths)} model(s), beam {c.beam}"]
        if system.joint_path is not None:
            skip = (f", skipped for words the network is sure of (geometric-mean token probability >= "
                    f"{c.skip_joint_above:g})" if c.skip_joint_above else "")
            parts.append(f"joint-sequence model {system.joint_path.name} at weight {c.joint_weight:g} "
                         f"over {c.joint_nbest} candidates{skip}")
        if system.dictionary_path is not None:
            parts.append(f"dictionary {system.dictionary_path.name}")
        print("components: " + "; ".join(parts))
        for key, value in c.card.items():
            print(f"card: {key}: {value}")
    for path in paths:
        _print_model(path, Transducer.load(path))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from biseq.server.run import serve
    except ImportError as error:
        raise UsageError(f"'biseq serve' needs FastAPI and uvicorn ({error}): pip install 'biseq[serve]'") from None
    from biseq.server.settings import ServeConfig

    settings = ServeConfig(max_batch_words=args.max_batch_words, max_wait_ms=args.max_wait_ms,
                           batching=not args.no_batching, max_queue_words=args.max_queue_words,
                           max_request_words=args.max_request_words, max_body_bytes=args.max_body_bytes,
                           max_nbest=args.max_nbest, cache_words=args.cache_words)
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    return serve(args.model, host=args.host, port=args.port, settings=settings, workers=args.workers)


def _print_model(path: str, transducer) -> None:
    c = transducer.config.model
    print(f"model directory: {path}")
    print(f"encoder: {c.encoder} x {c.encoder_layers} layer(s), {c.encoder_units} units per direction")
    print(f"decoder: {c.decoder} x {c.decoder_layers} layer(s), {c.decoder_units} units; attention: {c.attention}"
          + (f" (input feeding: {c.input_feeding})" if c.attention != "none" else ""))
    objective = c.resolved_objective + (f" ({c.upsampling} frames per source token)" if c.resolved_objective == "ctc"
                                        else "")
    print(f"objective: {objective}; bridge: {c.resolved_bridge}; embedding {c.embedding_dim}; "
          f"vocabularies {len(transducer.source_vocab)} source / {len(transducer.target_vocab)} target symbols; "
          f"{transducer.model.count_params():,} parameters")
    from biseq.checkpoints import weights_fingerprint

    print(f"weights sha256: {weights_fingerprint(transducer.model)}")
    print("state routing (decoder initial state <- encoder final states):")
    for line in transducer.model.routing():
        print(f"  {line}")
    if c.resolved_objective == "twin":
        print("  (twin: the decoder's forward states start its left-to-right decoder, the backward states "
              "its right-to-left decoder)")


def _decoding_devices(devices: int) -> None:
    """Split decoding batches over ``devices`` local devices; 1 imports nothing (dictionary words need no JAX)."""
    if devices < 1:
        raise UsageError(f"--devices must be at least 1. Received: {devices}")
    if devices > 1:
        from biseq.parallel import setup_decoding  # NumPy and the device setup: only when asked for

        setup_decoding(devices)


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if argv is None and args.command == "train":  # the command line, not a caller's process
        from biseq.allocator import restart_under_tcmalloc

        restart_under_tcmalloc(sys.argv[1:])  # a faster training step where tcmalloc is installed
    commands = {"train": cmd_train, "predict": cmd_predict, "evaluate": cmd_evaluate, "info": cmd_info,
                "average": cmd_average, "joint-train": cmd_joint_train, "lexicon": cmd_lexicon,
                "build-system": cmd_build_system, "serve": cmd_serve}
    if args.command in ("train", "predict", "lexicon", "evaluate", "serve"):
        from biseq import compile_cache

        compile_cache.enable()  # before any compilation: a repeated run loads its XLA programs from disk
    try:
        if args.command in ("predict", "lexicon", "evaluate"):
            _decoding_devices(args.devices)
        return commands[args.command](args)
    except _user_errors() as err:
        print(f"biseq: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the disk, not the user's input: say which file and why, keep what is written
        where = f"{err.filename}: " if err.filename else ""
        print(f"biseq: error: {where}{err.strerror or err} (nothing already written was changed)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("biseq: interrupted; 'biseq train --resume' continues from the last checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
