"""The SISA ensemble as a registered model (``sisa_ensemble``), so that a SISA
run is a run like any other: ``load_run`` rebuilds it from ``run.json`` and
``evaluate`` scores it.

It holds the S shard models (``members``, all of one registered base model).

- ``forward(x) -> [n, C]`` returns log-probabilities of the aggregated prediction:

  * ``mean``: ``log( mean_s p_s(x) )`` (mean probability over shards);
  * ``vote``: ``log q`` with ``q = (votes + 0.5 * mean_s p_s) / (S + 0.5)``, where
    ``votes[c]`` counts the shards whose argmax is ``c``. ``q`` sums to 1, its
    argmax is the majority vote, ties broken by the mean probability and then
    by the lowest class index (deterministic).

- ``embed(x) -> [n, S * d]``: the shard embeddings concatenated in shard order.
- ``head``: there is no single linear head on top of ``embed``; reading it raises
  a one-line :class:`UnlearnkitError` (so head-based methods such as IMU refuse a
  SISA run clearly; unlearn it with ``--method sisa``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.errors import UnlearnkitError
from unlearnkit.models.base import MODELS, Classifier, build_model

AGGREGATIONS = ("vote", "mean")
# Weight of the mean probability in the vote score: < 1 so it only breaks ties.
_TIE_WEIGHT = 0.5


class SisaEnsemble(Classifier):
    """S shard classifiers aggregated by majority vote or mean probability."""

    def __init__(self, members: list[Classifier], aggregation: str = "vote") -> None:
        super().__init__()
        if aggregation not in AGGREGATIONS:
            raise UnlearnkitError(f"unknown SISA aggregation '{aggregation}'; choose vote or mean")
        self.members = nn.ModuleList(members)
        self.aggregation = aggregation

    @property
    def head(self) -> nn.Linear:  # type: ignore[override]
        raise UnlearnkitError(
            "the SISA ensemble has no single linear head (it aggregates "
            f"{len(self.members)} shard models); head-based methods such as imu cannot run on it: "
            "unlearn a SISA run with `--method sisa`"
        )

    def member_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """Per-shard log-probabilities ``[S, n, C]``."""
        return torch.stack([F.log_softmax(m(x), dim=1) for m in self.members])

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([m.embed(x) for m in self.members], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logp = self.member_log_probs(x)  # [S, n, C]
        s = logp.shape[0]
        # log of the mean probability, computed stably in log space.
        log_mean = torch.logsumexp(logp, dim=0) - math.log(s)
        if self.aggregation == "mean":
            return log_mean
        votes = F.one_hot(logp.argmax(2), logp.shape[2]).sum(0).to(logp.dtype)  # [n, C]
        q = (votes + _TIE_WEIGHT * log_mean.exp()) / (s + _TIE_WEIGHT)
        return q.clamp_min(torch.finfo(q.dtype).tiny).log()


@MODELS.register("sisa_ensemble")
def build_sisa_ensemble(
    input_shape, num_classes, base: str = "mlp", shards: int = 5, aggregation: str = "vote", **base_kwargs: Any
) -> SisaEnsemble:
    """``shards`` freshly built ``base`` models (``base_kwargs`` go to each) under one ensemble.

    The weights are meant to be loaded afterwards (from a SISA run's
    ``model.safetensors``); :func:`unlearnkit.methods.sisa.train_sisa` trains them.
    """
    if base == "sisa_ensemble":
        raise UnlearnkitError("a SISA ensemble cannot be built from SISA ensembles")
    if int(shards) < 1:
        raise UnlearnkitError(f"a SISA ensemble needs at least 1 shard, got {shards}")
    members = [build_model(base, input_shape, num_classes, **base_kwargs) for _ in range(int(shards))]
    return SisaEnsemble(members, aggregation)
