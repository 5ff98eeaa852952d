"""``unlearnkit methods [NAME]``, ``models``, ``scores``, ``datasets``: what exists, from the registries."""

from __future__ import annotations

from pathlib import Path

from unlearnkit.difficulty import SCORES
from unlearnkit.methods import METHODS
from unlearnkit.methods.presets import lookup
from unlearnkit.models import MODELS


def _rows(out: str) -> dict[str, list[str]]:
    """Table rows of rich output keyed by their first cell."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) > 1 and cells[0]:
            rows[cells[0]] = cells[1:]
    return rows


def test_methods_lists_every_registered_method(cli) -> None:
    code, out, _ = cli("methods")
    assert code == 0
    rows = _rows(out)
    assert set(METHODS.names()) <= set(rows)
    assert rows["retrain"][0] == "yes" and rows["finetune"][0] == "no"  # exact or not
    assert "mask_ratio" in rows["salun"][2]


def test_method_shows_ranges_defaults_and_the_preset_that_applies(cli) -> None:
    code, out, _ = cli("methods", "salun")
    assert code == 0
    rows = _rows(out)
    assert rows["mask_ratio"][:5] == ["float", "(0, 1]", "0.5", "0.5", "default"]
    assert rows["momentum"][1] == "[0, 1)"

    preset, applied, _ = lookup("fashion-mnist", "salun", "mlp", "memorization-high", methods=METHODS)
    code, out, _ = cli("methods", "salun", "-d", "fashion-mnist", "-m", "mlp", "--forget-kind", "memorization-high")
    assert code == 0 and applied and preset
    rows = _rows(out)
    for key, value in preset.items():
        assert rows[key][3:5] == [str(value), "preset"], rows[key]
    assert f": {applied}" in out


def test_method_without_a_preset_says_class_defaults(cli) -> None:
    code, out, _ = cli("methods", "finetune", "--dataset", "tabular:wine")
    assert code == 0
    assert "none applies, class defaults" in out
    assert all(r[4] == "default" for k, r in _rows(out).items() if k in METHODS.get("finetune").Params.model_fields)


def test_unknown_method_is_one_line(cli) -> None:
    code, out, err = cli("methods", "nope")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "unknown method 'nope'" in err


def test_models_scores_datasets(cli) -> None:
    code, out, _ = cli("models")
    rows = _rows(out)
    assert code == 0 and set(MODELS.names()) <= set(rows)
    assert "width=256" in rows["mlp"][0]

    code, out, _ = cli("scores")
    rows = _rows(out)
    assert code == 0 and set(SCORES.names()) <= set(rows)
    assert rows["confidence"][0] == "low" and rows["loss"][0] == "high"

    code, out, _ = cli("datasets")
    lines = out.splitlines()
    assert code == 0 and "digits  available" in lines
    assert any(line.strip() == "/usr/share/datasets/cifar10" for line in lines)  # a place a line, whole


def test_data_list_prints_every_place_whole_at_80_columns(cli, monkeypatch, tmp_path):
    from rich.console import Console

    from unlearnkit.cli import data_cmd

    monkeypatch.chdir(tmp_path)
    root = Path("a-rather-long-directory-name-with-dashes-and-more-words/sub-dir")  # 4 + 71 columns with /mnist
    narrow = Console(width=80, force_terminal=False)
    monkeypatch.setattr(data_cmd, "console", narrow)
    with narrow.capture() as cap:
        code, _, err = cli("data", "list", "mnist", "--data-root", root)
    assert code == 0, err
    lines = cap.get().splitlines()
    assert max(map(len, lines)) <= 80
    for place in (root / "mnist", root):
        assert f"    {place}" in lines
