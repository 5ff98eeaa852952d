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
