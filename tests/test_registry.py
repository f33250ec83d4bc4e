import pytest

from partonomy.registries import ALL, MODELS
from partonomy.registry import Registry, UnknownNameError


def test_register_and_get():
    reg: Registry[object] = Registry("thing")

    @reg.register("alpha")
    def alpha() -> str:
        return "a"

    assert reg.get("alpha") is alpha
    assert "alpha" in reg
    assert reg.names() == ["alpha"]


def test_duplicate_name_is_an_error():
    reg: Registry[object] = Registry("thing")
    reg.add("x", 1)
    with pytest.raises(ValueError, match="registered twice"):
        reg.add("x", 2)


def test_did_you_mean():
    reg: Registry[object] = Registry("model")
    reg.add("oracle", 1)
    reg.add("random", 2)
    with pytest.raises(UnknownNameError) as info:
        reg.get("oracel")
    message = str(info.value)
    assert "Did you mean: oracle" in message
    assert "Available: oracle, random" in message


def test_lazy_entry_imported_on_first_use():
    reg: Registry[object] = Registry("function")
    reg.add("dumps", "json:dumps")
    import json

    assert reg.get("dumps") is json.dumps


def test_project_registries_list_without_importing_entries():
    assert set(ALL) == {"families", "models", "tasks", "question-types", "metrics", "sources"}
    assert {"oracle", "null", "random", "whole_object", "plum"} <= set(MODELS.names())
