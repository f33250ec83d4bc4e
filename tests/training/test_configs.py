"""Every shipped config in configs/ loads, validates and opens with its purpose and command."""

from __future__ import annotations

from pathlib import Path

import pytest

from partonomy.config import from_dict
from partonomy.errors import ConfigError
from partonomy.training.config import TrainConfig, dump_train_config, load_train_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_the_expected_configs_ship() -> None:
    names = {p.name for p in CONFIGS}
    assert {
        "tiny_synth.yaml",
        "plum_stage1_13b.yaml",
        "plum_stage2_13b.yaml",
        "plum_7b_stage1.yaml",
        "plum_7b_stage2.yaml",
    } <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads_and_validates(path: Path) -> None:
    cfg = load_train_config(path)
    # A header comment block with the purpose and the exact command.
    head = path.read_text().splitlines()
    assert head[0].startswith("# ") and len(head[0]) > 20
    commands = [line for line in head if line.startswith("#") and "partonomy " in line]
    assert commands, f"{path.name}: no command in the header comment"
    # Dumping and reloading gives the same config (what checkpoints store).
    import yaml

    assert from_dict(TrainConfig, yaml.safe_load(dump_train_config(cfg))) == cfg
    if cfg.data.kind == "mixture":
        from partonomy.data.mixture import MixtureConfig

        from_dict(MixtureConfig, cfg.data.mixture, source=f"{path.name}: data.mixture")
    else:
        assert cfg.data.qa.files
    if "stage1" in path.name:
        assert cfg.loss.seg_loss == "dice" and cfg.data.kind == "mixture"
    if "stage2" in path.name:
        assert cfg.loss.seg_loss == "focal_tversky" and cfg.init_from
        assert len(cfg.data.qa.files) == 3  # every split trained, not only the last
    if cfg.family == "segllm" and ("13b" in path.name or "7b" in path.name):
        # SegLLM's recipe: full fine-tuning, lr 2e-6 (stage 1) / 2e-5 (PARTONOMY ft), CLIP frozen
        assert cfg.trainable.language_model == "full" and not cfg.trainable.vision_tower
        assert cfg.optim.lr == (2e-6 if "stage1" in path.name else 2e-5)
    elif "13b" in path.name or "7b" in path.name:
        assert cfg.trainable.language_model == "lora"
        assert (cfg.trainable.lora.r, cfg.trainable.lora.alpha) == (8, 16)
        assert (cfg.optim.lr, cfg.optim.betas, cfg.optim.warmup_steps) == (3e-4, (0.9, 0.95), 100)


def test_overrides_and_unknown_keys(tmp_path: Path) -> None:
    path = CONFIGS[0]
    cfg = load_train_config(path, ["max_steps=7", "optim.lr=0.01", "data.micro_batch_size=3"])
    assert (cfg.max_steps, cfg.optim.lr, cfg.data.micro_batch_size) == (7, 0.01, 3)
    with pytest.raises(ConfigError, match="Did you mean 'max_steps'"):
        load_train_config(path, ["max_step=7"])
    with pytest.raises(ConfigError, match="engine"):
        load_train_config(path, ["distributed.engine=horovod"])
    with pytest.raises(ConfigError, match="max_steps must be positive"):
        load_train_config(path, ["max_steps=0"])
