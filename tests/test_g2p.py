"""The English G2P layer end to end on a toy system: dictionary first, then the model (with its
joint-sequence model), the CLI's predict / lexicon / info, the Python API and their errors."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from biseq.corpus import read_corpus
from biseq.g2p.api import G2P, G2PError, load
from biseq.g2p.lexicon import LexiconError, lexicon_lines, read_word_list
from biseq.g2p.system import System, SystemDirError, write_system
from tests.test_joint_sequence import spell, toy_words

ENV = {**os.environ, "KERAS_BACKEND": "jax"}
DICTIONARY = """\
;;; a toy dictionary: the first two words have variants
abba  AE1 B B AE0
abba(2)  AE1 B AH0
cafe  K AE1 F EH0
cafe(2)  K AE0 F EH1
deed  D EH1 EH0 D
"""


def stressed(word: str) -> str:
    """``spell`` with CMU-style stress: the first vowel 1, the others 0."""
    out, first = [], True
    for phone in spell(word):
        if phone in ("AE", "EH"):
            out.append(phone + ("1" if first else "0"))
            first = False
        else:
            out.append(phone)
    return " ".join(out)


def biseq(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "biseq.cli", *map(str, args)], capture_output=True, text=True,
                          input=stdin, env=ENV, timeout=600)


@pytest.fixture(scope="module")
def toy_system(tmp_path_factory):
    root = tmp_path_factory.mktemp("g2p")
    data = root / "toy.dict"
    data.write_text("".join(f"{w}  {stressed(w)}\n" for w in toy_words(400)))
    config = root / "toy.toml"
    config.write_text('[data]\nformat = "cmudict"\nstrip_stress = false\n'
                      '[model]\nencoder_units = 16\ndecoder_units = 32\n[train]\nepochs = 2\n')
    run = root / "run"
    result = biseq("train", "--config", config, "--data", data, "--format", "cmudict", "--out", run, "--quiet",
                   "--show", 0)
    assert result.returncode == 0, result.stderr
    result = biseq("joint-train", "--model", run, "--data", data, "--order", 4)
    assert result.returncode == 0, result.stderr
    (root / "dictionary.dict").write_text(DICTIONARY)
    (root / "card.json").write_text(json.dumps({"data": "toy", "dev WER": "0%"}))
    out = root / "system"
    result = biseq("build-system", "--model", run, "--joint", run / "joint.fst", "--joint-weight", 0.5,
                   "--dictionary", root / "dictionary.dict", "--card", root / "card.json", "--compact",
                   "--name", "toy-en", "--out", out)
    assert result.returncode == 0, result.stderr
    return root, run, out


def test_build_system_writes_a_compact_complete_directory(toy_system):
    root, _, out = toy_system
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert names == ["dictionary.dict.gz", "joint.fst.xz", "model/config.json", "model/vocab.json",
                     "model/weights.npz", "system.json"]
    system = System.open(out)
    assert (system.name, system.config.joint_weight, system.config.card["data"]) == ("toy-en", 0.5, "toy")
    again = biseq("build-system", "--model", root / "run", "--out", out)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_float16_weights_load_back_as_the_rounded_model(toy_system):
    from biseq.transducer import Transducer

    _, run, out = toy_system
    full, half = Transducer.load(run), Transducer.load(out / "model")
    for a, b in zip(full.model.weights, half.model.weights, strict=True):
        assert b.dtype == a.dtype == "float32"
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a).astype(np.float16).astype(np.float32))
    words = toy_words(40, seed=7)
    agree = np.mean([p == q for p, q in zip(full.predict(words), half.predict(words), strict=True)])
    assert agree >= 0.9


def test_predict_answers_dictionary_words_without_loading_keras(toy_system):
    _, _, out = toy_system
    code = ("import sys; from biseq.cli import main; rc = main(['predict', '--model', sys.argv[1], 'Abba', "
            "'DEED']); print('heavy:', sorted(m for m in ('keras', 'jax', 'numpy') if m in sys.modules)); "
            "sys.exit(rc)")  # numpy alone costs ~0.2 s of the 0.5 s a dictionary word may take
    result = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["abba\tAE1 B B AE0", "deed\tD EH1 EH0 D", "heavy: []"]


def test_predict_all_variants_nbest_and_no_stress(toy_system):
    _, _, out = toy_system
    result = biseq("predict", "--model", out, "--all", "cafe")
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert rows == [["cafe", "K AE1 F EH0", "0.5000", "dictionary"], ["cafe", "K AE0 F EH1", "0.5000", "dictionary"]]
    result = biseq("predict", "--model", out, "--all", "--no-stress", "cafe", "abba")
    assert result.stdout.splitlines() == ["cafe\tK AE F EH\t1.0000\tdictionary", "abba\tAE B B AE\t0.5000\tdictionary",
                                          "abba\tAE B AH\t0.5000\tdictionary"]
    result = biseq("predict", "--model", out, "--nbest", "3", "chafed")  # not in the dictionary
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert 1 <= len(rows) <= 3 and {r[0] for r in rows} == {"chafed"} and {r[3] for r in rows} == {"model"}
    probs = [float(r[2]) for r in rows]
    assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=1e-3)
    assert all(re.fullmatch(r"[A-Z]+[0-2]?( [A-Z]+[0-2]?)*", r[1]) for r in rows)


def test_model_words_combine_with_the_joint_model_and_match_the_api(toy_system):
    _, _, out = toy_system
    words = toy_words(30, seed=3)
    g2p = load(out)
    found = g2p.predict(words, nbest=2)
    assert [r.word for r in found] == words
    assert all(r.pronunciations and r.pronunciations[0].source == "model" for r in found)
    result = biseq("predict", "--model", out, *words)
    assert result.stdout.splitlines() == [f"{r.word}\t{r.phones}" for r in found]
    by_hand = biseq("predict", "--model", out / "model", "--beam", 5, "--joint", out / "joint.fst.xz",
                    "--joint-weight", 0.5, *words)  # what system.json says, spelled out
    assert by_hand.returncode == 0, by_hand.stderr
    assert by_hand.stdout == result.stdout
    assert g2p.predict(["abba"], model_only=True)[0].pronunciations[0].source == "model"


def test_few_model_words_decode_in_numpy_as_the_compiled_path_does(toy_system):
    _, _, out = toy_system
    words = toy_words(30, seed=5)
    fast, compiled = load(out), load(out, numpy_words=0)
    assert fast.numpy_decoder is not None
    for nbest in (1, 3):
        mine, theirs = fast.predict(words, nbest=nbest), compiled.predict(words, nbest=nbest)
        assert [[p.phones for p in r.pronunciations] for r in mine] == [[p.phones for p in r.pronunciations]
                                                                        for r in theirs]
        np.testing.assert_allclose([p.prob for r in mine for p in r.pronunciations],
                                   [p.prob for r in theirs for p in r.pronunciations], atol=1e-4)
    assert compiled._decoder is not None and fast._decoder is None  # the compiled path never loaded here
    code = ("import sys; from biseq.cli import main; rc = main(['predict', '--model', sys.argv[1], 'chafed']); "
            "print('heavy:', sorted(m for m in ('keras', 'jax') if m in sys.modules)); sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split("\t")[1] == fast.predict(["chafed"])[0].phones
    assert result.stdout.splitlines()[-1] == "heavy: []"


def test_threads_sharing_one_g2p_get_the_answers_of_one_thread(toy_system):
    from concurrent.futures import ThreadPoolExecutor

    _, _, out = toy_system
    g2p = load(out)
    batches = [toy_words(12, seed=s) for s in range(8)]
    alone = [[r.phones for r in g2p.predict(b, nbest=2)] for b in batches]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda b: [r.phones for r in g2p.predict(b, nbest=2)], batches * 3))
    assert together == alone * 3


def test_text_is_split_and_odd_characters_are_reported(toy_system):
    _, _, out = toy_system
    g2p = load(out)
    assert [w for w, _ in g2p("Abba, DEED!  cafe")] == ["abba", "deed", "cafe"]
    with pytest.warns(UserWarning, match="characters the model never saw skipped: 'z'"):
        result = g2p.predict(["bazed"])[0]
    assert "skipped" in result.note and result.phones
    with pytest.warns(UserWarning, match="accents removed"):
        accented = g2p.predict(["cafés"])[0]
    assert "accents removed" in accented.note
    with pytest.raises(G2PError, match="word 2 is empty"):
        g2p.predict(["abba", "  "])
    with pytest.raises(G2PError, match="has spaces inside"):
        g2p.predict(["abba deed"])
    cli = biseq("predict", "--model", out, "zzz")
    assert cli.returncode == 0 and "nothing left to pronounce" in cli.stderr and cli.stdout == "zzz\t\n"


def test_written_files_have_ordinary_permissions(toy_system, tmp_path):
    """Atomic writes go through ``tempfile`` (files 0600, directories 0700); what a user gets must be readable
    by others as a plainly created file is (0o666 / 0o777 less the umask), e.g. a model shared on a server."""
    _, run, out = toy_system
    umask = os.umask(0)
    os.umask(umask)
    lexicon = tmp_path / "lexicon.tsv"
    result = biseq("lexicon", "-", "--model", out, "--format", "tsv", "--out", lexicon, "--quiet", stdin="abba\n")
    assert result.returncode == 0, result.stderr
    paths = [lexicon, *run.rglob("*"), out, *out.rglob("*")]
    modes = {str(p): oct(p.stat().st_mode & 0o777) for p in paths}
    expected = {str(p): oct((0o777 if p.is_dir() else 0o666) & ~umask) for p in paths}
    assert modes == expected


@pytest.mark.parametrize("fmt", ["mfa", "kaldi", "tsv"])
def test_lexicon_files_follow_their_formats(toy_system, tmp_path, fmt):
    _, _, out = toy_system
    words = tmp_path / "words.txt"
    words.write_text("abba\ncafe\n\nchafed\nthe cafe, the abba\n")
    lexicon = tmp_path / f"lexicon.{fmt}"
    result = biseq("lexicon", words, "--model", out, "--format", fmt, "--all", "--nbest", "2", "--out", lexicon,
                   "--quiet")
    assert result.returncode == 0, result.stderr
    lines = lexicon.read_text().splitlines()
    sep = " " if fmt == "kaldi" else "\t"
    best: dict[str, float] = {}
    for line in lines:
        if fmt == "tsv":
            word, phones = line.split("\t")
        else:
            word, prob, phones = line.split(sep, 2)
            assert re.fullmatch(r"1\.0|0\.\d\d", prob), line  # MFA's pattern; Kaldi: 0 < p <= 1
            assert 0.01 <= float(prob) <= 1.0
            best[word] = max(best.get(word, 0.0), float(prob))
        assert phones.split() and all(re.fullmatch(r"[A-Z]+[0-2]?", p) for p in phones.split()), line
    assert len(lines) == len(set(lines))
    assert [line.split(sep)[0] for line in lines][:3] == ["abba", "abba", "cafe"]
    assert "the" in {line.split(sep)[0] for line in lines}  # 't' skipped (warned), "he" pronounced
    assert "word 'the': characters the model never saw skipped: 't'" in result.stderr
    if fmt != "tsv":
        assert set(best.values()) == {1.0}
    else:
        from biseq.config import DataConfig

        entries = read_corpus(lexicon, config=DataConfig(source_split="char"), fmt="tsv")
        assert {"".join(e.source) for e in entries} >= {"abba", "cafe", "chafed"}


def test_lexicon_lines_and_word_list_errors(tmp_path):
    from biseq.g2p.api import Pronunciation, WordResult

    results = [WordResult("a", (Pronunciation("AH0", 0.6, "model"), Pronunciation("EY1", 0.3, "model"),
                                Pronunciation("AE1", 0.001, "model"))), WordResult("zzz", ())]
    assert lexicon_lines(results, fmt="mfa") == ["a\t1.0\tAH0", "a\t0.50\tEY1", "a\t0.01\tAE1"]
    assert lexicon_lines(results, fmt="kaldi")[1] == "a 0.50 EY1"
    with pytest.raises(LexiconError, match="unknown lexicon format 'htk'"):
        lexicon_lines(results, fmt="htk")
    bad = tmp_path / "words.txt"
    bad.write_bytes(b"abba\ncaf\xe9\n")
    with pytest.raises(LexiconError, match=r"words.txt:2: not UTF-8"):
        read_word_list(bad)
    with pytest.raises(LexiconError, match="cannot read the word list"):
        read_word_list(tmp_path / "missing.txt")
    good = tmp_path / "good.txt"
    good.write_text("Abba\nabba\nthe 2 cafes\n")
    assert read_word_list(good) == ["abba", "the", "two", "cafes"]
    result = biseq("lexicon", tmp_path / "missing.txt")
    assert result.returncode == 2 and "missing.txt: cannot read the word list" in result.stderr


def test_info_shows_the_system_and_its_routing(toy_system):
    _, _, out = toy_system
    result = biseq("info", "--model", out)
    assert result.returncode == 0, result.stderr
    assert "system: toy-en" in result.stdout
    assert "joint-sequence model joint.fst.xz at weight 0.5" in result.stdout
    assert "card: dev WER: 0%" in result.stdout
    assert "state routing" in result.stdout


def test_broken_system_directories_are_named(toy_system, tmp_path):
    _, _, out = toy_system
    with pytest.raises(SystemDirError, match="no such directory"):
        System.open(tmp_path / "nowhere")
    with pytest.raises(SystemDirError, match="neither a system directory"):
        System.open(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "model" / "weights.npz").unlink()
    with pytest.raises(SystemDirError, match=r"model: the model directory named in .*system.json is missing "
                                             r"model.keras or weights.npz"):
        System.open(broken)
    shutil.rmtree(broken)
    shutil.copytree(out, broken)
    data = json.loads((broken / "system.json").read_text())
    (broken / "system.json").write_text(json.dumps({**data, "beem": 5}))
    with pytest.raises(SystemDirError, match="beem"):
        System.open(broken)
    (broken / "system.json").write_text("{not json")
    result = biseq("predict", "--model", broken, "abba")
    assert result.returncode == 2 and "system.json: not a readable system file" in result.stderr
    (broken / "system.json").write_text(json.dumps(data))
    (broken / "dictionary.dict.gz").unlink()
    with pytest.raises(SystemDirError, match="the dictionary named in"):
        System.open(broken)
    truncated = tmp_path / "trunc"
    shutil.copytree(out, truncated)
    (truncated / "model" / "weights.npz").write_bytes(b"PK\x03\x04 truncated")
    result = biseq("predict", "--model", truncated, "chafed")
    assert result.returncode == 2 and "weights.npz: not a readable weights file" in result.stderr


def test_a_plain_model_directory_is_a_one_model_system(toy_system):
    _, run, _ = toy_system
    g2p = G2P(System.open(run))
    assert g2p.system.config.beam == 1 and len(g2p.dictionary) == 0
    from biseq.transducer import Transducer

    words = toy_words(10, seed=5)
    assert [r.phones for r in g2p.predict(words)] == Transducer.load(run).predict(words)


def test_write_system_refuses_missing_inputs(toy_system, tmp_path):
    _, run, _ = toy_system
    with pytest.raises(SystemDirError, match="joint-sequence model not found"):
        write_system(tmp_path / "s", models=[run], joint=tmp_path / "nope.fst")
    assert not (tmp_path / "s").exists() and not any(tmp_path.iterdir())


@pytest.mark.parametrize("compact", [True, False])
def test_a_system_rebuilt_from_another_systems_parts_answers_alike(toy_system, tmp_path, compact):
    """A system's ``joint.fst.xz`` is a valid ``--joint`` input (kept packed, or unpacked for a plain system)."""
    _, _, out = toy_system
    words = toy_words(20, seed=7)
    again = write_system(tmp_path / "again", models=[out / "model"], joint=out / "joint.fst.xz", joint_weight=0.5,
                         dictionary=out / "dictionary.dict.gz", compact=compact)
    assert (again.root / ("joint.fst.xz" if compact else "joint.fst")).is_file()
    mine, theirs = load(again.root).predict(words, nbest=2), load(out).predict(words, nbest=2)
    assert [[p.phones for p in r.pronunciations] for r in mine] == [[p.phones for p in r.pronunciations]
                                                                    for r in theirs]


def test_a_system_skips_the_joint_search_for_words_its_network_is_sure_of(toy_system, tmp_path):
    """``skip_joint_above``: sure words keep the network's answer, the others the combination's; the
    CLI and the API agree; nbest > 1 searches every word; a bad value in system.json is named."""
    _, run, out = toy_system
    words = toy_words(40, seed=11)
    plain = load(out)
    net = plain.numpy_decoder
    beams = net.beam_nbest_ids(net.encode_sources([net.tokenize_source(w) for w in words]), beam_size=1, nbest=1)
    per_token = np.array([h[0][2] / (len(h[0][0]) + 1) for h in beams])
    gate = float(np.exp(np.median(per_token)))  # half the words are sure
    sure = per_token >= np.log(gate)
    assert 0 < sure.sum() < len(words)
    result = biseq("build-system", "--model", run, "--joint", run / "joint.fst", "--joint-weight", 0.5, "--beam", 1,
                   "--skip-joint-above", gate, "--out", tmp_path / "gated")
    assert result.returncode == 0, result.stderr
    gated = load(tmp_path / "gated")
    assert gated.system.config.skip_joint_above == pytest.approx(gate)
    ungated = load(write_system(tmp_path / "ungated", models=[run], joint=run / "joint.fst", joint_weight=0.5,
                                beam=1).root)
    mine, combined = gated.predict(words), ungated.predict(words)
    network = [net.target_text(net.target_vocab.decode(h[0][0])) for h in beams]
    for word, r, c, n, s in zip(words, mine, combined, network, sure, strict=True):
        assert r.phones == (n if s else c.phones), word
    cli = biseq("predict", "--model", tmp_path / "gated", *words)
    assert cli.stdout.splitlines() == [f"{w}\t{r.phones}" for w, r in zip(words, mine, strict=True)]
    info = biseq("info", "--model", tmp_path / "gated")
    assert f"skipped for words the network is sure of (geometric-mean token probability >= {gate:g})" in info.stdout
    several = gated.predict(words, nbest=2)
    assert [[p.phones for p in r.pronunciations] for r in several] == [
        [p.phones for p in r.pronunciations] for r in ungated.predict(words, nbest=2)]
    data = json.loads((tmp_path / "gated" / "system.json").read_text())
    (tmp_path / "gated" / "system.json").write_text(json.dumps({**data, "skip_joint_above": 1.5}))
    with pytest.raises(SystemDirError, match="skip_joint_above must be between 0 and 1"):
        System.open(tmp_path / "gated")
