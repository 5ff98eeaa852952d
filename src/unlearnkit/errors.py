"""The exceptions users see.

Every expected failure (bad input, missing data, corrupted files, an output
that cannot be written) raises an :class:`UnlearnkitError` with a one-line
message naming the problem; the CLI prints it and exits 2. The subclasses say
which kind of thing was wrong, so Python callers can catch just that kind;
``except UnlearnkitError`` catches them all. docs/errors.md lists them.
"""


class UnlearnkitError(Exception):
    """A user-facing error: the message is one line naming the problem."""


class DataError(UnlearnkitError):
    """Input data is unusable: a dataset, an ``.npz`` file, an index (forget/exclude) file."""


class ConfigError(UnlearnkitError):
    """A parameter, option or configuration value is out of range or of the wrong type."""


class RunError(UnlearnkitError):
    """A run directory (``run.json``, weights, side files) is missing, invalid or corrupted."""


class OutputError(UnlearnkitError):
    """A file or directory cannot be written (permissions, read-only, disk full), or
    would replace an existing one without ``overwrite``."""


class BusyError(UnlearnkitError):
    """Another live process holds the lock of the directory being written."""


def validation_problems(error: Exception) -> list[tuple[tuple, str]]:
    """``(location, message)`` for every problem of a pydantic ``ValidationError``, in plain words.

    The location is pydantic's tuple of keys and list positions; an unknown key says
    ``unknown key``, a missing one ``required key is missing``, and pydantic's
    ``Value error, `` prefix (from our own validators) is dropped.
    """
    out = []
    for err in error.errors():  # type: ignore[attr-defined]  (a pydantic ValidationError)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        out.append((tuple(err["loc"]), msg))
    return out


def validation_message(error: Exception, *, whole: str = "value", first_only: bool = False) -> str:
    """A pydantic ``ValidationError`` as one line: ``a.b: message; c: message``.

    ``whole`` names a problem with the object itself (an empty location); ``first_only``
    keeps the first problem and counts the rest (``(and 2 more)``).
    """
    parts = [f"{'.'.join(str(p) for p in loc) or whole}: {msg}" for loc, msg in validation_problems(error)]
    if first_only and len(parts) > 1:
        return f"{parts[0]} (and {len(parts) - 1} more)"
    return "; ".join(parts)
