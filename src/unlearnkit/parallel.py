"""Executors: run independent work units in-process or as Ray tasks.

A *work unit* is a call ``fn(item)`` (or ``fn(item, context)``) of a
picklable top-level function on a picklable item. Every executor yields
``(item, result)`` pairs as units finish, so a caller can save each result
the moment it exists (resumable jobs lose at most the units in flight).

>>> with get_executor("local") as ex:
...     for item, result in ex.map(math.sqrt, [1, 4, 9], desc="roots"):
...         ...

``context`` is shared by every unit (e.g. the training tensors): the local
executor passes the object itself, Ray stores it once in its object store
instead of shipping it with every task.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from unlearnkit.errors import UnlearnkitError
from unlearnkit.progress import progress_bar

EXECUTORS = ("local", "ray")


def _call(fn: Callable[..., Any], item: Any, context: Any) -> Any:
    return fn(item) if context is None else fn(item, context)


def _unit_name(item: Any) -> str:
    text = repr(item)
    return text if len(text) <= 80 else text[:77] + "..."


class Executor:
    """Runs work units; use as a context manager so that :meth:`close` runs."""

    name = "executor"

    def map(
        self,
        fn: Callable[..., Any],
        items: Iterable[Any],
        *,
        context: Any = None,
        desc: str = "work",
        quiet: bool = True,
    ) -> Iterator[tuple[Any, Any]]:
        """Yield ``(item, fn(item[, context]))`` for every item, in order of completion."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what this executor started (nothing for the local one)."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor(Executor):
    """Runs the units on this machine, with a rich progress bar: one after another in this
    process (``workers=1``), or on ``workers`` processes of a pool started on first use and kept
    until :meth:`close` (``spawn``ed, so that no OpenMP state is forked). A pool worker that dies
    makes :meth:`map` raise :class:`UnlearnkitError` naming the units then in flight (the dead one
    among them; the pool breaks for all, so which one is not known); an exception raised by the
    function is re-raised as it is, as in-process."""

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise UnlearnkitError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self._pool: Any = None

    def map(self, fn, items, *, context=None, desc="work", quiet=True):
        items = list(items)
        with progress_bar(quiet) as bar:
            task = bar.add_task(desc, total=len(items), info="" if self.workers == 1 else f"{self.workers} processes")
            if self.workers == 1 or len(items) < 2:
                for item in items:
                    result = _call(fn, item, context)
                    bar.advance(task)
                    yield item, result
                return
            yield from self._pooled(fn, items, context, desc, bar, task)

    def _pooled(self, fn, items, context, desc, bar, task):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from concurrent.futures.process import BrokenProcessPool

        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        def lost(items: list[Any]) -> UnlearnkitError:
            # Which of the units in flight killed its worker is not known: the pool breaks for all.
            self.close()  # the next map starts a fresh pool
            names = ", ".join(_unit_name(i) for i in items)
            return UnlearnkitError(f"{desc}: a worker process died; the units in flight were lost ({names})")

        pending = {}
        for item in items:
            try:
                pending[self._pool.submit(_call, fn, item, context)] = item
            except BrokenProcessPool:  # a unit already submitted killed its worker
                if not pending:
                    raise lost([item]) from None
                break
        try:
            for future in as_completed(pending):
                item = pending.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    raise lost([item, *pending.values()]) from None
                bar.advance(task)
                yield item, result
        finally:
            for future in pending:  # after an error or an early exit
                future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayExecutor(Executor):
    """Runs every unit as a Ray task, on a local Ray or on the cluster at ``address``.

    Each task reserves ``task_cpus`` CPUs (and ``task_gpus`` GPUs). A task
    whose worker dies is retried ``max_retries`` times by Ray; if it still
    fails, or the function raises, :meth:`map` raises :class:`UnlearnkitError`
    naming the unit and cancels the units still running. Ray is started (and
    later shut down) only if it is not running in this process already.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        *,
        task_cpus: float = 1,
        task_gpus: float = 0,
        max_retries: int = 1,
    ) -> None:
        try:
            import ray
        except ImportError:  # pragma: no cover - ray is a dependency
            raise UnlearnkitError("--executor ray needs the ray package (pip install ray)") from None
        self._ray = ray
        self.address = address
        self.task_cpus, self.task_gpus, self.max_retries = task_cpus, task_gpus, max_retries
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is None:
                kwargs["num_cpus"] = num_cpus
            try:
                ray.init(address=address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                where = f"at {address}" if address else "locally"
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise UnlearnkitError(f"cannot start or reach Ray {where}: {first}") from None
            self._started = True

    def map(self, fn, items, *, context=None, desc="work", quiet=True):
        ray = self._ray
        remote = ray.remote(_call).options(
            num_cpus=self.task_cpus, num_gpus=self.task_gpus, max_retries=self.max_retries
        )
        ctx = ray.put(context) if context is not None else None
        pending = {remote.remote(fn, item, ctx): item for item in items}
        try:
            with progress_bar(quiet) as bar:
                task = bar.add_task(desc, total=len(pending), info="ray")
                while pending:
                    done, _ = ray.wait(list(pending), num_returns=1)
                    ref = done[0]
                    item = pending.pop(ref)
                    result = self._get(ref, item, desc)
                    bar.advance(task)
                    yield item, result
        finally:
            for ref in pending:  # stop what is still running after an error or an early exit
                ray.cancel(ref, force=True)

    def _get(self, ref: Any, item: Any, desc: str) -> Any:
        exc = self._ray.exceptions
        try:
            return self._ray.get(ref)
        except exc.RayTaskError as e:
            cause = e.cause if isinstance(e.cause, BaseException) else None
            msg = f"{type(cause).__name__}: {cause}" if cause is not None else str(e).splitlines()[0]
            raise UnlearnkitError(f"{desc}: unit {_unit_name(item)} failed on Ray ({msg})") from None
        except exc.RayError as e:
            raise UnlearnkitError(
                f"{desc}: unit {_unit_name(item)} was lost on Ray after {self.max_retries} "
                f"retr{'y' if self.max_retries == 1 else 'ies'} ({type(e).__name__})"
            ) from None

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False


def get_executor(
    name: str,
    address: str | None = None,
    num_cpus: int | None = None,
    *,
    task_cpus: float = 1,
    task_gpus: float = 0,
    workers: int = 1,
) -> Executor:
    """``local`` (``workers`` processes) or ``ray`` (``address``: an existing cluster;
    ``num_cpus``: size of a local Ray; ``workers`` does not apply: Ray runs as many tasks at
    once as it has CPUs for)."""
    if name == "local":
        if address is not None:
            raise UnlearnkitError("--address is only used with --executor ray")
        return LocalExecutor(workers)
    if name == "ray":
        return RayExecutor(address, num_cpus, task_cpus=task_cpus, task_gpus=task_gpus)
    raise UnlearnkitError(f"unknown executor '{name}'; choose from: {', '.join(EXECUTORS)}")
