"""Running a plan's units: wave by wave, through an executor, skipping what is done.

:func:`execute_unit` is the one function executors ship to workers: it takes only the unit
and the root path, so it runs the same in-process or as a Ray task. Importing this module
registers the pipeline's handlers (it imports :mod:`.handlers`), so a worker that unpickles
:func:`execute_unit` has them.
"""

from __future__ import annotations

import time
import traceback
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from unlearnkit._version import __version__
from unlearnkit.errors import UnlearnkitError
from unlearnkit.experiments import handlers, population  # noqa: F401  (register the pipeline's unit handlers)
from unlearnkit.experiments.units import DONE, HANDLERS, WorkUnit
from unlearnkit.io import atomic_dir, read_json, write_json
from unlearnkit.parallel import get_executor


def execute_unit(unit: WorkUnit, root: str | Path) -> dict[str, Any]:
    """Perform ``unit`` unless it is already done; returns its record.

    A failure inside the handler is returned as ``{"error": message}`` (with
    the traceback's last line for unexpected exceptions) so that one failed
    unit does not stop independent ones; interrupts (Ctrl-C, a killed
    process) propagate and leave no partial directory behind.
    """
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


def execute(
    units: list[WorkUnit],
    root: Path,
    executor: str = "local",
    address: str | None = None,
    quiet: bool = True,
    log: Callable[[str], None] = lambda msg: None,
    threads: int = 1,
    workers: int = 1,
) -> tuple[dict[str, str], int]:
    """Run every unit not yet done, wave by wave (a wave = units whose dependencies are done).

    Independent units of a wave go through the executor; ``driver`` units run
    here. A unit that fails is recorded and its dependents are skipped; a
    wave interrupted by a lost worker is retried once (finished units are
    kept), then what is still missing is reported. Returns
    (failures {unit label: message}, number of units run).
    """
    todo = [u for u in units if not u.done(root)]
    failed: dict[str, str] = {}  # unit key -> message
    labels: dict[str, str] = {}
    attempts: Counter[str] = Counter()
    ran = 0
    wave = 0
    fn = partial(execute_unit, root=str(root))
    try:
        ex = get_executor(executor, address, task_cpus=threads, workers=workers)
    except UnlearnkitError:
        raise
    except Exception as e:  # e.g. Ray's own start-up timeouts raise a bare Exception
        raise UnlearnkitError(f"cannot start the {executor} executor: {str(e).splitlines()[0]}") from None
    with ex:
        while todo:
            for u in todo:
                bad = [d for _, d in u.deps if d.key in failed]
                if bad:
                    failed[u.key] = f"skipped: {bad[0].kind} '{bad[0].label}' failed"
                    labels[u.key] = f"{u.kind} {u.label}"
            todo = [u for u in todo if u.key not in failed]
            ready = [u for u in todo if all(d.done(root) for _, d in u.deps)]
            if not ready:
                break
            wave += 1
            kinds = ", ".join(f"{n} {k}" for k, n in Counter(u.kind for u in ready).items())
            log(f"wave {wave}: {len(ready)} units ({kinds})")

            def record(u: WorkUnit, res: Mapping[str, Any]) -> None:
                if "error" in res:
                    failed[u.key] = res["error"]
                    labels[u.key] = f"{u.kind} {u.label}"
                    log(f"  failed: {u.kind} {u.label}: {res['error']}")
                for w in res.get("summary", {}).get("warnings", []):
                    log(f"  warning ({u.kind}): {w}")

            for u in [u for u in ready if u.driver]:
                record(u, execute_unit(u, root))
            remote = [u for u in ready if not u.driver]
            try:
                for u, res in ex.map(fn, remote, desc=f"wave {wave}", quiet=quiet):
                    record(u, res)
            except UnlearnkitError as e:
                # A lost worker: whatever finished is on disk; retry the rest once.
                for u in remote:
                    if not u.done(root) and u.key not in failed:
                        attempts[u.key] += 1
                        if attempts[u.key] > 1:
                            failed[u.key] = str(e)
                            labels[u.key] = f"{u.kind} {u.label}"
                log(f"  wave {wave} interrupted ({e}); retrying what is unfinished")
            ran += sum(u.done(root) for u in ready)
            todo = [u for u in todo if not u.done(root)]
    skipped = sum(v.startswith("skipped: ") for v in failed.values())
    if skipped:
        log(f"{skipped} units skipped because a unit they depend on failed")
    return {labels[k]: v for k, v in failed.items()}, ran
