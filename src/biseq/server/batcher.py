"""Dynamic micro-batching: concurrent requests decoded together, off the event loop.

Requests wait in a bounded queue. One worker task takes the first, gathers more until
``max_batch_words`` words or ``max_wait_ms`` have passed, and decodes them all in one call on a
single worker thread (the network is compiled per batch shape, so one larger call costs little
more than one small one). Each request gets its own words back, with its own ``nbest``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from biseq.g2p import Pronunciation, WordResult

Decode = Callable[[list[str], int, bool], list[WordResult]]  # (words, nbest, stress) -> results


class QueueFullError(RuntimeError):
    """The queue holds ``max_queue_words`` words already: try again later (503)."""


@dataclasses.dataclass
class _Job:
    words: list[str]
    nbest: int
    stress: bool
    future: asyncio.Future
    queued: float


@dataclasses.dataclass
class Stats:
    """What the batcher did so far (``GET /health`` shows it)."""

    requests: int = 0
    words: int = 0
    batches: int = 0
    largest_batch_words: int = 0
    decode_seconds: float = 0.0

    def to_dict(self) -> dict:
        mean = self.words / self.batches if self.batches else 0.0
        return {**dataclasses.asdict(self), "mean_batch_words": round(mean, 2),
                "decode_seconds": round(self.decode_seconds, 3)}


def truncated(result: WordResult, nbest: int) -> WordResult:
    """``result``'s first ``nbest`` candidates, probabilities normalised over them again."""
    kept = result.pronunciations[:nbest]
    total = sum(p.prob for p in kept) or 1.0
    return dataclasses.replace(result, pronunciations=tuple(
        Pronunciation(p.phones, round(p.prob / total, 6), p.source) for p in kept))


class MicroBatcher:
    """Joins concurrent :meth:`submit` calls into batched ``decode`` calls on one worker thread.

    Args:
        decode: ``(words, nbest, stress) -> results`` (blocking; run off the event loop).
        max_batch_words, max_wait_ms, max_queue_words: see :class:`~biseq.server.settings.ServeConfig`.
        batching: ``False``: every request is decoded alone.
    """

    def __init__(self, decode: Decode, *, max_batch_words: int, max_wait_ms: float, max_queue_words: int,
                 batching: bool = True) -> None:
        self._decode = decode
        self.max_batch_words, self.max_wait = max_batch_words, max_wait_ms / 1000.0
        self.max_queue_words, self.batching = max_queue_words, batching
        self.stats = Stats()
        self._queue: asyncio.Queue[_Job | None] | None = None
        self._waiting_words = 0
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="biseq-decode")

    @property
    def waiting_words(self) -> int:
        return self._waiting_words

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._run())

    async def run_blocking(self, fn, *args):
        """``fn(*args)`` on the decoding thread (so nothing decodes at the same time), awaited."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def submit(self, words: Sequence[str], *, nbest: int, stress: bool = True) -> list[WordResult]:
        """Queue ``words`` and wait for their results.

        Raises:
            QueueFullError: the queue is full.
            RuntimeError: the batcher is stopped.
        """
        if self._queue is None:
            raise RuntimeError("the batcher is not running")
        if self._waiting_words + len(words) > self.max_queue_words:
            raise QueueFullError(f"the server is busy: {self._waiting_words} words are waiting "
                                 f"(at most {self.max_queue_words}); try again shortly")
        job = _Job(list(words), nbest, stress, asyncio.get_running_loop().create_future(), time.perf_counter())
        self._waiting_words += len(job.words)
        self.stats.requests += 1
        await self._queue.put(job)
        return await job.future

    async def stop(self) -> None:
        """Finish every queued request, then stop the worker and its thread."""
        if self._queue is not None and self._worker is not None:
            await self._queue.put(None)
            await self._worker
        self._executor.shutdown(wait=True)
        self._queue = None

    async def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """``first`` and the jobs that join it; ``True`` when the stop sentinel was met."""
        jobs, words = [first], len(first.words)
        if not self.batching:
            return jobs, False
        deadline = time.perf_counter() + self.max_wait
        while words < self.max_batch_words:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), left)
                except TimeoutError:
                    break
            if job is None:
                return jobs, True
            jobs.append(job)
            words += len(job.words)
        return jobs, False

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            jobs, stopping = await self._gather(first)
            self._waiting_words -= sum(len(j.words) for j in jobs)
            try:
                results = await self.run_blocking(self._decode_jobs, jobs)
            except Exception as error:  # noqa: BLE001 - handed to the requests, never kills the worker
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(error)
                continue
            for job, result in zip(jobs, results, strict=True):
                if not job.future.done():
                    job.future.set_result(result)
        while not self._queue.empty():  # nothing is left waiting forever
            job = self._queue.get_nowait()
            if job is not None and not job.future.done():
                job.future.set_exception(RuntimeError("the server is shutting down"))

    def _decode_jobs(self, jobs: list[_Job]) -> list[list[WordResult]]:
        """One decoding call per ``stress`` setting for all ``jobs``; each job's words back, cut to its nbest."""
        started = time.perf_counter()
        out: list[list[WordResult] | None] = [None] * len(jobs)
        for stress in (True, False):
            group = [i for i, j in enumerate(jobs) if j.stress is stress]
            if not group:
                continue
            words = list(dict.fromkeys(w for i in group for w in jobs[i].words))
            found = dict(zip(words, self._decode(words, max(jobs[i].nbest for i in group), stress), strict=True))
            for i in group:
                out[i] = [truncated(found[w], jobs[i].nbest) for w in jobs[i].words]
        seconds = time.perf_counter() - started
        count = sum(len(j.words) for j in jobs)
        self.stats.batches += 1
        self.stats.words += count
        self.stats.largest_batch_words = max(self.stats.largest_batch_words, count)
        self.stats.decode_seconds += seconds
        return out  # type: ignore[return-value]
