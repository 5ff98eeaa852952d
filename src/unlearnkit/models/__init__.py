"""Models: a registry of builders returning :class:`Classifier` (``embed`` + ``head``).

Every module in this package that registers a builder with
``@MODELS.register(name)`` is imported automatically.
"""

from unlearnkit.models.base import MODELS, Classifier, build_model
from unlearnkit.plugins import import_submodules

import_submodules(__name__, __path__)

__all__ = ["MODELS", "Classifier", "build_model"]
