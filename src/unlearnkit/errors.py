"""The one exception type users see.

Every expected failure (bad input, missing data, corrupted files) raises
:class:`UnlearnkitError` with a one-line message; the CLI prints it and exits 2.
"""


class UnlearnkitError(Exception):
    """A user-facing error: the message is one line naming the problem."""
