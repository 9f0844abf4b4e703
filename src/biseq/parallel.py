"""Data-parallel training over JAX devices and processes, on the engine Keras ships for it.

One process, ``devices = N``: a ``keras.distribution.DataParallel`` mesh over N local devices. Every
global batch is split by rows across them; XLA averages the gradients, so the loss after K steps
equals one device's within float tolerance (same seed, same global batch).

Several processes (``num_processes = P``): ``jax.distributed`` joins them (gloo collectives on CPU)
into one mesh over N devices of each process. Each process feeds its own rows of every global batch
(:meth:`Shard.rows`); decisions taken from a clock (the time limit, the cosine rate) are process 0's
(:func:`agree`), and process 0 alone writes checkpoints and logs.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

_ADDRESS = re.compile(r"^[^\s:]+:\d{1,5}$")


class ParallelError(ValueError):
    """Devices, processes or batch size that do not fit together."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Parallelism:
    """How a run is spread: ``devices`` per process (``None``: every local accelerator, one CPU),
    ``num_processes`` joined at ``coordinator`` (``HOST:PORT`` of process 0), this one ``process_id``."""

    devices: int | None = None
    num_processes: int = 1
    process_id: int = 0
    coordinator: str = ""

    def __post_init__(self) -> None:
        if self.devices is not None and self.devices < 1:
            raise ParallelError(f"--devices must be at least 1. Received: {self.devices}")
        if self.num_processes < 1:
            raise ParallelError(f"--num-processes must be at least 1. Received: {self.num_processes}")
        if not 0 <= self.process_id < self.num_processes:
            raise ParallelError(f"--process-id must be in 0..{self.num_processes - 1} for --num-processes "
                                f"{self.num_processes}. Received: {self.process_id}")
        if self.num_processes > 1 and not _ADDRESS.match(self.coordinator):
            raise ParallelError("--num-processes above 1 needs --coordinator HOST:PORT, the address process 0 "
                                f"listens on (the same for every process). Received: {self.coordinator!r}")


@dataclasses.dataclass(frozen=True)
class Shard:
    """This process's part of a run: process ``index`` of ``count``, over ``devices`` devices in all."""

    index: int = 0
    count: int = 1
    devices: int = 1

    @property
    def writes(self) -> bool:
        """Whether this process writes checkpoints, logs and the final model (process 0)."""
        return self.index == 0

    def rows(self, batch_size: int) -> slice:
        """This process's rows of a global batch of ``batch_size`` rows."""
        size = batch_size // self.count
        return slice(self.index * size, (self.index + 1) * size)


ONE_PROCESS = Shard()


def setup(parallelism: Parallelism, *, batch_size: int) -> Shard:
    """Join the processes, choose the devices and set Keras's distribution; call before any model is built.

    Raises:
        ParallelError: more devices asked than this process has, a batch size the devices do not
            divide, or processes that could not join.
    """
    import jax

    p = parallelism
    if p.num_processes > 1:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU collectives across processes
        try:
            jax.distributed.initialize(coordinator_address=p.coordinator, num_processes=p.num_processes,
                                       process_id=p.process_id)
        except (RuntimeError, ValueError) as error:
            raise ParallelError(f"process {p.process_id} of {p.num_processes} could not join the run at "
                                f"{p.coordinator}: {error}") from None
    local = jax.local_devices()
    devices = p.devices or (1 if local[0].platform == "cpu" else len(local))
    _check_local(devices)
    total = devices * p.num_processes
    if batch_size % total:
        raise ParallelError(f"train.batch_size {batch_size} does not split over {total} devices "
                            f"({devices} per process x {p.num_processes} processes): use a multiple of {total}")
    if total > 1:
        import keras

        chosen = [d for i in range(p.num_processes)
                  for d in sorted((d for d in jax.devices() if d.process_index == i), key=lambda d: d.id)[:devices]]
        # the data is already split by process (Shard.rows): Keras only spreads each process's rows over its devices
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=chosen, auto_shard_dataset=False))
    return Shard(index=p.process_id, count=p.num_processes, devices=total)


def teardown() -> None:
    """Leave the distribution: what runs next (the final scoring) uses this process's default device."""
    import keras

    keras.distribution.set_distribution(None)


def agree(value, shard: Shard):
    """Process 0's ``value`` (a bool or float) in every process; ``value`` itself in a one-process run.

    Decisions taken from a clock differ between processes by a few milliseconds; a process that
    stopped a batch early, or set another learning rate, would leave the others waiting or diverging.
    """
    if shard.count == 1:
        return value
    from jax.experimental import multihost_utils

    agreed = multihost_utils.broadcast_one_to_all(np.asarray(value))
    return type(value)(np.asarray(agreed).item())


def setup_decoding(devices: int) -> None:
    """Decode on ``devices`` local devices: each batch's rows are split over them (:func:`spread_rows`)."""
    import jax

    _check_local(devices)
    if devices > 1:
        import keras

        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.local_devices()[:devices]))


def _check_local(devices: int) -> None:
    """Raise :class:`ParallelError` when this process has fewer than ``devices`` devices, saying how to get more."""
    import jax

    local = jax.local_devices()
    if devices > len(local):
        hint = (" (on CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N makes N devices)"
                if local[0].platform == "cpu" else "")
        raise ParallelError(f"--devices {devices}: this process has {len(local)} {local[0].platform} device(s){hint}")


def decoding_devices() -> int:
    """How many devices a decoding batch is split over: those of a data-parallel distribution over this
    process's devices; 1 without one, or when it spans processes (training's dev scoring then runs the
    same decoding in every process, replicated)."""
    import jax
    import keras

    distribution = keras.distribution.distribution()
    if distribution is None:
        return 1
    devices = distribution.device_mesh.devices.flatten()
    if any(d.process_index != jax.process_index() for d in devices):
        return 1
    return int(devices.size)


def spread_rows(batch: np.ndarray):
    """``batch`` ``[B, ...]`` placed with its rows split over the decoding devices, when there are several.

    ``B`` must be a multiple of :func:`decoding_devices` (decoding pads its batches to one).
    """
    devices = decoding_devices()
    if devices == 1:
        return batch
    import keras

    distribution = keras.distribution.distribution()
    return keras.distribution.distribute_tensor(batch, distribution.get_data_layout(batch.shape))
