"""The seed's bidirectional decoder, non-autoregressive (objective ``masked``): it learns to generate."""

from __future__ import annotations

from biseq.config import Config


def settings(path, attention):
    return Config.from_dict({
        "data": {"path": str(path), "format": "tsv", "source_split": "char", "dev_fraction": 0.1,
                 "test_fraction": 0.1},
        "model": {"decoder": "bilstm", "objective": "masked", "attention": attention, "embedding_dim": 16,
                  "encoder_units": 48, "decoder_units": 48},
        "train": {"epochs": 30, "batch_size": 32, "patience": 0, "lr_schedule": "cosine", "learning_rate": 0.005}})


def test_mask_predict_with_attention_learns_to_reverse_held_out_words(reversal, tmp_path):
    from biseq.training import train

    result = train(settings(reversal, "luong"), out=tmp_path / "masked", verbose=0, log=lambda _: None)
    dev, test = result.dev, result.test
    exact = (dev.exact_match * dev.count + test.exact_match * test.count) / (dev.count + test.count)
    # measured 97.7 % dev, 92.6 % test; 0 % without attention, and 82 % at full size when mask-predict chose
    # among 3 lengths by token log p alone
    assert exact >= 88.0, (dev, test)
    reloaded = type(result.transducer).load(tmp_path / "masked")
    words = [e.source for e in result.test_entries[:20]]
    assert reloaded.predict_tokens(words) == result.transducer.predict_tokens(words)
