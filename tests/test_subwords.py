"""Beyond characters: subword pieces (SentencePiece) trained by ``biseq train``, and BLEU/chrF in evaluate."""

from __future__ import annotations

import json
import random

import pytest

from biseq.config import Config, ConfigError
from biseq.metrics import text_scores
from biseq.subwords import SubwordError, Subwords
from biseq.vocabulary import UNK_ID, Vocabulary

STEMS = "walk talk jump play cook paint clean open call watch help work kick look pull push rain start turn".split()
SUBJECTS = "i you we they people children friends".split()
ADVERBS = "home today again slowly now later there quickly".split()


def past_tense_lines(count: int, seed: int) -> list[str]:
    """``we walk home<TAB>we walked home``: a word-level task whose pieces (``ed``) are shared."""
    rng, pairs = random.Random(seed), set()
    while len(pairs) < count:
        subject, verb, rest = rng.choice(SUBJECTS), rng.choice(STEMS), " ".join(rng.sample(ADVERBS, rng.randint(1, 2)))
        pairs.add(f"{subject} {verb} {rest}\t{subject} {verb}ed {rest}")
    return sorted(pairs)


@pytest.fixture(scope="module")
def pieces():
    return Subwords.train([line.split("\t")[1] for line in past_tense_lines(300, seed=1)], size=40)


def test_pieces_round_trip_words_and_are_deterministic(pieces):
    again = Subwords.train([line.split("\t")[1] for line in past_tense_lines(300, seed=1)], size=40)
    assert again == pieces  # one thread, no sampling: the same text gives the same model
    assert len(pieces) <= 40
    words = ["friends", "kicked", "walkwalked", "today"]  # "walkwalked" was never seen as a word
    segmented = pieces.segment(words)
    assert len(segmented) > len(words) and segmented[0].startswith("\u2581")
    assert pieces.join(segmented) == words
    assert Subwords.from_text(pieces.to_text()) == pieces


def test_subword_errors_are_clear():
    with pytest.raises(SubwordError, match="no training text"):
        Subwords.train(["", "  "], size=40)
    with pytest.raises(SubwordError, match="base64"):
        Subwords.from_text("not base64 !")
    with pytest.raises(SubwordError, match="not a SentencePiece model"):
        Subwords(b"\x00\x01garbage")


def test_a_vocabulary_with_pieces_takes_and_gives_words(pieces, tmp_path):
    from biseq.model_dir import read_vocabularies, vocab_json

    vocab = Vocabulary.build([["we", "walked", "home"], ["they", "kicked", "now"]], subwords=pieces)
    assert all(s in pieces.segment(["we", "walked", "home", "they", "kicked", "now"]) for s in vocab.symbols[4:])
    ids = vocab.encode(["we", "kicked", "home"])
    assert len(ids) == len(pieces.segment(["we", "kicked", "home"])) and UNK_ID not in ids
    assert vocab.decode([*ids, 2, 5]) == ["we", "kicked", "home"]  # stops at </s>
    plain = Vocabulary.build([["we", "walked"]])
    (tmp_path / "vocab.json").write_text(vocab_json(vocab, plain), encoding="utf-8")
    source, target = read_vocabularies(tmp_path / "vocab.json")
    assert source == vocab and source.subwords == pieces and target == plain and target.subwords is None
    broken = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    broken["source_subwords"] = "AAAA"
    (tmp_path / "vocab.json").write_text(json.dumps(broken), encoding="utf-8")
    from biseq.model_dir import ModelDirError

    with pytest.raises(ModelDirError, match=r"vocab\.json: source_subwords: not a SentencePiece model"):
        read_vocabularies(tmp_path / "vocab.json")


def test_subword_settings_are_checked():
    with pytest.raises(ConfigError, match="data.streaming does not train subword models"):
        Config.from_dict({"data": {"streaming": True, "target_split": "sentencepiece"}})
    with pytest.raises(ConfigError, match="data.source_pieces must be at least 8"):
        Config.from_dict({"data": {"source_pieces": 2}})
    with pytest.raises(ConfigError, match="must be one of"):
        Config.from_dict({"data": {"target_split": "wordpiece"}})


def test_bleu_and_chrf_come_from_sacrebleu_with_several_references():
    import sacrebleu

    hyps = ["the cat sat on the mat", "a dog barked loudly"]
    refs = [["the cat sat on the mat", "a cat sat on the mat"], ["the dog barked"]]
    found = text_scores(hyps, refs)
    expected = sacrebleu.corpus_bleu(hyps, [["the cat sat on the mat", "the dog barked"],
                                            ["a cat sat on the mat", None]])
    assert found.bleu == pytest.approx(expected.score) and 0 < found.bleu < 100
    assert found.chrf == pytest.approx(sacrebleu.corpus_chrf(hyps, [["the cat sat on the mat", "the dog barked"],
                                                                    ["a cat sat on the mat", None]]).score)
    assert "nrefs:var" in found.bleu_signature
    assert text_scores(["a b c d"], [["a b c d"]]).bleu == pytest.approx(100.0)
    # one word spelled letter by letter (phoneme-to-grapheme): word 4-grams leave BLEU at 0, characters do not
    spelled = text_scores(["HELLO", "WORLD"], [["HELO"], ["WORLD"]], characters=True)
    assert text_scores(["HELLO", "WORLD"], [["HELO"], ["WORLD"]]).bleu == 0.0
    assert 50 < spelled.bleu < 100 and "tok:char" in spelled.bleu_signature
    with pytest.raises(ValueError, match="at least one reference"):
        text_scores(["x"], [[]])


def test_train_with_sentencepiece_on_both_sides_then_evaluate_prints_bleu(tmp_path, capsys):
    from biseq.cli import main
    from biseq.transducer import Transducer

    lines = past_tense_lines(1200, seed=0)
    random.Random(0).shuffle(lines)
    (tmp_path / "train.tsv").write_text("\n".join(lines[:-100]) + "\n", encoding="utf-8")
    (tmp_path / "test.tsv").write_text("\n".join(lines[-100:]) + "\n", encoding="utf-8")
    (tmp_path / "sp.toml").write_text(
        '[data]\nformat = "tsv"\n[model]\nembedding_dim = 32\nencoder_units = 64\ndecoder_units = 128\n'
        '[train]\nbatch_size = 32\nepochs = 14\npatience = 0\nlearning_rate = 0.006\nlr_schedule = "cosine"\n',
        encoding="utf-8")
    assert main(["train", "--config", str(tmp_path / "sp.toml"), "--data", str(tmp_path / "train.tsv"),
                 "--source-split", "sentencepiece", "--target-split", "sentencepiece", "--pieces", "48",
                 "--out", str(tmp_path / "run"), "--quiet"]) == 0
    vocab = json.loads((tmp_path / "run" / "vocab.json").read_text(encoding="utf-8"))
    assert {"source_subwords", "target_subwords"} <= set(vocab) and len(vocab["target"]) <= 48 + 4
    capsys.readouterr()
    assert main(["evaluate", "--model", str(tmp_path / "run"), "--data", str(tmp_path / "test.tsv")]) == 0
    report = capsys.readouterr().out
    exact = float(report.split("exact ")[1].split("%")[0])
    bleu = float(report.split("BLEU ")[1].split()[0])
    assert exact >= 80.0 and bleu >= 80.0, report  # measured 99 % exact, BLEU 98.9; 3 % after 8 epochs on 900
    model = Transducer.load(tmp_path / "run")
    assert model.predict(["children kick again"]) == ["children kicked again"]
