"""Typed, frozen configuration objects.

Every config is a frozen dataclass. ``from_dict`` rejects unknown keys with an
error that names the key and the keys that are accepted, so a typo in a config
file never passes silently. ``Config.load`` reads JSON or TOML files.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any, Literal, get_args, get_type_hints

from biseq.routing import default_bridge, plan_routes

RecurrentKind = Literal["lstm", "bilstm", "gru", "bigru"]
BridgeKind = Literal["concat", "sum", "dense", "forward", "zero", "direct"]
AttentionKind = Literal["none", "luong", "bahdanau"]
Objective = Literal["autoregressive", "twin", "masked", "ctc", "seed"]
Split = Literal["char", "space", "sentencepiece"]
LrSchedule = Literal["plateau", "cosine"]


class ConfigError(ValueError):
    """A configuration value or key is wrong; the message says which."""


def _check_literal(owner: str, name: str, value: Any, hint: Any) -> None:
    allowed = get_args(hint)
    if allowed and getattr(hint, "__origin__", None) is Literal and value not in allowed:
        raise ConfigError(
            f"{owner}.{name} must be one of {list(allowed)}. Received: {value!r}"
        )


class _Section:
    """Mixin: construction from a dict that rejects unknown keys, and validation."""

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, *, where: str = "") -> Any:
        data = dict(data or {})
        fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - fields)
        if unknown:
            at = f" in {where}" if where else ""
            raise ConfigError(
                f"Unknown key(s) {unknown} for [{cls.section}]{at}. "  # type: ignore[attr-defined]
                f"Accepted keys: {sorted(fields)}"
            )
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            _check_literal(self.section, f.name, value, hints[f.name])  # type: ignore[attr-defined]
            if hints[f.name] is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"{self.section}.{f.name} must be an integer. Received: {value!r}")  # type: ignore[attr-defined]
            if hints[f.name] is float and not isinstance(value, (int, float)):
                raise ConfigError(f"{self.section}.{f.name} must be a number. Received: {value!r}")  # type: ignore[attr-defined]
        self.validate()

    def validate(self) -> None:
        """Cross-field checks; subclasses override."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataConfig(_Section):
    """Where the data comes from and how lines become tokens.

    ``path`` empty means the embedded CMU Pronouncing Dictionary. ``format`` is
    ``cmudict`` (``word PH1 PH2``, alternates as ``word(2)``) or ``tsv``
    (``source<TAB>target``). Splits are by a seeded hash of the source, so one
    source string is never in two splits. ``streaming``: read the training file a
    chunk of ``chunk_lines`` lines at a time, for files larger than memory
    (see :mod:`biseq.streaming`). ``source_split`` / ``target_split``: ``char`` (characters),
    ``space`` (white-space separated words or symbols) or ``sentencepiece`` (subword pieces of the
    words, a SentencePiece ``pieces_model`` of at most ``source_pieces`` / ``target_pieces`` pieces
    trained on the training split; see :mod:`biseq.subwords`). ``transpose``: read each pair the
    other way round, the file's targets as the model's sources (phoneme-to-grapheme from a
    pronouncing dictionary); the splits and ``max_*_length`` still name the model's sides, and
    ``lowercase`` still folds the file's first column. ``max_shapes``: at most this many padded
    batch shapes (each one an XLA compilation, seconds on a GPU), 0 for the default buckets (see
    :func:`biseq.batching.bucket_shapes`).
    """

    section = "data"
    path: str = ""
    format: Literal["cmudict", "tsv"] = "cmudict"
    source_split: Split = "char"
    target_split: Split = "space"
    strip_stress: bool = True
    lowercase: bool = False
    dev_path: str = ""
    dev_fraction: float = 0.05
    test_fraction: float = 0.05
    split_seed: int = 13
    max_source_length: int = 64
    max_target_length: int = 64
    streaming: bool = False
    chunk_lines: int = 100_000
    source_pieces: int = 1000
    target_pieces: int = 1000
    pieces_model: Literal["unigram", "bpe"] = "unigram"
    transpose: bool = False
    max_shapes: int = 0

    @property
    def splits(self) -> tuple[str, str]:
        """How the model's sources and targets are split (``cmudict``: the word's characters, the phones)."""
        if self.format == "cmudict":
            return ("space", "char") if self.transpose else ("char", "space")
        return self.source_split, self.target_split

    def validate(self) -> None:
        for name in ("source_pieces", "target_pieces"):
            if getattr(self, name) < 8:
                raise ConfigError(f"data.{name} must be at least 8. Received: {getattr(self, name)}")
        if self.streaming and "sentencepiece" in (self.source_split, self.target_split):
            raise ConfigError("data.streaming does not train subword models: a 'sentencepiece' split needs the "
                              "training text in memory (use 'char' or 'space', or train without streaming)")
        if self.chunk_lines < 1:
            raise ConfigError(f"data.chunk_lines must be at least 1. Received: {self.chunk_lines}")
        if self.max_shapes < 0:
            raise ConfigError(f"data.max_shapes must be 0 (no limit) or more. Received: {self.max_shapes}")
        if not 0 <= self.dev_fraction < 1 or not 0 <= self.test_fraction < 1:
            raise ConfigError(
                "data.dev_fraction and data.test_fraction must be in [0, 1). "
                f"Received: {self.dev_fraction}, {self.test_fraction}"
            )
        if self.dev_fraction + self.test_fraction >= 1:
            raise ConfigError("data.dev_fraction + data.test_fraction must be below 1.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig(_Section):
    """The network: encoder, bridge (state routing), decoder, attention.

    ``encoder`` and ``decoder`` name the cell and the direction: ``lstm``,
    ``bilstm``, ``gru``, ``bigru``. ``objective`` says how a bidirectional
    decoder is trained and decoded: ``twin`` (default: left-to-right and
    right-to-left decoders rescoring each other), ``masked`` (non-autoregressive
    mask-predict), ``ctc`` (non-autoregressive: the seed's ``Bidirectional`` decoder reads the
    encoder outputs, each split into ``upsampling`` frames, and is trained with CTC; see
    :mod:`biseq.ctc`) or ``seed`` (the question's teacher-forced ``Bidirectional``
    decoder, which leaks the future and cannot generate). ``bridge`` routes the encoder's final
    states into the decoder's initial states (see ``biseq.bridge``); ``None``
    chooses ``concat`` for a unidirectional decoder after a bidirectional
    encoder and ``direct`` otherwise.
    """

    section = "model"
    embedding_dim: int = 64
    encoder: RecurrentKind = "bilstm"
    encoder_units: int = 128
    encoder_layers: int = 1
    decoder: RecurrentKind = "lstm"
    decoder_units: int = 256
    decoder_layers: int = 1
    bridge: BridgeKind | None = None
    attention: AttentionKind = "luong"
    input_feeding: bool = True
    dropout: float = 0.1
    recurrent_dropout: float = 0.0
    objective: Objective | None = None
    upsampling: int = 2

    @property
    def resolved_objective(self) -> str:
        """``autoregressive`` for a unidirectional decoder; ``twin`` by default for a bidirectional one."""
        if self.objective is not None:
            return self.objective
        return "twin" if self.decoder.startswith("bi") else "autoregressive"

    @property
    def resolved_bridge(self) -> str:
        return self.bridge or default_bridge(encoder_kind=self.encoder, decoder_kind=self.decoder)

    def validate(self) -> None:
        for name in ("embedding_dim", "encoder_units", "encoder_layers", "decoder_units", "decoder_layers",
                     "upsampling"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be at least 1. Received: {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout must be in [0, 1). Received: {self.dropout}")
        if not 0 <= self.recurrent_dropout < 1:
            raise ConfigError(f"model.recurrent_dropout must be in [0, 1). Received: {self.recurrent_dropout}")
        if self.bridge is not None and self.bridge not in get_args(BridgeKind):
            raise ConfigError(f"model.bridge must be one of {list(get_args(BridgeKind))}. Received: {self.bridge!r}")
        plan_routes(bridge=self.resolved_bridge, encoder_kind=self.encoder, encoder_units=self.encoder_units,
                    encoder_layers=self.encoder_layers, decoder_kind=self.decoder, decoder_units=self.decoder_units,
                    decoder_layers=self.decoder_layers)  # raises BridgeError naming the shapes
        objectives = ("twin", "masked", "ctc", "seed") if self.decoder.startswith("bi") else ("autoregressive",)
        if self.resolved_objective not in objectives:
            raise ConfigError(
                f"model.objective={self.objective!r} does not fit decoder={self.decoder!r}; "
                f"it takes one of {list(objectives)}."
            )
        if self.resolved_objective == "seed" and self.attention != "none":
            raise ConfigError(
                f"model.attention={self.attention!r} is not available with objective='seed' (the question's "
                "model, as it was asked: no attention); use attention='none', or objective='masked' or 'twin'."
            )


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig(_Section):
    """Optimisation, early stopping and the time budget.

    ``keep_checkpoints``: keep the weights of the last N epochs under ``OUT/epochs/`` (for ``biseq average``).
    ``lr_schedule``: ``"plateau"`` multiplies the rate by ``lr_decay`` when dev WER stops improving;
    ``"cosine"`` anneals it from ``learning_rate`` to ``final_lr_fraction`` of it over the run, measured
    in time when ``time_limit_minutes`` is set (so the rate is low when the budget ends; compilation is
    left out, see ``biseq.schedule``), else in epochs.
    ``patience``: stop after this many epochs without a better dev WER; 0 never stops early (with a
    time-limited ``cosine`` schedule the time limit ends the run, at the low end of the rate).
    ``time_limit_minutes`` counts the whole run, across resumes: an interrupted run resumes with the time
    it had left; give a larger limit to train a finished run further.
    ``distill_from``: a teacher model directory; train on its beam-``distill_beam`` outputs for the
    training sources instead of the references (sequence-level distillation, :mod:`biseq.distillation`;
    the teacher's decoding is not counted in the time limit).
    """

    section = "train"
    batch_size: int = 128
    epochs: int = 30
    learning_rate: float = 0.002
    clip_norm: float = 5.0
    label_smoothing: float = 0.0
    lr_schedule: LrSchedule = "plateau"
    lr_decay: float = 0.5
    lr_patience: int = 1
    final_lr_fraction: float = 0.01
    patience: int = 3
    dev_words: int = 2000
    time_limit_minutes: float = 0.0
    seed: int = 1234
    max_decode_length: int = 0
    keep_checkpoints: int = 0
    distill_from: str = ""
    distill_beam: int = 5

    def stops_early(self, bad_epochs: int) -> bool:
        """True when ``bad_epochs`` epochs without a better dev WER end the run (never at ``patience`` 0)."""
        return 0 < self.patience <= bad_epochs

    def validate(self) -> None:
        if self.patience < 0:
            raise ConfigError(f"train.patience must be 0 (no early stop) or more. Received: {self.patience}")
        if self.distill_beam < 1:
            raise ConfigError(f"train.distill_beam must be at least 1. Received: {self.distill_beam}")
        if self.keep_checkpoints < 0:
            raise ConfigError(f"train.keep_checkpoints must be 0 or more. Received: {self.keep_checkpoints}")
        if self.batch_size < 1 or self.epochs < 1:
            raise ConfigError("train.batch_size and train.epochs must be at least 1.")
        if self.learning_rate <= 0:
            raise ConfigError(f"train.learning_rate must be positive. Received: {self.learning_rate}")
        if not 0 <= self.final_lr_fraction <= 1:
            raise ConfigError(f"train.final_lr_fraction must be in [0, 1]. Received: {self.final_lr_fraction}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"train.label_smoothing must be in [0, 1). Received: {self.label_smoothing}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """The whole run: ``data``, ``model`` and ``train`` sections."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "") -> Config:
        unknown = sorted(set(data) - {"data", "model", "train"})
        if unknown:
            at = f" in {where}" if where else ""
            raise ConfigError(f"Unknown section(s) {unknown}{at}. Accepted: ['data', 'model', 'train']")
        return cls(
            data=DataConfig.from_dict(data.get("data"), where=where),
            model=ModelConfig.from_dict(data.get("model"), where=where),
            train=TrainConfig.from_dict(data.get("train"), where=where),
        )

    @classmethod
    def load(cls, path: str | Path) -> Config:
        """Read a ``.json`` or ``.toml`` file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"Cannot read config file {path}: {err.strerror}") from None
        except UnicodeDecodeError as err:
            raise ConfigError(f"{path}: not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start})") \
                from None
        try:
            raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {err}") from None
        return cls.from_dict(raw, where=str(path))

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data.to_dict(), "model": self.model.to_dict(), "train": self.train.to_dict()}

    def replace(self, *, data: dict[str, Any] | None = None, model: dict[str, Any] | None = None,
                train: dict[str, Any] | None = None) -> Config:
        """A copy with some fields of each section changed (unknown keys rejected)."""
        merged = self.to_dict()
        for name, changes in (("data", data), ("model", model), ("train", train)):
            merged[name].update(changes or {})
        return Config.from_dict(merged)
