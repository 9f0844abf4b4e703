"""Subword pieces: a SentencePiece model trained on the training split, kept inside the vocabulary.

With ``data.source_split`` or ``data.target_split`` set to ``"sentencepiece"``, the corpus keeps
that side as words (split on white space) and ``biseq train`` trains a SentencePiece model
(unigram or BPE, ``data.source_pieces`` / ``data.target_pieces`` pieces at most) on the training
split's text. The :class:`~biseq.vocabulary.Vocabulary` holds the model: it segments words into
pieces before giving ids, and joins pieces back into words when decoding, so everything above
it (batches, search, metrics, the CLI) still sees words. The model's bytes are saved in
``vocab.json``, so a model directory needs no other file.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Sequence
from typing import Any

PIECE_SPLIT = "sentencepiece"


class SubwordError(ValueError):
    """A SentencePiece model could not be trained or read; the message says why."""


def _processor(proto: bytes) -> Any:
    import sentencepiece  # imported on use: only subword models need it

    processor = sentencepiece.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(proto)
    except (RuntimeError, OSError) as err:
        raise SubwordError(f"not a SentencePiece model ({err})") from None
    return processor


class Subwords:
    """A trained SentencePiece model: words to pieces and back.

    Pieces mark a word's start with ``▁`` (U+2581), SentencePiece's convention, so
    ``join(segment(words)) == words`` for text the model's normaliser leaves unchanged.
    """

    def __init__(self, proto: bytes) -> None:
        self.proto = bytes(proto)
        self._sp = _processor(self.proto)

    @classmethod
    def train(cls, texts: Iterable[str], *, size: int, kind: str = "unigram") -> Subwords:
        """Train on ``texts`` (one sentence each) a model of at most ``size`` pieces.

        One thread and every sentence (no sampling), so the same texts give the same model.
        ``size`` is an upper bound: a small corpus gets fewer pieces rather than an error.
        """
        import sentencepiece

        texts = [t for t in texts if t.strip()]
        if not texts:
            raise SubwordError("no training text to learn subword pieces from")
        model = io.BytesIO()
        try:
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=iter(texts), model_writer=model, vocab_size=size, model_type=kind,
                character_coverage=1.0, hard_vocab_limit=False, unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,
                normalization_rule_name="identity",  # text kept as written; no 240 kB NFKC table in the model
                num_threads=1, input_sentence_size=0, shuffle_input_sentence=False, minloglevel=2)
        except RuntimeError as err:
            raise SubwordError(f"SentencePiece training failed: {err}") from None
        return cls(model.getvalue())

    def __len__(self) -> int:
        return self._sp.GetPieceSize()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Subwords) and self.proto == other.proto

    def __hash__(self) -> int:
        return hash(self.proto)

    def segment(self, words: Sequence[str]) -> list[str]:
        """Words -> pieces, e.g. ``["unhappy", "cats"]`` -> ``["▁un", "happy", "▁cat", "s"]``."""
        return self._sp.EncodeAsPieces(" ".join(words)) if words else []

    def join(self, pieces: Sequence[str]) -> list[str]:
        """Pieces -> words (the inverse of :meth:`segment`)."""
        return self._sp.DecodePieces(list(pieces)).split()

    def to_text(self) -> str:
        """The model as base64 text (how ``vocab.json`` stores it)."""
        return base64.b64encode(self.proto).decode("ascii")

    @classmethod
    def from_text(cls, text: str) -> Subwords:
        try:
            proto = base64.b64decode(text.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError) as err:
            raise SubwordError(f"the subword model is not valid base64 ({err})") from None
        return cls(proto)
