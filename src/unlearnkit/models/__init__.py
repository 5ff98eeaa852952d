"""Models: a registry of builders returning :class:`Classifier` (``embed`` + ``head``)."""

from unlearnkit.models.base import MODELS, Classifier, build_model

from unlearnkit.models import cnn, ensemble, mlp, resnet, text  # noqa: F401,E402  (registers them)

__all__ = ["MODELS", "Classifier", "build_model"]
