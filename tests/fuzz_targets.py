"""Fuzz targets: arbitrary input may only raise the documented error, never anything else, never hang.

CI runs a short profile (tests/test_fuzz.py). The long run, with its count written out:
    python -m tests.fuzz_targets --cases 10000 [--json runs/fuzz.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# the awkward parts of text: NUL, CR/LF mixes, BOMs, combining marks (NFD), zero-width and RTL marks
AWKWARD = st.sampled_from(["\x00", "\r", "\n", "\r\n", "\ufeff", "\u0301", "e\u0301", "\u00e9", "\u200b", "\u200f",
                           "\u202e", "\t", " ", "#", "(2)", "A", "B", "a", "1st", "'", "-", "\uffff", "\U0001f600"])
TEXT = st.lists(st.one_of(AWKWARD, st.text(max_size=8)), max_size=40).map("".join) | st.text(max_size=3000)
BYTES = st.one_of(st.binary(max_size=3000), TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")),
                  TEXT.map(lambda t: b"\xef\xbb\xbf" + t.encode("utf-8", "surrogatepass")))


@contextlib.contextmanager
def _file(data: bytes, suffix: str):
    """``data`` in a temporary file, removed afterwards."""
    fd, name = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    try:
        yield Path(name)
    finally:
        os.unlink(name)


def corpus_reader(data: bytes) -> None:
    from biseq.config import DataConfig
    from biseq.corpus import DataError, read_corpus

    with _file(data, ".tsv") as path:
        for fmt in ("tsv", "cmudict"):
            try:
                read_corpus(path, config=DataConfig(format=fmt, source_split="char"))
            except DataError:
                pass


def streamed_reader(data: bytes) -> None:
    """The streaming reader (one pass, then every chunk's batches) on a file cut into 3-line chunks."""
    from biseq.config import DataConfig
    from biseq.corpus import DataError
    from biseq.streaming import ChunkedBatches, scan, vocabularies

    with _file(data, ".tsv") as path:
        for fmt in ("tsv", "cmudict"):
            config = DataConfig(path=str(path), format=fmt, source_split="char", streaming=True, chunk_lines=3,
                                dev_fraction=0.2, test_fraction=0.2)
            try:
                found = scan(path, config=config, batch_size=4)
            except DataError:
                continue
            source_vocab, target_vocab = vocabularies(found)
            batches = ChunkedBatches(found, config=config, source_vocab=source_vocab, target_vocab=target_vocab,
                                     batch_size=4, seed=0)
            batches.set_epoch(0)
            served = sum(int((batches.batch(i).weight[:, 0] > 0).sum()) for i in range(len(batches)))
            assert served == found.train_pairs, (served, found.train_pairs)


def dictionary_reader(data: bytes) -> None:
    from biseq.corpus import DataError
    from biseq.g2p.dictionary import PronouncingDictionary

    with _file(data, ".dict") as path:
        try:
            found = PronouncingDictionary.read(path)
            for word in list(found)[:5]:
                assert isinstance(found.lookup(word), list)
        except DataError:
            pass


def toml_config(data: bytes) -> None:
    from biseq.config import Config, ConfigError

    with _file(data, ".toml") as path:
        try:
            Config.load(path)
        except ConfigError:
            pass


def vocabulary(symbols: list[str]) -> None:
    from biseq.vocabulary import SPECIALS, Vocabulary

    try:
        vocab = Vocabulary([*SPECIALS, *symbols])
    except ValueError as error:
        assert "twice" in str(error)
        return
    assert vocab.decode(vocab.encode(symbols[:5], warn=False)) == symbols[:5]


def text_normaliser(text: str) -> None:
    from biseq.g2p import text as text_module

    for word in text_module.words(text):
        assert word and not any(c.isspace() for c in word)


def cli_arguments(argv: list[str]) -> None:
    import io

    from biseq.cli import _build_parser

    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            _build_parser().parse_args(argv)
        except SystemExit as done:
            assert done.code in (0, 2)


class _StubG2P:
    """What the server needs of a G2P object, answering at once."""

    name = "stub"

    class system:  # noqa: N801 - stands in for a System
        class config:  # noqa: N801
            expand_numbers = True
            card: dict = {}

    dictionary: dict = {}

    def predict(self, words, *, nbest=1, stress=True, model_only=False):
        from biseq.g2p import Pronunciation, WordResult

        return [WordResult(w, (Pronunciation("X", 1.0, "model"),)) for w in words]

    def lookup(self, words, *, nbest=1, stress=True):
        return [None] * len(words)  # no dictionary: every word goes to predict() through the batcher


_CLIENT = None


def predict_request(body: bytes) -> None:
    global _CLIENT
    if _CLIENT is None:
        from fastapi.testclient import TestClient

        from biseq.server.app import create_app

        _CLIENT = TestClient(create_app(_StubG2P(), warm_up=False)).__enter__()
        while _CLIENT.get("/health").status_code != 200:
            time.sleep(0.01)
    response = _CLIENT.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code in (200, 413, 422), (response.status_code, response.text)
    assert "message" in response.json() or "results" in response.json()


JSON_BODIES = st.one_of(
    BYTES,
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
                 lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
                 max_leaves=20).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"words": st.lists(TEXT, max_size=30)},
                          optional={"nbest": st.integers(-3, 30), "stress": st.booleans()}).map(
        lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"text": TEXT}, optional={"nbest": st.integers(-3, 30)}).map(
        lambda v: json.dumps(v).encode()),
)

TARGETS = {
    "corpus_reader": (corpus_reader, BYTES),
    "streamed_reader": (streamed_reader, BYTES),
    "dictionary_reader": (dictionary_reader, BYTES),
    "toml_config": (toml_config, BYTES),
    "vocabulary": (vocabulary, st.lists(TEXT, max_size=20)),
    "text_normaliser": (text_normaliser, TEXT),
    "cli_arguments": (cli_arguments, st.lists(st.one_of(TEXT, st.sampled_from(
        ["predict", "train", "lexicon", "serve", "info", "--model", "--nbest", "--beam", "--format", "-h", "--all",
         "--port", "x", "3", "-1", "mfa"])), max_size=8)),
    "predict_request": (predict_request, JSON_BODIES),
}


def run_target(name: str, cases: int) -> int:
    """Run one target for ``cases`` examples; returns how many ran."""
    fn, strategy = TARGETS[name]
    count = 0

    @settings(max_examples=cases, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def check(value):
        nonlocal count
        count += 1
        fn(value)

    check()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--json", default="runs/fuzz.json")
    args = parser.parse_args()
    results = {}
    for name in TARGETS:
        started = time.perf_counter()
        results[name] = {"cases": run_target(name, args.cases), "seconds": round(time.perf_counter() - started, 1)}
        print(name, results[name], flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
