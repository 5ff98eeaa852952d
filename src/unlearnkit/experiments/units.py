"""Work units: every piece of benchmark work, cached under a hash of its inputs.

A :class:`WorkUnit` is ``(kind, inputs, deps)``. Its key is the sha256 of the
kind, the inputs (a JSON-able config fragment), the keys of the units it
depends on and the package version, so a unit's output directory
``ROOT/units/<kind>/<key>/`` is valid exactly as long as nothing it was built
from changed. The directory appears atomically (:func:`unlearnkit.io.atomic_dir`)
with ``unit.json`` in it; a unit whose directory exists is done and is never
redone, so re-running a killed benchmark redoes only the unfinished units.

Handlers (``kind -> function``) are registered with :func:`handler`; the
pipeline's handlers live in :mod:`unlearnkit.experiments.handlers` and
:func:`unlearnkit.experiments.schedule.execute_unit` performs a unit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from unlearnkit._version import __version__
from unlearnkit.io import read_json

DONE = "unit.json"
# kind -> handler(inputs, deps: {name: dependency's directory}, out: directory to fill, opts) -> summary dict
Handler = Callable[[Mapping[str, Any], dict[str, Path], Path, Mapping[str, Any]], dict[str, Any] | None]
HANDLERS: dict[str, Handler] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register the function that performs units of ``kind``."""

    def deco(fn: Handler) -> Handler:
        HANDLERS[kind] = fn
        return fn

    return deco


@dataclass(frozen=True, eq=False)
class WorkUnit:
    """One cacheable piece of work.

    ``inputs`` determine the result and are hashed; ``opts`` (device, executor
    address, quiet) do not change the result and are not hashed. ``driver``
    units run in the bench process itself because they fan out on their own
    (the memorization ensemble uses the executor directly).
    """

    kind: str
    inputs: Mapping[str, Any]
    deps: tuple[tuple[str, "WorkUnit"], ...] = ()
    label: str = ""
    opts: Mapping[str, Any] = field(default_factory=dict)
    driver: bool = False

    @cached_property
    def key(self) -> str:
        """sha256 over kind, inputs, the dependencies' keys and the package version."""
        blob = json.dumps(
            {
                "kind": self.kind,
                "inputs": self.inputs,
                "deps": {name: d.key for name, d in self.deps},
                "version": __version__,
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    def path(self, root: str | Path) -> Path:
        return Path(root) / "units" / self.kind / self.key[:20]

    def done(self, root: str | Path) -> bool:
        return (self.path(root) / DONE).exists()

    def record(self, root: str | Path) -> dict[str, Any]:
        """The finished unit's ``unit.json`` (kind, inputs, summary, seconds)."""
        return read_json(self.path(root) / DONE)

    def __repr__(self) -> str:
        return f"WorkUnit({self.kind}, {self.label or self.key[:12]})"


def closure(units: Iterable[WorkUnit]) -> list[WorkUnit]:
    """Every unit and all its dependencies, once each (by key), dependencies first."""
    seen: dict[str, WorkUnit] = {}

    def visit(u: WorkUnit) -> None:
        if u.key in seen:
            return
        for _, d in u.deps:
            visit(d)
        seen[u.key] = u

    for u in units:
        visit(u)
    return list(seen.values())
