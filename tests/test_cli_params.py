"""The CLI's one KEY=VALUE parser: one typing rule, three scope modes, one-line errors."""

import pytest

from unlearnkit.cli.params import parse_assignments, parse_value
from unlearnkit.errors import UnlearnkitError


@pytest.mark.parametrize("text, expected", [
    ("3", 3), ("-2", -2), ("0.5", 0.5), ("1e-3", 1e-3), ("true", True), ("False", False),
    ("none", None), ("null", None), ("sgd", "sgd"), (" 7 ", 7), ("", ""),
])
def test_parse_value_types(text, expected):
    got = parse_value(text)
    assert got == expected and type(got) is type(expected)


def test_unscoped_keeps_dots_in_keys():
    assert parse_assignments(["lr=0.01", "epochs=3", "a.b=x"]) == {"lr": 0.01, "epochs": 3, "a.b": "x"}
    assert parse_assignments(None) == {}


def test_optional_scope_nests():
    got = parse_assignments(["lr=0.01", "high.lr=0.1", "high.epochs=2"], scope="optional")
    assert got == {"lr": 0.01, "high": {"lr": 0.1, "epochs": 2}}


def test_required_scope():
    assert parse_assignments(["finetune.epochs=5"], scope="required") == {"finetune": {"epochs": 5}}
    with pytest.raises(UnlearnkitError, match=r"--set 'epochs=5': expected METHOD.KEY=VALUE \(e.g. x.y=1\)"):
        parse_assignments(["epochs=5"], scope="required", scope_name="METHOD", hint=lambda: "e.g. x.y=1")


@pytest.mark.parametrize("items, scope, message", [
    (["lr"], "none", "expected KEY=VALUE"),
    (["=3"], "none", "expected KEY=VALUE"),
    ([".lr=3"], "optional", "expected KEY=VALUE or SCOPE.KEY=VALUE"),
    (["high=1", "high.lr=2"], "optional", "'high' is used both as a key and as a scope"),
    (["high.lr=2", "high=1"], "optional", "'high' is used both as a key and as a scope"),
])
def test_bad_items_are_one_line_errors(items, scope, message):
    with pytest.raises(UnlearnkitError, match=message) as e:
        parse_assignments(items, "--set", scope=scope)
    assert "\n" not in str(e.value)


def test_hint_only_called_on_error():
    def boom() -> str:
        raise AssertionError("hint called")

    assert parse_assignments(["a=1"], hint=boom) == {"a": 1}
