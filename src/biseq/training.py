"""Training: data -> vocabularies -> batches -> ``model.fit`` with dev scoring, checkpoints, resume.

An output directory holds the best model (``model.keras``, ``vocab.json``,
``config.json``), the last checkpoint with optimizer state (``last.keras``,
``state.json``) so an interrupted run resumes, and the history
(``history.json``, ``history.png``). Every file is written atomically.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
from keras import ops

from biseq.batching import Batch, encode_pairs, make_batches, padding_share, reverse_targets
from biseq.checkpoints import restore_seed_states, save_epoch_weights, seed_states
from biseq.config import Config, DataConfig
from biseq.corpus import DataError, Entry, load_default_corpus, read_corpus, split_corpus
from biseq.ctc import CTCLoss, alignable
from biseq.ensemble import Ensemble, decode_entries
from biseq.metrics import Scores, score
from biseq.model_dir import VOCAB_FILE, read_vocabularies
from biseq.parallel import ONE_PROCESS, Shard, agree, teardown
from biseq.schedule import TrainingClock, cosine_rate
from biseq.streaming import ChunkedBatches, Scan, fits, scan, vocabularies
from biseq.subwords import PIECE_SPLIT, SubwordError, Subwords
from biseq.transducer import Transducer, atomic_save_model, atomic_write_text
from biseq.vocabulary import EOS_ID, MASK, PAD_ID, Vocabulary

LAST_FILE, STATE_FILE, HISTORY_FILE, PLOT_FILE = "last.keras", "state.json", "history.json", "history.png"


class RunExistsError(ValueError):
    """The output directory already holds a training run and resuming was not asked for."""


@keras.saving.register_keras_serializable(package="biseq")
class MaskedCrossEntropy(keras.losses.Loss):
    """Cross-entropy from logits with optional label smoothing.

    ``y_true [B, T]`` ids, ``y_pred [B, T, V]`` logits; padding is excluded by
    the sample weights ``[B, T]`` (1 at real tokens) and the
    ``mean_with_sample_weight`` reduction, so the loss is a mean over real tokens.
    """

    def __init__(self, *, label_smoothing: float = 0.0, name: str = "masked_cross_entropy", **kwargs) -> None:
        kwargs.setdefault("reduction", "mean_with_sample_weight")
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        log_probs = ops.log_softmax(y_pred, axis=-1)
        nll = -ops.take_along_axis(log_probs, ops.cast(y_true, "int32")[..., None], axis=-1)[..., 0]
        if not self.label_smoothing:
            return nll
        return (1.0 - self.label_smoothing) * nll - self.label_smoothing * ops.mean(log_probs, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


class BatchSequence(keras.utils.PyDataset):
    """Bucketed batches, reshuffled every epoch (seeded by ``seed`` and the epoch number).

    Items are ``(inputs, targets, sample weights)`` for ``model.fit``: autoregressive
    ``((source, decoder_input), target, weight)``; twin adds the right-to-left input, target
    and weight; masked gives ``((source, masked_target), (target, length), (mask weight, row weight))``;
    ctc ``(source, target, row weight)`` (the target without ``<s>``/``</s>``, rows CTC cannot align weighted 0).
    With ``rows`` every array is cut to those rows of the batch: one process's part of a global batch.
    With ``stream`` the batches come a chunk at a time from a file too large for memory, and ``pairs``
    is not used.
    """

    def __init__(self, pairs: Sequence[tuple[list[int], list[int]]], *, batch_size: int, seed: int,
                 objective: str = "autoregressive", mask_id: int = -1, epoch: int = 0,
                 rows: slice | None = None, stream: ChunkedBatches | None = None, upsampling: int = 1,
                 max_shapes: int = 0) -> None:
        super().__init__()
        self.max_shapes = max_shapes  # data.max_shapes: at most this many batch shapes
        self.upsampling = upsampling  # objective "ctc": frames per source token
        self.pairs, self.batch_size, self.seed, self.epoch = pairs, batch_size, seed, epoch
        self.objective, self.mask_id, self.rows, self.stream = objective, mask_id, rows, stream
        self.batches: list[Batch] = []
        self._shuffle()

    def _shuffle(self) -> None:
        if self.stream is not None:
            self.stream.set_epoch(self.epoch)
            return
        self.batches = make_batches(self.pairs, batch_size=self.batch_size,
                                    rng=np.random.default_rng([self.seed, self.epoch]), max_shapes=self.max_shapes)

    def __len__(self) -> int:
        return len(self.stream) if self.stream is not None else len(self.batches)

    def __getitem__(self, index: int):
        item = self._item(index)
        if self.rows is None:
            return item

        def cut(x):
            return tuple(cut(y) for y in x) if isinstance(x, tuple) else x[self.rows]

        return cut(item)

    def _item(self, index: int):
        b = self.stream.batch(index) if self.stream is not None else self.batches[index]
        if self.objective == "twin":
            r = reverse_targets(b)
            return (b.source, b.decoder_input, r.decoder_input), (b.decoder_target, r.decoder_target), (b.weight,
                                                                                                         r.weight)
        if self.objective == "masked":
            rng = np.random.default_rng([self.seed, self.epoch, index])
            masked_input, tokens, token_weight, lengths = mask_targets(b, mask_id=self.mask_id, rng=rng)
            return (b.source, masked_input), (tokens, lengths), (token_weight, (lengths > 0).astype(np.float32))
        if self.objective == "ctc":
            tokens = np.where(b.decoder_target == EOS_ID, PAD_ID, b.decoder_target).astype(np.int32)
            return b.source, tokens, alignable(b.source, tokens, upsampling=self.upsampling).astype(np.float32)
        return (b.source, b.decoder_input), b.decoder_target, b.weight

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._shuffle()


def mask_targets(batch: Batch, *, mask_id: int, rng: np.random.Generator):
    """Objective ``masked``: hide a random share of each target.

    Per row with ``n`` target tokens, ``k ~ uniform{1..n}`` random positions become
    ``<mask>``; only those are predicted.

    Returns:
        ``(masked input [B, T], target tokens [B, T], weights [B, T] (1 at masked positions),
        lengths [B])``; the target has no ``<s>``/``</s>``.
    """
    tokens = np.where(batch.decoder_target == EOS_ID, PAD_ID, batch.decoder_target).astype(np.int32)
    real = tokens != PAD_ID
    lengths = real.sum(axis=1)
    u = np.where(real, rng.random(tokens.shape), 2.0)
    rank = np.argsort(np.argsort(u, axis=1), axis=1)
    k = np.floor(rng.random(len(tokens)) * lengths).astype(np.int64) + 1
    masked = (rank < k[:, None]) & real
    return (np.where(masked, mask_id, tokens).astype(np.int32), tokens, masked.astype(np.float32),
            lengths.astype(np.int32))


@dataclasses.dataclass(frozen=True)
class Prepared:
    """Split data and vocabularies; a streamed training file has ``train`` empty and its ``scan``."""

    train: list[Entry]
    dev: list[Entry]
    test: list[Entry]
    source_vocab: Vocabulary
    target_vocab: Vocabulary
    scan: Scan | None = None


def prepare(config: Config) -> Prepared:
    """Read the corpus, split it by seeded hash of the source, drop over-long pairs, build vocabularies.

    With ``data.streaming`` the training file is scanned once instead (:func:`biseq.streaming.scan`).
    """
    data = config.data
    extra = (MASK,) if config.model.resolved_objective == "masked" else ()
    if data.streaming:
        if not data.path:
            raise DataError("data.streaming needs a training file (--data): the embedded dictionary is read whole")
        found = scan(data.path, config=data, batch_size=config.train.batch_size)
        source_vocab, target_vocab = vocabularies(found, extra_target=extra)
        dev = read_corpus(data.dev_path, config=data) if data.dev_path else found.dev
        return Prepared(train=[], dev=dev, test=found.test, source_vocab=source_vocab, target_vocab=target_vocab,
                        scan=found)
    entries = load_default_corpus(data)
    parts = split_corpus(entries, data)
    if data.dev_path:
        parts["dev"] = read_corpus(data.dev_path, config=data)

    train = [e for e in parts["train"] if fits(e, data)]
    source_subwords, target_subwords = train_subwords(train, data)
    source_vocab = Vocabulary.build((e.source for e in train), subwords=source_subwords)
    target_vocab = Vocabulary.build((t for e in train for t in e.targets), extra=extra, subwords=target_subwords)
    if source_subwords is not None or target_subwords is not None:  # limits hold for the pieces the model reads
        train = [e for e in train if fits(Entry(tuple(source_vocab.segment(e.source)),
                                                tuple(tuple(target_vocab.segment(t)) for t in e.targets)), data)]
    if not train:
        raise DataError("No training data left after the split: use more data or a smaller dev/test fraction.")
    return Prepared(train=train, dev=parts["dev"], test=parts["test"], source_vocab=source_vocab,
                    target_vocab=target_vocab)


def train_subwords(train: Sequence[Entry], data: DataConfig) -> tuple[Subwords | None, Subwords | None]:
    """SentencePiece models for the sides split by ``"sentencepiece"``, trained on the training split's text."""
    found: list[Subwords | None] = []
    for side, split, size in (("source", data.source_split, data.source_pieces),
                              ("target", data.target_split, data.target_pieces)):
        if split != PIECE_SPLIT:
            found.append(None)
            continue
        texts = [" ".join(e.source) for e in train] if side == "source" else \
            [" ".join(t) for e in train for t in e.targets]
        try:
            found.append(Subwords.train(texts, size=size, kind=data.pieces_model))
        except SubwordError as err:
            raise DataError(f"data.{side}_split = 'sentencepiece': {err}") from None
    return found[0], found[1]


def evaluate(transducer: Transducer | Ensemble, entries: Sequence[Entry], *, batch_size: int = 256, beam_size: int = 1,
             length_penalty: float = 1.0) -> tuple[Scores, list[str]]:
    """Decode ``entries`` (greedy, or beam search when ``beam_size > 1``) and score them.

    Returns the scores and the hypotheses (space-joined tokens).
    """
    hyps = decode_entries(transducer, entries, batch_size=batch_size, beam_size=beam_size,
                          length_penalty=length_penalty)
    hyp_strings = [" ".join(h) for h in hyps]
    refs = [[" ".join(t) for t in e.targets] for e in entries]
    return score(hyp_strings, refs), hyp_strings


def dev_sample(entries: Sequence[Entry], count: int, seed: int) -> list[Entry]:
    """A fixed random sample of at most ``count`` entries (all of them when ``count`` is 0)."""
    if not count or count >= len(entries):
        return list(entries)
    index = np.random.default_rng(seed).choice(len(entries), size=count, replace=False)
    return [entries[i] for i in sorted(index)]


class DevMonitor(keras.callbacks.Callback):
    """After each epoch: dev scores, best model kept, learning-rate decay, early stopping, checkpoint.

    Also stops training once the time budget is spent (checked after every batch).
    """

    def __init__(self, *, transducer: Transducer, dev: Sequence[Entry], out: Path, state: dict,
                 started: float, pairs_per_batch: float, log: Callable[[str], None],
                 shard: Shard = ONE_PROCESS) -> None:
        super().__init__()
        self.transducer, self.dev, self.out, self.state, self.log = transducer, dev, out, state, log
        self.shard = shard
        self.pairs_per_batch, self.batches = pairs_per_batch, 0
        self.train_cfg = transducer.config.train
        self.budget = 60 * self.train_cfg.time_limit_minutes
        prior = float(state.get("elapsed", 0.0))
        self.deadline = started + self.budget - prior if self.budget else None
        self.epoch_started = time.time()
        self.clock = TrainingClock(budget=self.budget, started=started, prior_elapsed=prior,
                                   prior_overhead=float(state.get("compile_seconds", 0.0)))

    def elapsed(self) -> float:
        """Seconds this run has taken so far, over all its sessions."""
        return self.clock.elapsed(time.time())

    def time_spent(self) -> bool:
        """Whether the run's time limit (over all its sessions) is used up; never without a limit.

        With several processes, process 0's clock decides for all of them.
        """
        if self.deadline is None:
            return False
        return agree(time.time() > self.deadline, self.shard)

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.epoch_started, self.batches = time.time(), 0
        self.clock.start_epoch(self.epoch_started)
        tc = self.train_cfg
        if tc.lr_schedule == "cosine":
            if self.budget:  # the middle of this epoch, as a share of the time budget, compilation left out
                progress = self.clock.progress(self.epoch_started, ahead=self.clock.epoch_seconds() / 2)
            else:
                progress = (epoch + 0.5) / tc.epochs
            rate = agree(cosine_rate(progress, base=tc.learning_rate, final_fraction=tc.final_lr_fraction),
                         self.shard)
            self.model.optimizer.learning_rate.assign(rate)

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.batches += 1
        self.clock.batch_done(time.time())
        if self.time_spent():
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None) -> None:
        evaluated = time.time()
        seconds = evaluated - self.epoch_started
        scores, _ = evaluate(self.transducer, self.dev)
        self.clock.evaluation(time.time() - evaluated)
        lr = float(ops.convert_to_numpy(self.model.optimizer.learning_rate))
        record = {"epoch": epoch + 1, "loss": float((logs or {}).get("loss", math.nan)), "dev_wer": scores.wer,
                  "dev_per": scores.per, "learning_rate": lr, "seconds": seconds,
                  "pairs_per_second": self.batches * self.pairs_per_batch / max(seconds, 1e-9)}
        self.state["history"].append(record)
        improved = scores.wer < self.state["best_wer"] or (
            scores.wer == self.state["best_wer"] and scores.per < self.state["best_per"])
        if improved:
            self.state.update(best_wer=scores.wer, best_per=scores.per, best_epoch=epoch + 1, bad_epochs=0)
            self.transducer.save(self.out)
        else:
            self.state["bad_epochs"] += 1
            if (self.train_cfg.lr_schedule == "plateau"
                    and self.state["bad_epochs"] % max(self.train_cfg.lr_patience, 1) == 0):
                self.model.optimizer.learning_rate.assign(lr * self.train_cfg.lr_decay)
        self.log(f"epoch {epoch + 1}: loss {record['loss']:.4f}  dev WER {scores.wer:.2f}%  PER {scores.per:.2f}%  "
                 f"lr {lr:.2e}  {seconds:.0f}s  {record['pairs_per_second']:.0f} pairs/s"
                 f"{'  (best, saved)' if improved else ''}")
        self.state["epoch"] = epoch + 1
        self.state["elapsed"] = self.elapsed()
        self.state["compile_seconds"] = self.clock.overhead()
        if self.train_cfg.stops_early(self.state["bad_epochs"]):
            self.log(f"early stop: no dev improvement for {self.state['bad_epochs']} epochs")
            self.model.stop_training = True
        if self.time_spent():
            self.log(f"time limit of {self.train_cfg.time_limit_minutes:g} minutes reached")
            self.model.stop_training = True
        if self.train_cfg.keep_checkpoints:
            save_epoch_weights(self.model, run=self.out, epoch=epoch + 1, keep=self.train_cfg.keep_checkpoints)
        # the commit point is state.json: it names the checkpoint written just before it, so a kill at any
        # moment leaves a state and the checkpoint it names (the previous pair until the new state lands)
        checkpoint = checkpoint_name(epoch + 1)
        atomic_save_model(self.model, self.out / checkpoint)
        self.state["checkpoint"] = checkpoint
        self.state["seed_states"] = seed_states(self.model)  # dropout's random state: not in the .keras file
        atomic_write_text(self.out / STATE_FILE, json.dumps(self.state, indent=1))
        for old in self.out.glob("last*.keras"):
            if old.name != checkpoint:
                old.unlink(missing_ok=True)
        write_history(self.out, self.state["history"])


def checkpoint_name(epoch: int) -> str:
    """The resumable checkpoint written after ``epoch`` (weights and optimizer state)."""
    return f"last-{epoch:03d}.keras"


def resumable_state(out: Path) -> tuple[dict, Path] | None:
    """``state.json`` and the checkpoint it names, or ``None`` when ``out`` holds no run to resume.

    Raises:
        RunExistsError: ``state.json`` is unreadable or names a checkpoint that is not there.
    """
    state_path = out / STATE_FILE
    if not state_path.is_file():
        return None
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunExistsError(f"{state_path}: cannot read the run's state ({error}); it is not resumable") from None
    checkpoint = out / state.get("checkpoint", LAST_FILE)  # runs before versioned checkpoints: last.keras
    if not checkpoint.is_file():
        raise RunExistsError(f"{state_path} names the checkpoint {checkpoint.name}, which is missing: the run "
                             "cannot be resumed (start it again with another --out)")
    return state, checkpoint


def write_history(out: Path, history: list[dict]) -> None:
    """``history.json`` and a PNG plot of loss and dev WER per epoch."""
    atomic_write_text(out / HISTORY_FILE, json.dumps(history, indent=1))
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(epochs, [h["loss"] for h in history], marker="o")
    ax1.set(xlabel="epoch", ylabel="training loss (per token)", title="loss")
    ax2.plot(epochs, [h["dev_wer"] for h in history], marker="o", label="WER")
    ax2.plot(epochs, [h["dev_per"] for h in history], marker="o", label="PER")
    ax2.set(xlabel="epoch", ylabel="percent", title="dev error rates")
    ax2.legend()
    fig.tight_layout()
    tmp = out / f".{PLOT_FILE}.tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out / PLOT_FILE)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What ``train`` returns: the best system and its held-out scores."""

    transducer: Transducer
    dev: Scores | None
    test: Scores | None
    test_entries: list[Entry]
    test_hypotheses: list[str]
    seconds: float


def train(config: Config, *, out: str | Path, resume: bool = False, verbose: int = 1,
          log: Callable[[str], None] = print, shard: Shard = ONE_PROCESS) -> TrainResult:
    """Train ``config`` into ``out``; with ``resume`` continue from the checkpoint ``state.json`` names.

    ``shard``: this process's part of a data-parallel run (:func:`biseq.parallel.setup` has set the
    distribution): it feeds its rows of every batch. Only process 0 writes to ``out`` and scores the
    final model; the others write the same files to a scratch directory, removed at the end (every
    process must make the same JAX calls, saving included), and return no scores. All of them read
    ``out`` to resume: several hosts need it on a shared filesystem.

    Returns the best model (by dev WER) and its dev and test scores.
    """
    started = time.time()
    out = Path(out)
    if not resume and (out / STATE_FILE).is_file():
        raise RunExistsError(f"{out} already holds a training run ({STATE_FILE}); continue it with --resume, "
                             "or choose another --out (nothing was overwritten).")
    keras.utils.set_random_seed(config.train.seed)
    data = prepare(config)
    if config.train.distill_from:
        if data.scan is not None or shard.devices > 1:
            raise DataError("train.distill_from works on one device without data.streaming: distill into a "
                            "single-device run, or write the teacher's outputs as a data file")
        from biseq.distillation import distilled

        data = dataclasses.replace(data, train=distilled(data.train, teacher_dir=config.train.distill_from,
                                                         beam=config.train.distill_beam, out=out, log=log,
                                                         source_split=config.data.splits[0]))
        started = time.time()  # the teacher's decoding is not training time
        keras.utils.set_random_seed(config.train.seed)
    train_count = f"{data.scan.train_pairs} streamed train pairs" if data.scan else f"{len(data.train)} train"
    log(f"data: {train_count} / {len(data.dev)} dev / {len(data.test)} test sources; "
        f"vocabularies {len(data.source_vocab)} source / {len(data.target_vocab)} target symbols")
    if not data.dev:
        raise DataError("The dev split is empty: set data.dev_fraction above 0 or give data.dev_path.")
    state = {"epoch": 0, "best_wer": math.inf, "best_per": math.inf, "best_epoch": 0, "bad_epochs": 0,
             "history": []}
    model = None
    found = resumable_state(out) if resume else None
    if resume and shard.writes and out.is_dir():  # a killed session's half-written temporary files: removed
        for stale in [*out.glob(".last-*.keras"), *out.glob(".*.tmp")]:
            stale.unlink(missing_ok=True)
    if found is not None:
        state, checkpoint = found
        source_vocab, target_vocab = read_vocabularies(out / VOCAB_FILE)
        data = dataclasses.replace(data, source_vocab=source_vocab, target_vocab=target_vocab)
        model = keras.saving.load_model(checkpoint, compile=True)
        if "seed_states" in state:
            restore_seed_states(model, state["seed_states"])
        log(f"resuming from {checkpoint} after epoch {state['epoch']} (best dev WER {state['best_wer']:.2f}%)")
    transducer = Transducer(config=config, source_vocab=data.source_vocab, target_vocab=data.target_vocab,
                            model=model)
    written = out if shard.writes else Path(tempfile.mkdtemp(prefix=f"biseq-process-{shard.index}-"))
    if model is None:
        written.mkdir(parents=True, exist_ok=True)
        transducer.save(written)  # vocabularies and config now; the weights are replaced by the best epoch
        tc = config.train
        two_outputs = transducer.model.objective in ("twin", "masked")
        loss = MaskedCrossEntropy(label_smoothing=tc.label_smoothing)
        if transducer.model.objective == "ctc":
            loss = CTCLoss()
        transducer.model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=tc.learning_rate, global_clipnorm=tc.clip_norm),
            loss=[loss, loss] if two_outputs else loss,
        )
    log(f"model: {transducer.model.count_params():,} parameters; state routing:")
    for line in transducer.model.routing():
        log(f"  {line}")
    pairs = encode_pairs(data.train, data.source_vocab, data.target_vocab)
    stream = None if data.scan is None else ChunkedBatches(
        data.scan, config=config.data, source_vocab=data.source_vocab, target_vocab=data.target_vocab,
        batch_size=config.train.batch_size, seed=config.train.seed)
    sequence = BatchSequence(pairs, batch_size=config.train.batch_size, seed=config.train.seed, stream=stream,
                             objective=transducer.model.objective,
                             mask_id=data.target_vocab.id(MASK) if MASK in data.target_vocab else -1,
                             epoch=state["epoch"], upsampling=config.model.upsampling,
                             max_shapes=config.data.max_shapes,
                             rows=shard.rows(config.train.batch_size) if shard.count > 1 else None)
    if stream is None:
        shapes = len({b.source.shape + b.decoder_target.shape for b in sequence.batches})
        log(f"training: {len(pairs)} pairs in {len(sequence)} batches of {config.train.batch_size}, "
            f"{shapes} shapes, {padding_share(sequence.batches):.1f}% padding")
    else:
        log(f"training: {data.scan.train_pairs} pairs streamed in {len(sequence)} batches of "
            f"{config.train.batch_size}, {len(data.scan.chunks)} chunk(s) of {config.data.chunk_lines} lines")
    dev = dev_sample(data.dev, config.train.dev_words, config.train.seed)
    monitor = DevMonitor(transducer=transducer, dev=dev, out=written, state=state, started=started,
                         pairs_per_batch=(data.scan.train_pairs if stream else len(pairs)) / len(sequence),
                         log=log, shard=shard)
    if monitor.time_spent():
        log(f"the time limit of {config.train.time_limit_minutes:g} minutes is spent "
            f"({state['elapsed'] / 60:.1f} minutes trained): give a larger --time-limit to train further")
    elif state["epoch"] < config.train.epochs and not config.train.stops_early(state["bad_epochs"]):
        # shuffle=False: the sequence shuffles its own batch order from (seed, epoch); Keras would draw it from
        # the global NumPy state, which a resumed process does not share with the killed one
        transducer.model.fit(sequence, epochs=config.train.epochs, initial_epoch=state["epoch"], shuffle=False,
                             callbacks=[monitor], verbose=verbose)
    if shard.devices > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("biseq: training done")  # process 0 has written the last checkpoint
        teardown()
        if not shard.writes:
            shutil.rmtree(written, ignore_errors=True)
            return TrainResult(transducer=transducer, dev=None, test=None, test_entries=[], test_hypotheses=[],
                               seconds=time.time() - started)
    # reloaded off the mesh after a data-parallel run: the final scoring runs on this process alone
    best = Transducer.load(out) if state["best_epoch"] or shard.devices > 1 else transducer
    dev_scores = evaluate(best, data.dev)[0] if data.dev else None
    test_scores, test_hyps = evaluate(best, data.test) if data.test else (None, [])
    return TrainResult(transducer=best, dev=dev_scores, test=test_scores, test_entries=data.test,
                       test_hypotheses=test_hyps, seconds=time.time() - started)
