"""Vocabulary: symbols to ids with reserved ids for padding, start, end and unknown.

A vocabulary may hold a subword model (:class:`biseq.subwords.Subwords`): it then takes words,
segments them into pieces before giving ids, and joins decoded pieces back into words.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Sequence

from biseq.subwords import Subwords

PAD, BOS, EOS, UNK, MASK = "<pad>", "<s>", "</s>", "<unk>", "<mask>"
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
SPECIALS = (PAD, BOS, EOS, UNK)


class Vocabulary:
    """An ordered symbol list; ids 0..3 are ``<pad>``, ``<s>``, ``</s>``, ``<unk>``.

    With ``subwords``, the symbols are subword pieces: :meth:`encode` takes words and
    :meth:`decode` gives words.
    """

    def __init__(self, symbols: Sequence[str], *, subwords: Subwords | None = None) -> None:
        if tuple(symbols[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"A vocabulary must start with {list(SPECIALS)}. Received: {list(symbols[:4])}")
        if len(set(symbols)) != len(symbols):
            raise ValueError("A vocabulary may not hold a symbol twice.")
        self.symbols = tuple(symbols)
        self.subwords = subwords
        self._ids = {s: i for i, s in enumerate(self.symbols)}

    @classmethod
    def build(cls, sequences: Iterable[Sequence[str]], *, extra: Sequence[str] = (),
              subwords: Subwords | None = None) -> Vocabulary:
        """Build from token sequences: the specials, ``extra`` (e.g. ``<mask>``), then most frequent first.

        With ``subwords`` the sequences are words and the symbols are the pieces they segment into.
        """
        if subwords is not None:
            sequences = (subwords.segment(seq) for seq in sequences)
        return cls.from_counts(Counter(token for seq in sequences for token in seq), extra=extra, subwords=subwords)

    @classmethod
    def from_counts(cls, counts: Counter, *, extra: Sequence[str] = (), subwords: Subwords | None = None) -> Vocabulary:
        """As :meth:`build`, from symbol counts already made (a streamed file's one pass)."""
        counts = Counter(counts)
        for special in (*SPECIALS, *extra):
            counts.pop(special, None)
        ordered = sorted(counts, key=lambda s: (-counts[s], s))
        return cls(SPECIALS + tuple(extra) + tuple(ordered), subwords=subwords)

    def segment(self, tokens: Sequence[str]) -> list[str]:
        """The symbols ``tokens`` become: subword pieces of words, or the tokens themselves."""
        return self.subwords.segment(tokens) if self.subwords is not None else list(tokens)

    def id(self, symbol: str) -> int:
        """The id of ``symbol``; KeyError when absent."""
        return self._ids[symbol]

    def __len__(self) -> int:
        return len(self.symbols)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.symbols == other.symbols and self.subwords == other.subwords

    def __contains__(self, symbol: str) -> bool:
        return symbol in self._ids

    def unknown(self, tokens: Iterable[str]) -> list[str]:
        """The symbols of ``tokens`` that this vocabulary does not hold, in first-seen order."""
        return self._missing(self.segment(list(tokens)))

    def _missing(self, symbols: Iterable[str]) -> list[str]:
        return list(dict.fromkeys(s for s in symbols if s not in self._ids))

    def encode(self, tokens: Sequence[str], *, warn: bool = True) -> list[int]:
        """Token ids; unknown symbols map to ``<unk>`` with one warning listing them."""
        tokens = self.segment(tokens)
        if warn:
            missing = self._missing(tokens)
            if missing:
                warnings.warn(f"Unknown symbol(s) mapped to {UNK}: {missing}", UserWarning, stacklevel=2)
        return [self._ids.get(t, UNK_ID) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Symbols up to the first ``</s>``; padding and start symbols are skipped."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i in (PAD_ID, BOS_ID):
                continue
            out.append(self.symbols[i] if 0 <= i < len(self.symbols) else UNK)
        return self.subwords.join(out) if self.subwords is not None else out

    def to_list(self) -> list[str]:
        return list(self.symbols)
