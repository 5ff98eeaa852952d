"""Bench config validation: every problem on its own line with key and YAML line."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from unlearnkit.errors import UnlearnkitError
from unlearnkit.experiments.config import load_config

GOOD = """\
name: ok
dataset:
  name: digits
model: {name: mlp, width: 16}
training:
  epochs: 3
seeds: 3
forget_sets:
  - kind: random
    size: 0.05
  - kind: memorization
    level: [low, high]
    size: 20
  - kind: class
    class: 3
methods:
  finetune: {epochs: 1}
  neggrad_plus:
rum:
  methods: [finetune]
  variants: [vanilla, shuffle, rum_f]
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(UnlearnkitError) as e:
        load_config(write(tmp_path, text))
    return str(e.value).splitlines()


def test_a_good_config_expands_seeds_levels_and_defaults(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.seeds == [0, 1, 2]
    assert [s.label for s in cfg.forget_specs()] == ["random", "memorization-low", "memorization-high", "class-3"]
    assert cfg.methods == {"finetune": {"epochs": 1}, "neggrad_plus": {}}
    assert cfg.needs_memorization and "memorization" in cfg.score_names
    assert cfg.training.epochs == 3 and cfg.training.lr == 0.05


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("  name: digits\n", "  name: digits\n  colour: red\n", "dataset.colour: unknown key (line 4)"),
        ("width: 16", "width: wide", "model.width: Input should be a valid integer"),
        ("  epochs: 3\n", "  epochs: 0\n", "training.epochs: Input should be greater than or equal to 1 (line 6)"),
        ("level: [low, high]", "level: [low, hihg]", "forget_sets.1.level.1: Input should be 'low', 'medium', 'high' or 'mix' (line 12)"),
        ("    class: 3\n", "", "forget_sets.2: a 'class' forget set needs 'class' (the label to forget) (line 14)"),
        ("  neggrad_plus:\n", "  neggrad_plus:\n  no_such_method: {}\n", "methods.no_such_method: unknown method 'no_such_method'"),
        ("{epochs: 1}", "{lr: -1}", ("methods.finetune: ", "lr: Input should be greater than 0", "(line 17)")),
        ("seeds: 3", "seeds: [1, 1]", "seeds: seeds must be distinct (line 7)"),
    ],
)
def test_each_problem_names_key_and_line(tmp_path, old, new, expected):
    assert old in GOOD
    lines = problems(tmp_path, GOOD.replace(old, new))
    parts = (expected,) if isinstance(expected, str) else expected
    assert any(all(p in ln for p in parts) for ln in lines), lines
    assert all(ln.startswith(str(tmp_path)) for ln in lines)


def test_several_problems_are_all_reported(tmp_path):
    text = GOOD.replace("  name: digits\n", "  name: digits\n  colour: red\n").replace("width: 16", "width: -1")
    lines = problems(tmp_path, text)
    assert len(lines) == 2
    assert "dataset.colour: unknown key (line 4)" in lines[0]
    assert "model.width" in lines[1] and "(line 5)" in lines[1]


def test_missing_data_says_how_to_get_it(tmp_path):
    text = GOOD.replace("  name: digits\n", f"  name: cifar10\n  data_root: {tmp_path}\n")
    lines = problems(tmp_path, text)
    assert any("dataset.name" in ln and "unlearnkit data fetch cifar10" in ln and "(line 3)" in ln for ln in lines), lines


def test_yaml_syntax_error_names_the_line(tmp_path):
    lines = problems(tmp_path, "dataset: {name: digits\nseeds: 2\n")
    assert len(lines) == 1 and "invalid YAML" in lines[0] and "line" in lines[0]


def test_training_seed_is_refused(tmp_path):
    lines = problems(tmp_path, GOOD.replace("  epochs: 3\n", "  epochs: 3\n  seed: 4\n"))
    assert any("training" in ln and "seeds" in ln for ln in lines), lines


@pytest.mark.parametrize("name", ["demo.yaml", "fashion-mnist.yaml", "text.yaml", "gpu-resnet18.yaml", "presets-digits.yaml"])
def test_shipped_configs_are_valid_up_to_data_availability(name):
    path = Path(__file__).parents[1] / "configs" / name
    try:
        cfg = load_config(path)
    except UnlearnkitError as e:  # only a missing dataset is acceptable on this machine
        assert all("unlearnkit data fetch" in ln for ln in str(e).splitlines()), str(e)
        return
    assert cfg.methods and cfg.forget_sets


def test_packaged_demo_config_equals_the_repository_copy():
    packaged = resources.files("unlearnkit").joinpath("configs", "demo.yaml").read_text()
    assert packaged == (Path(__file__).parents[1] / "configs" / "demo.yaml").read_text()


def test_presets_config_tunes_on_the_demos_reserve():
    """The digits presets are tuned on validation sets inside the demo's tuning reserve, so they never
    saw a forget set the demo evaluates: the two configs must agree on everything that decides those sets."""
    root = Path(__file__).parents[1] / "configs"
    demo, presets = load_config(root / "demo.yaml"), load_config(root / "presets-digits.yaml")
    for part in ("dataset", "model", "training", "memorization"):
        assert getattr(demo, part) == getattr(presets, part), part
    assert demo.forget_sets == presets.forget_sets and demo.seeds[0] == presets.seeds[0]
    assert demo.tuning.reserve_input() == presets.tuning.reserve_input() is not None
    assert set(demo.methods) - {"sisa", "imu_uniform"} <= set(presets.tuning.tuned_methods(list(presets.methods)))
