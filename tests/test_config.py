import dataclasses
import json
import re
from pathlib import Path

import pytest

from biseq.config import Config, ConfigError, ModelConfig, TrainConfig


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"Unknown key\(s\) \['encoder_unit'\] for \[model\]"):
        Config.from_dict({"model": {"encoder_unit": 3}})


def test_unknown_section_is_named():
    with pytest.raises(ConfigError, match=r"Unknown section\(s\) \['modle'\]"):
        Config.from_dict({"modle": {}})


def test_bad_literal_value():
    with pytest.raises(ConfigError, match=r"model.encoder must be one of .*Received: 'blstm'"):
        ModelConfig(encoder="blstm")


def test_wrong_type():
    with pytest.raises(ConfigError, match="model.encoder_units must be an integer"):
        ModelConfig(encoder_units="256")


def test_max_shapes_is_not_negative():
    with pytest.raises(ConfigError, match=r"data.max_shapes must be 0 \(no limit\) or more. Received: -1"):
        Config.from_dict({"data": {"max_shapes": -1}})
    assert Config.from_dict({"data": {"max_shapes": 6}}).data.max_shapes == 6


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        ModelConfig().encoder_units = 3


def test_round_trip_json_and_toml(tmp_path):
    config = Config().replace(model={"encoder": "bigru", "decoder": "gru", "encoder_units": 8, "decoder_units": 16},
                              train={"epochs": 2})
    (tmp_path / "c.json").write_text(json.dumps(config.to_dict()))
    assert Config.load(tmp_path / "c.json") == config
    (tmp_path / "c.toml").write_text('[model]\nencoder = "bigru"\ndecoder = "gru"\nencoder_units = 8\n'
                                     'decoder_units = 16\n[train]\nepochs = 2\n')
    assert Config.load(tmp_path / "c.toml") == config


def test_bad_config_file_names_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json: not valid JSON"):
        Config.load(path)


def test_default_bridge_resolution():
    assert ModelConfig(encoder="bilstm", decoder="lstm").resolved_bridge == "concat"
    assert ModelConfig(encoder="bilstm", decoder="bilstm", attention="none", decoder_units=128,
                       encoder_units=128).resolved_bridge == "direct"
    assert ModelConfig(encoder="lstm", decoder="lstm", encoder_units=8, decoder_units=8).resolved_bridge == "direct"


def test_objectives_fit_their_decoders():
    assert ModelConfig(decoder="bilstm", decoder_units=128).resolved_objective == "twin"  # with attention
    with pytest.raises(ConfigError, match="attention='luong' is not available with objective='seed'"):
        ModelConfig(decoder="bilstm", attention="luong", decoder_units=128, objective="seed")
    with pytest.raises(ConfigError, match=r"objective='twin' does not fit decoder='lstm'; it takes one of "
                                          r"\['autoregressive'\]"):
        ModelConfig(objective="twin")


def test_benchmark_recipes_load():
    """The G2P recipe files users run must stay valid configs (a typo would only show at run time)."""
    recipes = Path(__file__).resolve().parents[1] / "benchmarks" / "g2p_cmudict"
    quick = Config.load(recipes / "quick.toml")
    main = Config.load(recipes / "main.toml")
    assert quick.train.label_smoothing == 0.1 and not quick.model.input_feeding
    assert main.model.encoder_layers == 2 and main.train.lr_schedule == "cosine" and not main.model.input_feeding
    assert main.train.learning_rate == 0.004
    assert quick.train.learning_rate == 0.004 and quick.train.batch_size == 64
    assert quick.train.patience == 0  # the cosine schedule, not early stopping, ends the quick run
    members = {path.stem: Config.load(path) for path in recipes.glob("ensemble-*.toml")}
    assert sorted(members) == ["ensemble-feed", "ensemble-gru", "ensemble-lstm", "ensemble-nols"]
    # the ensemble was measured with quick.toml (then at batch 128 and patience 3) at learning rate
    # 0.002 and three variants of it, one change each
    base = members["ensemble-lstm"]
    assert quick.train.time_limit_minutes == 17.5  # + the joint-sequence model's 2.1 min: under 20 in all
    assert base == dataclasses.replace(quick, train=dataclasses.replace(quick.train, learning_rate=0.002,
                                                                        batch_size=128, patience=3,
                                                                        time_limit_minutes=18))
    assert members["ensemble-feed"] == dataclasses.replace(base, model=dataclasses.replace(base.model,
                                                                                           input_feeding=True))
    assert members["ensemble-nols"] == dataclasses.replace(base, train=dataclasses.replace(base.train,
                                                                                           label_smoothing=0.0))
    assert members["ensemble-gru"] == dataclasses.replace(base, model=dataclasses.replace(base.model,
                                                                                          encoder="bigru",
                                                                                          decoder="gru"))
    # run.sh main-pair: the two main models measured together (21.39 dev WER), one at each learning rate
    second = Config.load(recipes / "main-b.toml")
    assert second == dataclasses.replace(main, train=dataclasses.replace(main.train, learning_rate=0.002))
    # every model a run.sh recipe trains together is a recipe file that loads
    groups = re.findall(r"^  ([a-z-]+)\) members=\(([^)]*)\)", (recipes / "run.sh").read_text(), flags=re.M)
    assert [name for name, _ in groups] == ["main-pair", "main-two", "ensemble"]
    # run.sh main-two: main.toml and the same with another training seed (dev 20.10 with the joint model)
    assert Config.load(recipes / "main-seed2.toml") == dataclasses.replace(main, train=dataclasses.replace(
        main.train, seed=2))
    for _, group in groups:
        for member in group.split():
            Config.load(recipes / f"{member}.toml")


@pytest.mark.parametrize(("patience", "bad_epochs", "stops"),
                         [(3, 2, False), (3, 3, True), (0, 0, False), (0, 50, False)])
def test_patience_zero_never_stops_early(patience, bad_epochs, stops):
    assert TrainConfig(patience=patience).stops_early(bad_epochs) is stops


def test_negative_patience_is_rejected():
    with pytest.raises(ConfigError, match="train.patience must be 0"):
        TrainConfig(patience=-1)
