"""Unlearning methods: one file per method, each registered in ``METHODS``.

Every module in this package is imported automatically, so adding a method is
one new file with a ``@METHODS.register("name")`` class (see ``base.py``).
"""

from unlearnkit.methods.base import METHODS, Method, MethodContext, MethodOutput, Params, preset_for
from unlearnkit.methods.api import UnlearnOutcome, retain_positions, unlearn, unlearn_from_run, unlearn_run
from unlearnkit.plugins import import_submodules

import_submodules(__name__, __path__)

__all__ = [
    "METHODS",
    "Method",
    "MethodContext",
    "MethodOutput",
    "Params",
    "UnlearnOutcome",
    "preset_for",
    "retain_positions",
    "unlearn",
    "unlearn_from_run",
    "unlearn_run",
]
