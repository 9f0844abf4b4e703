"""Sequence-level distillation: a student trains on its teacher's beam outputs (``--distill-from``)."""

from __future__ import annotations

import json

import pytest

from biseq.config import Config
from biseq.corpus import DataError
from tests.conftest import reversal_lines


def settings(path, **train):
    return Config.from_dict({
        "data": {"path": str(path), "format": "tsv", "source_split": "char", "dev_fraction": 0.1,
                 "test_fraction": 0.0},
        "model": {"embedding_dim": 8, "encoder_units": 16, "decoder_units": 32},
        "train": {"epochs": 1, "batch_size": 32, "patience": 0, "dev_words": 20, **train}})


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    from biseq.training import train

    root = tmp_path_factory.mktemp("distil")
    data = root / "rev.tsv"
    data.write_text("\n".join(reversal_lines(200, seed=5)) + "\n", encoding="utf-8")
    train(settings(data), out=root / "teacher", verbose=0, log=lambda _: None)
    return data, root / "teacher"


def test_the_student_trains_on_the_teachers_outputs_and_resumes_without_it(teacher, tmp_path):
    import shutil

    from biseq.training import prepare, train
    from biseq.transducer import Transducer

    data, original = teacher
    teacher_dir = shutil.copytree(original, tmp_path / "teacher")
    config = settings(data, distill_from=str(teacher_dir), distill_beam=2)
    logged: list[str] = []
    train(config, out=tmp_path / "student", verbose=0, log=logged.append)
    lines = (tmp_path / "student" / "distilled.jsonl").read_text(encoding="utf-8").splitlines()
    pairs = [json.loads(line) for line in lines]
    sources = [e.source for e in prepare(config).train]
    assert [tuple(s) for s, _ in pairs] == sources  # every training source, in order
    # the targets are the teacher's beam-2 outputs, not the references (a 1-epoch teacher is often wrong)
    model = Transducer.load(teacher_dir)
    expected = model.predict_nbest_ids(model.encode_sources(sources), beam_size=2)
    assert [t for _, t in pairs] == [model.target_vocab.decode(n[0][0]) for n in expected]
    references = {e.source: e.targets for e in prepare(config).train}
    wrong = sum(tuple(t) not in references[tuple(s)] for s, t in pairs)
    assert wrong > 0
    assert any(line.startswith("distillation:") and "equal a reference" in line for line in logged)
    # resumed (one more epoch) with the teacher gone: the saved outputs are read back
    shutil.rmtree(teacher_dir)
    logged.clear()
    more = config.replace(train={"epochs": 2})
    train(more, out=tmp_path / "student", resume=True, verbose=0, log=logged.append)
    assert any("teacher outputs read from" in line for line in logged)


def test_an_ensemble_of_teachers_and_a_resume_with_empty_outputs(teacher, tmp_path):
    """Two teachers (comma-separated) decode together; a source whose output was empty does not break a resume."""
    import numpy as np

    from biseq.ensemble import Ensemble, decode_entries
    from biseq.training import prepare, train
    from biseq.transducer import Transducer

    data, original = teacher
    second = tmp_path / "second"
    other = Transducer.load(original)  # a second, different teacher: the first with its weights scaled
    for w in other.model.weights:
        w.assign(np.asarray(w.value) * 1.7)
    other.save(second)
    config = settings(data, distill_from=f"{original},{second}", distill_beam=2)
    logged: list[str] = []
    train(config, out=tmp_path / "student", verbose=0, log=logged.append)
    pairs = [json.loads(line) for line in
             (tmp_path / "student" / "distilled.jsonl").read_text(encoding="utf-8").splitlines()]
    entries = prepare(config).train
    both = Ensemble([Transducer.load(original), Transducer.load(second)])
    assert [t for _, t in pairs] == decode_entries(both, entries, beam_size=2)
    assert [t for _, t in pairs] != decode_entries(Transducer.load(original), entries, beam_size=2)  # not just one
    # a source the teachers left empty stays in the file (so a resume can check every source) but is not trained on
    pairs[0][1] = []
    (tmp_path / "student" / "distilled.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs),
                                                          encoding="utf-8")
    from biseq.distillation import distilled

    kept = distilled(entries, teacher_dir="unused", beam=2, out=tmp_path / "student", source_split="char",
                     log=logged.append)
    assert len(kept) == len(entries) - 1 and kept[0].source == entries[1].source


def test_distillation_errors_are_clear(teacher, tmp_path):
    from biseq.training import train

    data, _ = teacher
    with pytest.raises(DataError, match=r"cannot load the teacher .*nowhere"):
        train(settings(data, distill_from=str(tmp_path / "nowhere")), out=tmp_path / "a", verbose=0,
              log=lambda _: None)
    from biseq.config import ConfigError

    with pytest.raises(ConfigError, match="train.distill_beam must be at least 1"):
        settings(data, distill_beam=0)
