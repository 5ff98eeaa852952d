"""Tuned hyperparameters per dataset, model family and forget-set difficulty.

A preset file ``unlearnkit/presets/<dataset>.json`` holds::

    {"_provenance": {"mlp/memorization-high/finetune": {...}, ...},
     "mlp": {"memorization-high": {"finetune": {"lr": 0.1, "epochs": 5}, ...},
             "random": {...}, "*": {...}},
     "*":   {"*": {...}}}

The first level is a model family (a registered model name) or ``*``; the second a
forget-set kind (:data:`KINDS`) or ``*``; the third a method; the fourth its
hyperparameters. Lookup for (model, kind, method) walks :func:`fallback_chain`:
``model/kind``, ``model/*``, ``*/kind``, ``*/*``; the first entry that has the method
wins, else the class defaults. Keys starting with ``_`` are metadata (provenance names
the command, date and the original's recipe; ``collapsed_to`` flags a setting that
reproduces a simpler method).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from unlearnkit.errors import UnlearnkitError
from unlearnkit.io import read_json, read_text, write_json
from unlearnkit.registry import Registry

ANY = "*"
KINDS = (
    "random", "class",
    "memorization-low", "memorization-medium", "memorization-high", "memorization-mix",
    "entanglement-low", "entanglement-medium", "entanglement-high",
)


def preset_kind(kind: str | None) -> str:
    """The preset key of a forget set's ``kind`` (``class-3`` -> ``class``; a set built by a
    memorization proxy, ``score:confidence-high``, counts as ``memorization-high``); ``*``
    for kinds presets do not distinguish (custom, validation)."""
    if not kind:
        return ANY
    if kind.startswith("class"):
        return "class"
    if kind.startswith("score:"):
        kind = "memorization-" + kind.rsplit("-", 1)[-1]
    return kind if kind in KINDS else ANY


def fallback_chain(model: str | None, kind: str | None) -> list[tuple[str, str]]:
    """(model, kind) pairs tried in order, most specific first."""
    k = preset_kind(kind)
    chain = [(model or ANY, k), (model or ANY, ANY), (ANY, k), (ANY, ANY)]
    return list(dict.fromkeys(chain))


def validate_presets(data: Any, source: str, registry: Registry) -> dict[str, Any]:
    """Check a parsed preset file against the method ``registry``; one-line
    :class:`UnlearnkitError` naming the first bad model, kind, method or hyperparameter."""
    from unlearnkit.models import MODELS

    if not isinstance(data, dict):
        raise UnlearnkitError(f"{source}: a preset file is a JSON object of model families")
    for model, kinds in data.items():
        if model.startswith("_"):
            continue
        if model != ANY and model not in MODELS:
            raise UnlearnkitError(f"{source}: unknown model family '{model}'; choose from: {', '.join(MODELS.names())}, *")
        if not isinstance(kinds, dict):
            raise UnlearnkitError(f"{source}: {model}: expected an object of forget-set kinds")
        for kind, methods in kinds.items():
            if kind != ANY and kind not in KINDS:
                raise UnlearnkitError(f"{source}: {model}.{kind}: unknown forget-set kind; choose from: {', '.join(KINDS)}, *")
            if not isinstance(methods, dict):
                raise UnlearnkitError(f"{source}: {model}.{kind}: expected an object of methods")
            for method, params in methods.items():
                if method not in registry:
                    raise UnlearnkitError(f"{source}: {model}.{kind}: unknown method '{method}'")
                if registry.get(method).presets_of:
                    raise UnlearnkitError(f"{source}: {model}.{kind}.{method}: '{method}' runs at "
                                          f"'{registry.get(method).presets_of}''s presets; remove its entry")
                fields = registry.get(method).Params.model_fields
                bad = [k for k in (params or {}) if k not in fields]
                if not isinstance(params, dict) or bad:
                    raise UnlearnkitError(
                        f"{source}: {model}.{kind}.{method}: unknown key '{bad[0] if bad else params}' "
                        f"(valid keys: {', '.join(fields) or 'none'})"
                    )
    return data


@lru_cache(maxsize=32)
def _parse(text: str, source: str, methods: Registry) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UnlearnkitError(f"{source}: invalid JSON: {e.msg} (line {e.lineno})") from None
    return validate_presets(data, source, methods)


def load_presets(dataset: str | None = None, path: str | Path | None = None, *, methods: Registry) -> dict[str, Any]:
    """The presets shipped for ``dataset`` (by its base name; {} when none), or of ``path``,
    validated against ``methods`` (the METHODS registry)."""
    if path is not None:
        p = Path(path)
        return _parse(read_text(p, "preset file"), str(p), methods)  # missing, binary: one line
    if not dataset:
        return {}
    base = dataset.split(":")[0]
    try:
        text = resources.files("unlearnkit").joinpath("presets", f"{base}.json").read_text()
    except (FileNotFoundError, OSError):
        return {}
    return _parse(text, f"presets/{base}.json", methods)


def lookup(dataset: str | None, method: str, model: str | None = None, kind: str | None = None,
           path: str | Path | None = None, *, methods: Registry) -> tuple[dict[str, Any], str | None, dict[str, Any]]:
    """(hyperparameters, which preset applied as ``dataset/model/kind`` or None, its provenance)."""
    presets = load_presets(dataset, path, methods=methods)
    name = (dataset or "").split(":")[0] if path is None else str(path)
    if method in methods and methods.get(method).presets_of:  # an ablation runs at its method's settings
        method = methods.get(method).presets_of
    for m, k in fallback_chain(model, kind):
        entry = presets.get(m, {}).get(k, {})
        if method in entry:
            prov = presets.get("_provenance", {}).get(f"{m}/{k}/{method}", {})
            return dict(entry[method]), f"{name}/{m}/{k}", prov
    return {}, None, {}


def merge_preset(path: str | Path, model: str, kind: str, method: str, params: Mapping[str, Any] | None,
                 provenance: Mapping[str, Any], *, methods: Registry) -> None:
    """Set ``model/kind/method`` in the preset file ``path`` (created if missing, validated if
    not), recording ``provenance`` under ``_provenance["model/kind/method"]``; ``params`` None
    records the provenance only (and drops an entry there was)."""
    path = Path(path)
    data = validate_presets(read_json(path), str(path), methods) if path.exists() else {}
    if kind != ANY and kind not in KINDS:
        raise UnlearnkitError(f"unknown forget-set kind '{kind}' for a preset; choose from: {', '.join(KINDS)}, *")
    entries = data.setdefault(model, {}).setdefault(kind, {})
    if params is None:
        entries.pop(method, None)
    else:
        entries[method] = dict(params)
    data.setdefault("_provenance", {})[f"{model}/{kind}/{method}"] = dict(provenance)
    data = {k: ({kk: dict(sorted(vv.items())) for kk, vv in sorted(v.items())} if not k.startswith("_") else v)
            for k, v in sorted(data.items())}
    data["_provenance"] = dict(sorted(data["_provenance"].items()))
    validate_presets(data, str(path), methods)
    write_json(path, data)
