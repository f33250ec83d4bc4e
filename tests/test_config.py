from dataclasses import dataclass, field
from typing import Literal

import pytest

from partonomy.config import apply_overrides_to_dict, from_dict, load_config, to_dict
from partonomy.errors import ConfigError


@dataclass
class Inner:
    width: int = 4
    act: Literal["relu", "gelu"] = "relu"


@dataclass
class Outer:
    lr: float = 1e-3
    name: str | None = None
    layers: list[int] = field(default_factory=lambda: [1, 2])
    inner: Inner = field(default_factory=Inner)


def test_from_dict_builds_nested_and_coerces_ints_to_float():
    cfg = from_dict(Outer, {"lr": 1, "inner": {"width": 8}})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.inner.width == 8
    assert to_dict(cfg)["inner"] == {"width": 8, "act": "relu"}


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ConfigError, match=r"unknown key 'widht'.*Did you mean 'width'"):
        from_dict(Outer, {"inner": {"widht": 3}}, source="x.yaml")


def test_wrong_type_and_literal():
    with pytest.raises(ConfigError, match="expected an integer"):
        from_dict(Outer, {"inner": {"width": "wide"}})
    with pytest.raises(ConfigError, match="not one of"):
        from_dict(Outer, {"inner": {"act": "tanh"}})


def test_load_config_with_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 0.5\ninner:\n  width: 2\n")
    cfg = load_config(Outer, path, ["inner.act=gelu", "layers=[3, 4]"])
    assert cfg.lr == 0.5
    assert cfg.inner.act == "gelu"
    assert cfg.layers == [3, 4]
    with pytest.raises(ConfigError, match=r"key\.sub=value"):
        load_config(Outer, path, ["nonsense"])


def test_apply_overrides_to_dict():
    data = {"a": {"b": 1}}
    apply_overrides_to_dict(data, ["a.b=2", "c=true"])
    assert data == {"a": {"b": 2}, "c": True}
