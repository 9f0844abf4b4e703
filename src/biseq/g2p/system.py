"""The system directory: everything one prediction needs, in one folder.

::

    DIR/system.json        what is here and how to combine it (SystemConfig; unknown keys refused)
    DIR/model/             a biseq model directory (model.keras or weights.npz, vocab.json, config.json);
    DIR/model-2/ ...       more of them: decoded as an ensemble
    DIR/joint.fst[.xz]     the joint-sequence model, combined at ``joint_weight``
    DIR/dictionary.dict.gz the pronouncing dictionary consulted before the model

A plain model directory (what ``biseq train`` writes) opens as a system of that one model, with
no dictionary and no joint-sequence model. Opening reads only ``system.json``: the dictionary
and the networks are loaded when first needed, so dictionary words never import Keras.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from biseq.atomic import share
from biseq.config import ConfigError, _Section

SYSTEM_FILE = "system.json"
SYSTEM_FORMAT = "biseq-system"
_MODEL_FILES = ("config.json", "vocab.json")


class SystemDirError(ValueError):
    """A system directory is missing, incomplete or inconsistent; the message names the file."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class SystemConfig(_Section):
    """What ``system.json`` holds.

    Attributes:
        models: model directories relative to the system directory; several decode as an ensemble.
        joint: the joint-sequence model file (``""``: none); combined at ``joint_weight`` over
            ``joint_nbest`` of its candidates and the neural beam's ``beam`` best.
        skip_joint_above: one answer a word: a word whose network best has a geometric-mean token
            probability of at least this keeps it without the joint model's search (0: none skipped;
            :func:`biseq.joint_sequence.joint_nbest`).
        dictionary: the pronouncing dictionary file (``""``: none).
        expand_numbers: spell out numbers in text (``G2P.__call__``).
        card: the model card (data, licence, scores), free-form.
    """

    section = "system"
    format: str = SYSTEM_FORMAT
    version: int = 1
    name: str = ""
    models: tuple[str, ...] = ("model",)
    joint: str = ""
    joint_weight: float = 0.0
    joint_nbest: int = 10
    skip_joint_above: float = 0.0
    beam: int = 5
    length_penalty: float = 1.0
    dictionary: str = ""
    expand_numbers: bool = True
    card: dict[str, Any] = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        if self.format != SYSTEM_FORMAT:
            raise ConfigError(f"system.format must be {SYSTEM_FORMAT!r}. Received: {self.format!r}")
        if self.version != 1:
            raise ConfigError(f"system.version {self.version} is newer than this biseq reads (1): upgrade biseq")
        if not self.models or not all(isinstance(m, str) and m for m in self.models):
            raise ConfigError(f"system.models must list at least one model directory. Received: {self.models!r}")
        if not 0.0 <= self.joint_weight <= 1.0:
            raise ConfigError(f"system.joint_weight must be between 0 and 1. Received: {self.joint_weight}")
        if not 0.0 <= self.skip_joint_above <= 1.0:
            raise ConfigError(f"system.skip_joint_above must be between 0 and 1. Received: {self.skip_joint_above}")
        if self.beam < 1 or self.joint_nbest < 1:
            raise ConfigError(f"system.beam and system.joint_nbest must be at least 1. Received: {self.beam}, "
                              f"{self.joint_nbest}")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, *, where: str = "") -> SystemConfig:
        data = dict(data or {})
        if isinstance(data.get("models"), list):
            data["models"] = tuple(data["models"])
        return super().from_dict(data, where=where)


@dataclasses.dataclass(frozen=True)
class System:
    """An opened system directory (nothing heavy loaded yet)."""

    root: Path
    config: SystemConfig

    @classmethod
    def open(cls, path: str | Path) -> System:
        """Open a system directory, or a plain model directory as a one-model system.

        Raises:
            SystemDirError: the directory or a file it names is missing or unreadable.
        """
        root = Path(path)
        if not root.is_dir():
            raise SystemDirError(f"{root}: no such directory (expected a system directory with {SYSTEM_FILE}, "
                                 "or a model directory written by 'biseq train')")
        file = root / SYSTEM_FILE
        if not file.is_file():
            if all((root / n).is_file() for n in _MODEL_FILES):
                return cls(root, SystemConfig(name=root.name, models=(".",), beam=1))
            raise SystemDirError(f"{root}: neither a system directory (no {SYSTEM_FILE}) nor a model directory "
                                 f"(no {' / '.join(_MODEL_FILES)})")
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise SystemDirError(f"{file}: not a readable system file ({err})") from None
        if not isinstance(data, dict):
            raise SystemDirError(f"{file}: expected a JSON object, found {type(data).__name__}")
        try:
            config = SystemConfig.from_dict(data, where=str(file))
        except (ConfigError, TypeError) as err:
            raise SystemDirError(f"{file}: {err}") from None
        system = cls(root, config)
        system.check()
        return system

    def check(self) -> None:
        """Every file ``system.json`` names is there (models, joint-sequence model, dictionary)."""
        for model in self.model_paths:
            missing = [n for n in _MODEL_FILES if not (model / n).is_file()]
            if not ((model / "model.keras").is_file() or (model / "weights.npz").is_file()):
                missing.append("model.keras or weights.npz")
            if missing:
                raise SystemDirError(f"{model}: the model directory named in {self.root / SYSTEM_FILE} is missing "
                                     f"{', '.join(missing)} (truncated system directory?)")
        for what, path in (("joint-sequence model", self.joint_path), ("dictionary", self.dictionary_path)):
            if path is not None and not path.is_file():
                raise SystemDirError(f"{path}: the {what} named in {self.root / SYSTEM_FILE} is missing")

    @property
    def name(self) -> str:
        return self.config.name or self.root.name

    @property
    def model_paths(self) -> list[Path]:
        return [self.root / m for m in self.config.models]

    @property
    def joint_path(self) -> Path | None:
        return self.root / self.config.joint if self.config.joint else None

    @property
    def dictionary_path(self) -> Path | None:
        return self.root / self.config.dictionary if self.config.dictionary else None


def _share(root: Path) -> None:
    """Give the tree ordinary permissions (temporary files and directories are private: 0600/0700)."""
    for path in [root, *root.rglob("*")]:
        share(path)


def bundled_path() -> Path:
    """The English system shipped inside the package (``biseq/g2p/en``)."""
    return Path(str(importlib.resources.files("biseq.g2p") / "en"))


def write_system(out: str | Path, *, models: list[str | Path], joint: str | Path | None = None,
                 joint_weight: float = 0.0, joint_nbest: int = 10, skip_joint_above: float = 0.0, beam: int = 5,
                 dictionary: str | Path | None = None, name: str = "", card: dict[str, Any] | None = None,
                 compact: bool = False) -> System:
    """Assemble a system directory at ``out`` (a new directory; written in a temporary one, then renamed).

    Args:
        models: trained model directories (several: an ensemble).
        joint: a joint-sequence model file (``biseq joint-train``); xz-compressed when ``compact``.
        dictionary: a pronouncing dictionary file (CMU format), stored gzipped.
        compact: float16 weights and an xz joint-sequence model (about half the size).

    Raises:
        SystemDirError: ``out`` exists already, or an input is missing.
    """
    import gzip
    import lzma

    from biseq.transducer import Transducer

    out = Path(out)
    if out.exists():
        raise SystemDirError(f"{out}: already exists; give a new directory (nothing was changed)")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        names = []
        for i, model in enumerate(models):
            names.append("model" if i == 0 else f"model-{i + 1}")
            Transducer.load(model).save(work / names[-1], weights_dtype="float16" if compact else "")
        joint_name = ""
        if joint is not None:
            joint = Path(joint)
            if not joint.is_file():
                raise SystemDirError(f"{joint}: joint-sequence model not found")
            joint_name = "joint.fst.xz" if compact else "joint.fst"
            packed = joint.suffix == ".xz"  # e.g. another system's joint.fst.xz
            if compact == packed:
                shutil.copyfile(joint, work / joint_name)
            else:
                reader = lzma.open(joint, "rb") if packed else open(joint, "rb")  # noqa: SIM115
                target = work / joint_name
                writer = lzma.open(target, "wb", preset=6) if compact else open(target, "wb")  # noqa: SIM115
                with reader as src, writer as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        dict_name = ""
        if dictionary is not None:
            dictionary = Path(dictionary)
            if not dictionary.is_file():
                raise SystemDirError(f"{dictionary}: pronouncing dictionary not found")
            dict_name = "dictionary.dict.gz"
            opener = gzip.open if dictionary.suffix == ".gz" else open
            with opener(dictionary, "rb") as src, gzip.open(work / dict_name, "wb", compresslevel=9) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        config = SystemConfig(name=name or out.name, models=tuple(names), joint=joint_name,
                              joint_weight=joint_weight if joint_name else 0.0, joint_nbest=joint_nbest,
                              skip_joint_above=skip_joint_above if joint_name else 0.0, beam=beam,
                              dictionary=dict_name, card=dict(card or {}))
        data = config.to_dict()
        data["models"] = list(data["models"])
        (work / SYSTEM_FILE).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        _share(work)
        os.replace(work, out)
    finally:
        if work.exists():
            shutil.rmtree(work)
    return System.open(out)
