"""Work units: every piece of benchmark work, cached under a hash of its inputs.

A :class:`WorkUnit` is ``(kind, inputs, deps)``. Its key is the sha256 of the
kind, the inputs (a JSON-able config fragment), the keys of the units it
depends on and the package version, so a unit's output directory
``ROOT/units/<kind>/<key>/`` is valid exactly as long as nothing it was built
from changed. The directory appears atomically (:func:`unlearnkit.io.atomic_dir`)
with ``unit.json`` in it; a unit whose directory exists is done and is never
redone, so re-running a killed benchmark redoes only the unfinished units.

Handlers (``kind -> function``) are registered with :func:`handler`; the
pipeline's handlers live in :mod:`unlearnkit.experiments.runner`.
:func:`execute_unit` is the one function executors ship to workers: it takes
only the unit and the root path, so it runs the same in-process or as a Ray task.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch

from unlearnkit._version import __version__
from unlearnkit.errors import UnlearnkitError
from unlearnkit.io import atomic_dir, read_json, write_json

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


def execute_unit(unit: WorkUnit, root: str | Path) -> dict[str, Any]:
    """Perform ``unit`` unless it is already done; returns its record.

    A failure inside the handler is returned as ``{"error": message}`` (with
    the traceback's last line for unexpected exceptions) so that one failed
    unit does not stop independent ones; interrupts (Ctrl-C, a killed
    process) propagate and leave no partial directory behind.
    """
    # Workers of a remote executor import this module alone; the pipeline's
    # handlers register themselves when the runner is imported.
    import unlearnkit.experiments.runner  # noqa: F401

    out = unit.path(root)
    if (out / DONE).exists():
        return read_json(out / DONE)
    if unit.kind not in HANDLERS:
        return {"error": f"no handler for work unit kind '{unit.kind}'"}
    deps = {name: d.path(root) for name, d in unit.deps}
    # The thread count changes floating-point reduction order, hence results: fix it per unit.
    threads = torch.get_num_threads()
    torch.set_num_threads(int(unit.opts.get("threads", threads)))
    start, cpu = time.perf_counter(), time.process_time()
    try:
        with atomic_dir(out, overwrite=True, marker=DONE) as tmp:
            summary = HANDLERS[unit.kind](unit.inputs, deps, tmp, unit.opts) or {}
            record = {
                "kind": unit.kind,
                "key": unit.key,
                "label": unit.label,
                "inputs": unit.inputs,
                "deps": {name: d.key for name, d in unit.deps},
                "version": __version__,
                "seconds": time.perf_counter() - start,
                # CPU time of this process (all threads): a load-independent measure of the unit's
                # cost, used to estimate a benchmark's wall time on an idle machine.
                "cpu_seconds": time.process_time() - cpu,
                "summary": summary,
            }
            write_json(tmp / DONE, record)
    except UnlearnkitError as e:
        return {"error": str(e)}
    except Exception as e:  # a bug or a library failure: keep the other units going
        last = traceback.format_exception_only(type(e), e)[-1].strip()
        return {"error": f"unexpected {last}"}
    finally:
        torch.set_num_threads(threads)
    return record
