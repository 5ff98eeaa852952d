"""Import every module of a package so that their registry decorators run.

Adding a dataset, model, method or CLI command is then one new file: no list
to edit.
"""

from __future__ import annotations

import importlib
import pkgutil


def import_submodules(package_name: str, package_path: list[str], suffix: str = "") -> None:
    for info in sorted(pkgutil.iter_modules(package_path), key=lambda m: m.name):
        if info.name.startswith("_") or not info.name.endswith(suffix):
            continue
        importlib.import_module(f"{package_name}.{info.name}")
