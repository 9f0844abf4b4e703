"""``biseq.load()``: English pronunciations from a system directory, dictionary first, then the model.

>>> import biseq
>>> g2p = biseq.load()                       # the bundled English system
>>> g2p("The 3 quick foxes!")                # doctest: +SKIP
[('the', 'DH AH0'), ('three', 'TH R IY1'), ('quick', 'K W IH1 K'), ('foxes', 'F AA1 K S AH0 Z')]
>>> g2p.predict(["zyzzyvas"], nbest=3)       # doctest: +SKIP
[WordResult(word='zyzzyvas', pronunciations=(Pronunciation(phones='Z IH1 Z AH0 V AH0 Z', prob=0.71, ...

Words the dictionary lists are answered from it without loading Keras or JAX; the others are
decoded together, in batches, by the system's model (beam search, combined with its
joint-sequence model when it has one). A call with few unknown words (``numpy_words``) runs the
model in NumPy (:mod:`biseq.numpy_decoding`): no Keras, no JAX, no compilation, the same numbers.
"""

from __future__ import annotations

import dataclasses
import math
import unicodedata
import warnings
from collections.abc import Sequence
from pathlib import Path

from biseq import compile_cache
from biseq.g2p import text as text_module
from biseq.g2p.dictionary import PronouncingDictionary, strip_stress
from biseq.g2p.system import System, SystemConfig, bundled_path


class G2PError(ValueError):
    """A word cannot be looked up (empty, or not one word)."""


@dataclasses.dataclass(frozen=True)
class Pronunciation:
    """One candidate: ``phones`` space-separated, ``prob`` normalised over the candidates returned
    for its word, ``source`` ``"dictionary"`` or ``"model"``."""

    phones: str
    prob: float
    source: str


@dataclasses.dataclass(frozen=True)
class WordResult:
    """A word with its candidates, best first; ``note`` says what was done to an odd word."""

    word: str
    pronunciations: tuple[Pronunciation, ...]
    note: str = ""

    @property
    def phones(self) -> str:
        """The best pronunciation (``""`` when there is none)."""
        return self.pronunciations[0].phones if self.pronunciations else ""


NUMPY_WORDS = 256  # up to this many unknown words a call: the NumPy path (benchmarks/g2p_speed_2026-12-05e.json)


def load(path: str | Path | None = None, *, numpy_words: int = NUMPY_WORDS) -> G2P:
    """Open a system directory (default: the bundled English system) or a ``biseq train`` model directory."""
    return G2P(System.open(bundled_path() if path is None else path), numpy_words=numpy_words)


class G2P:
    """Grapheme-to-phoneme conversion with a :class:`~biseq.g2p.system.System`.

    Args:
        system: the opened system directory.
        numpy_words: a call with at most this many words for the model decodes them in NumPy
            when the system is one compact model the NumPy path computes (an unknown word in a
            new process: no JAX import, no compiled programs to load); larger calls, and every
            call with 0, run the compiled (JAX) search, faster per word in large batches.
    """

    def __init__(self, system: System, *, numpy_words: int = NUMPY_WORDS) -> None:
        self.system = system
        self.numpy_words = numpy_words
        self._dictionary: PronouncingDictionary | None = None
        self._decoder = None
        self._numpy_decoder: object | None = None  # False: tried, not available
        self._joint = None

    @property
    def name(self) -> str:
        return self.system.name

    @property
    def dictionary(self) -> PronouncingDictionary:
        """The system's pronouncing dictionary (empty when it has none); read on first use."""
        if self._dictionary is None:
            path = self.system.dictionary_path
            self._dictionary = PronouncingDictionary.read(path) if path else PronouncingDictionary()
        return self._dictionary

    @property
    def decoder(self):
        """The network(s): a Transducer, or an Ensemble for several models; loaded on first use."""
        if self._decoder is None:
            self._decoder = _load_network(self.system.model_paths)
        return self._decoder

    @property
    def numpy_decoder(self):
        """The NumPy path for the system's model (:class:`~biseq.numpy_decoding.NumpyTransducer`), or
        ``None``: an ensemble, a model it does not compute, or a ``model.keras`` directory never yet
        loaded by the compiled path (which caches its weights for the NumPy path)."""
        if self._numpy_decoder is None:
            from biseq.numpy_decoding import NumpyTransducer
            from biseq.numpy_model import UnsupportedModel

            paths = self.system.model_paths
            try:
                self._numpy_decoder = NumpyTransducer.load(paths[0]) if len(paths) == 1 else False
            except UnsupportedModel:
                self._numpy_decoder = False
        return self._numpy_decoder or None

    def _network(self, count: int):
        """The decoder for a call with ``count`` words for the model."""
        if count <= self.numpy_words and self.numpy_decoder is not None:
            return self.numpy_decoder
        return self.decoder

    def __call__(self, text: str, *, stress: bool = True) -> list[tuple[str, str]]:
        """The words of ``text`` (see :func:`biseq.g2p.text.words`) with their best pronunciation."""
        found = self.predict(text_module.words(text, expand_numbers=self.system.config.expand_numbers),
                             stress=stress)
        return [(r.word, r.phones) for r in found]

    def predict(self, words: Sequence[str], *, nbest: int = 1, all_variants: bool = False,
                model_only: bool = False, stress: bool = True, batch_size: int = 256) -> list[WordResult]:
        """Candidates for each word, best first, with probabilities.

        Args:
            words: single words (case-insensitive).
            nbest: candidates per word; a dictionary word gives its first ``nbest`` listed variants.
            all_variants: every listed dictionary variant (at least ``nbest``).
            model_only: decode every word with the model, ignoring the dictionary.
            stress: keep CMU stress digits (``False`` strips them and merges what becomes equal).

        Returns:
            One :class:`WordResult` per word, in order. Probabilities are normalised over the
            candidates returned for the word: dictionary variants share it equally; model
            candidates get ``softmax`` of their scores (the joint combination's log-linear score
            or the beam's length-normalised log-probability).

        Raises:
            G2PError: an empty word or one with spaces inside.
        """
        if nbest < 1:
            raise G2PError(f"nbest must be at least 1, got {nbest}")
        folded = []
        for i, word in enumerate(words):
            clean, problem = text_module.check_word(word)
            if problem == "is empty":
                raise G2PError(f"word {i + 1} is empty: give at least one letter")
            if problem:
                raise G2PError(f"word {i + 1} ({word!r}) {problem}: give one word per item, or call "
                               "the G2P object on the text to split it")
            folded.append(clean)
        results = [None] * len(folded) if model_only else self._looked_up(folded, nbest=nbest,
                                                                           all_variants=all_variants, stress=stress)
        unknown = [i for i, r in enumerate(results) if r is None]
        if unknown:
            for i, result in zip(unknown, self._model_results([folded[i] for i in unknown], nbest=nbest,
                                                              stress=stress, batch_size=batch_size), strict=True):
                results[i] = result
        return results

    def lookup(self, words: Sequence[str], *, nbest: int = 1, all_variants: bool = False,
               stress: bool = True) -> list[WordResult | None]:
        """The dictionary's answer for each word as :meth:`predict` gives it, ``None`` where it has none (or the
        word is not one word). Reads the dictionary only: no model, safe to call from any thread."""
        checked = [text_module.check_word(word) for word in words]
        return self._looked_up([clean if not problem else "" for clean, problem in checked], nbest=nbest,
                               all_variants=all_variants, stress=stress)

    def _looked_up(self, clean: list[str], *, nbest: int, all_variants: bool, stress: bool) -> list[WordResult | None]:
        """:meth:`lookup` of words already checked and folded ("" for none)."""
        out: list[WordResult | None] = []
        for word in clean:
            variants = self.dictionary.lookup(word) if word else []
            shown = variants if all_variants else variants[:nbest]
            out.append(_result(word, [(v, 0.0) for v in shown], "dictionary", stress) if shown else None)
        return out

    # --- the model -------------------------------------------------------------------------
    def _model_results(self, words: list[str], *, nbest: int, stress: bool, batch_size: int) -> list[WordResult]:
        unique = list(dict.fromkeys(words))
        network = self._network(len(unique))
        sources, notes = {}, {}
        for word in unique:
            sources[word], notes[word] = _model_input(network, word)
        decodable = [w for w in unique if sources[w]]
        found = dict(zip(decodable, _decode(network, self.joint_model, self.system.config,
                                            [sources[w] for w in decodable], nbest=nbest, batch_size=batch_size),
                         strict=True))
        out = []
        for word in words:
            if notes[word]:
                warnings.warn(f"word {word!r}: {notes[word]}", UserWarning, stacklevel=4)
            out.append(_result(word, found.get(word, []), "model", stress, note=notes[word]))
        return out

    @property
    def joint_model(self):
        """The system's joint-sequence model (:class:`~biseq.joint_sequence.JointModel`), or ``None``."""
        if self._joint is None and self.system.joint_path is not None and self.system.config.joint_weight > 0:
            from biseq.joint_sequence import JointModel

            self._joint = JointModel.find(self.system.joint_path)
        return self._joint


def _load_network(paths: list[Path]):
    """The compiled path's network: a Transducer, or an Ensemble of several."""
    compile_cache.enable()
    from biseq.transducer import Transducer

    members = [Transducer.load(p) for p in paths]
    if len(members) == 1:
        return members[0]
    from biseq.ensemble import Ensemble

    return Ensemble(members)


def _decode(decoder, joint, config: SystemConfig, sources: list[tuple[str, ...]], *, nbest: int, batch_size: int
            ) -> list[list[tuple[str, float]]]:
    """Per source up to ``nbest`` ``(phones, score)`` from ``decoder`` (with ``joint``, if any), best first."""
    if not sources:
        return []
    beam = max(config.beam, nbest)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown symbols were handled by _model_input()
        if joint is not None:
            from biseq.joint_sequence import joint_nbest

            ranked = joint_nbest(decoder, joint, sources, weights=[config.joint_weight], beam_size=beam,
                                 joint_nbest_size=config.joint_nbest, length_penalty=config.length_penalty,
                                 settle_agreement=nbest == 1,
                                 skip_joint_above=config.skip_joint_above, answers=nbest)[config.joint_weight]
            return [[(decoder.target_text(tokens), score) for tokens, score in hyps[:nbest]] for hyps in ranked]
        ids = decoder.encode_sources(sources)
        if beam == 1 and hasattr(decoder, "predict_ids") and not getattr(decoder, "rescores", False):
            return [[(decoder.target_text(decoder.target_vocab.decode(row)), 0.0)]
                    for row in decoder.predict_ids(ids, batch_size=batch_size)]
        found = decoder.predict_nbest_ids(ids, beam_size=beam, nbest=nbest, length_penalty=config.length_penalty)
        return [[(decoder.target_text(decoder.target_vocab.decode(h)), s) for h, s in hyps] for hyps in found]


def _result(word: str, scored: list[tuple[str, float]], source: str, stress: bool, note: str = "") -> WordResult:
    """Candidates with probabilities: softmax over the scores, merged when stripping stress joins them."""
    merged: dict[str, float] = {}
    top = max((s for _, s in scored), default=0.0)
    for phones, score in scored:
        key = phones if stress else strip_stress(phones)
        merged[key] = merged.get(key, 0.0) + math.exp(score - top)
    total = sum(merged.values()) or 1.0
    prons = tuple(Pronunciation(p, round(m / total, 6), source) for p, m in merged.items() if p)
    return WordResult(word, tuple(sorted(prons, key=lambda p: -p.prob)), note)


def _model_input(decoder, word: str) -> tuple[tuple[str, ...], str]:
    """The word as ``decoder``'s source symbols, and a note on symbols it had to change or drop."""
    vocab = decoder.source_vocab
    tokens = decoder.tokenize_source(word)
    if all(t in vocab for t in tokens):
        return tokens, ""
    plain = "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))
    kept = tuple(t for t in decoder.tokenize_source(plain) if t in vocab)
    dropped = "".join(dict.fromkeys(t for t in decoder.tokenize_source(plain) if t not in vocab))
    changed = plain != word
    what = []
    if changed:
        what.append(f"accents removed ({plain!r})")
    if dropped:
        what.append(f"characters the model never saw skipped: {dropped!r}")
    if not kept:
        what.append("nothing left to pronounce")
    return kept, "; ".join(what)
