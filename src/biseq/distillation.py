"""Sequence-level knowledge distillation: train on a teacher model's outputs instead of the references.

``train.distill_from = TEACHER`` (``biseq train --distill-from TEACHER``): before training, the teacher
(a model directory written by ``biseq train``, trained on the same split; several directories,
comma-separated or ``--distill-from`` repeated, decode together as an ensemble) decodes every training
source with beam ``train.distill_beam``, and its best output becomes that source's only target
(Kim & Rush 2016). Non-autoregressive decoders depend on it: the teacher's outputs are more
predictable than the references (one pronunciation per word, consistent choices), so a decoder that
predicts every position at once has less to guess. The dev split keeps the real references.

The outputs are written to ``OUT/distilled.jsonl`` (atomically) and read back on ``--resume``: a resumed
run trains on the same targets without decoding again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from biseq.corpus import DataError, Entry
from biseq.ensemble import Ensemble, EnsembleError, decode_entries
from biseq.model_dir import atomic_write_text
from biseq.transducer import Transducer

DISTILLED_FILE = "distilled.jsonl"


def _line(entry: Entry) -> str:
    return json.dumps([entry.source, entry.targets[0]], ensure_ascii=False)


def distilled(train: Sequence[Entry], *, teacher_dir: str | Path, beam: int, out: Path, source_split: str,
              log: Callable[[str], None], batch_size: int = 256) -> list[Entry]:
    """``train`` with each entry's targets replaced by the teacher's best output (one reference each).

    Raises:
        DataError: the teacher cannot be loaded, splits its sources differently, or a cached
            ``distilled.tsv`` does not hold these sources.
    """
    cached = out / DISTILLED_FILE
    if cached.is_file():
        found = _read(cached)
        if [e.source for e in found] != [e.source for e in train]:
            raise DataError(f"{cached}: its sources are not this run's training sources (delete it to "
                            "distill again)")
        log(f"distillation: {len(found)} teacher outputs read from {cached}")
        return [e for e in found if e.targets[0]]
    teacher = _teacher([d for d in str(teacher_dir).split(",") if d], source_split=source_split)
    started = time.time()
    outputs = decode_entries(teacher, train, batch_size=batch_size, beam_size=beam)
    found = [Entry(e.source, (tuple(h),)) for e, h in zip(train, outputs, strict=True)]
    same = sum(1 for e, h in zip(train, outputs, strict=True) if tuple(h) in e.targets)
    entries = [e for e in found if e.targets[0]]
    log(f"distillation: {teacher_dir} decoded {len(train)} training sources (beam {beam}) in "
        f"{time.time() - started:.0f}s; {100 * same / max(len(train), 1):.1f}% equal a reference; "
        f"{len(train) - len(entries)} empty outputs dropped")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cached, "".join(_line(e) + "\n" for e in found))  # every source, so a resume can check them
    return entries


def _teacher(directories: Sequence[str], *, source_split: str) -> Transducer | Ensemble:
    """One teacher model, or several decoding together as an ensemble (their vocabularies must match)."""
    if not directories:
        raise DataError("train.distill_from names no teacher directory")
    teachers = []
    for directory in directories:
        try:
            teacher = Transducer.load(directory)
        except (OSError, ValueError) as err:
            raise DataError(f"train.distill_from: cannot load the teacher {directory}: {err}") from None
        if teacher.config.data.splits[0] != source_split:
            raise DataError(f"train.distill_from: the teacher {directory} splits its sources by "
                            f"{teacher.config.data.splits[0]!r}, this run by {source_split!r}")
        if teacher.model.objective in ("masked", "seed"):
            raise DataError(f"train.distill_from: the teacher {directory} has objective "
                            f"{teacher.model.objective!r}; a teacher decodes left to right (autoregressive or twin)")
        teachers.append(teacher)
    if len(teachers) == 1:
        return teachers[0]
    try:
        return Ensemble(teachers)
    except EnsembleError as err:
        raise DataError(f"train.distill_from: the teachers cannot decode together: {err}") from None


def _read(path: Path) -> list[Entry]:
    entries = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            source, target = json.loads(raw)
            entries.append(Entry(tuple(map(str, source)), (tuple(map(str, target)),)))
        except (ValueError, TypeError):
            raise DataError(f"{path}, line {number}: expected [source tokens, target tokens], found {raw!r} "
                            "(delete the file to distill again)") from None
    return entries
