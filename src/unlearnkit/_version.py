"""The package version, in one place: pyproject.toml, ``unlearnkit.__version__``, run.json and the
bench's unit records all read it from here (so that low layers need not import the package root)."""

__version__ = "0.1.0"
