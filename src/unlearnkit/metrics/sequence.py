"""Metrics for sequence models (definitions: docs/language.md).

A sequence model is scored by the log-likelihood it gives each sequence. Per
sequence ``i`` with ``T_i`` predicted tokens, ``ll_i`` is the mean per-token
log-likelihood ``(1/T_i) Σ_t log p(x_{t+1} | x_{<=t})`` in nats (<= 0); its
exponential ``exp(ll_i)`` in (0, 1] is the per-token geometric-mean probability,
the sequence analogue of a classifier's correctness.

The first part of the module is pure (arrays in, numbers out); the second
applies a model to data and calls the first.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch
from torch import nn

from unlearnkit.data.markov import true_next_token_probs
from unlearnkit.metrics.mia import mia_auc
from unlearnkit.training import per_example_loss, predict_logits

SPLITS = ("forget", "retain", "test")


# ----------------------------------------------------------------------------- pure


def perplexity(ll, tokens=None) -> float:
    """Token-weighted perplexity ``exp(-Σ T_i ll_i / Σ T_i)`` of sequences with mean per-token
    log-likelihoods ``ll [n]`` (nats) and token counts ``tokens [n]`` (all 1 if omitted). NaN if empty."""
    ll = np.asarray(ll, dtype=np.float64).ravel()
    w = np.ones_like(ll) if tokens is None else np.asarray(tokens, dtype=np.float64).ravel()
    if ll.size == 0 or w.sum() == 0:
        return math.nan
    return float(np.exp(-(w * ll).sum() / w.sum()))


def likelihood_gap(ll_model, ll_reference) -> np.ndarray:
    """Per-sequence gap ``ll_model - ll_reference`` ``[n]`` (nats per token).

    On the forget set a positive gap means the model still finds the sequence more
    likely than the retrained reference does (not yet forgotten); a negative gap
    means it was pushed below the reference (over-forgotten, which can also give
    membership away)."""
    a = np.asarray(ll_model, dtype=np.float64).ravel()
    b = np.asarray(ll_reference, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"likelihood_gap: shapes differ ({a.shape} vs {b.shape}); score the same sequences")
    return a - b


def probability_gap(ll_model, ll_reference) -> float:
    """Mean over sequences of ``|exp(ll_model_i) - exp(ll_reference_i)|`` in [0, 1]: the per-token
    geometric-mean probabilities' distance, the analogue of an accuracy gap. NaN if empty."""
    a = np.asarray(ll_model, dtype=np.float64).ravel()
    b = np.asarray(ll_reference, dtype=np.float64).ravel()
    if a.size == 0:
        return math.nan
    return float(np.abs(np.exp(a) - np.exp(b)).mean())


def sequence_tow(unlearned: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> float:
    """ToW for sequence models: ``Π_split (1 - probability_gap(split))`` over forget, retain and
    test, in [0, 1]; 1 = every sequence as likely (per token) as under the retrained reference.

    Each argument maps ``"forget"``, ``"retain"``, ``"test"`` to per-sequence ``ll [n]`` on the
    same sequences in the same order.
    """
    out = 1.0
    for split in SPLITS:
        out *= 1.0 - probability_gap(unlearned[split], reference[split])
    return out


def loss_mia_auc(forget_nll, test_nll, *, seed: int = 0) -> float:
    """Loss-based membership attack, forget (positive) vs held-out test sequences (negative): the
    ROC AUC of :func:`unlearnkit.metrics.mia.mia_auc` on per-sequence mean NLL. 0.5 = the forget
    sequences look unseen."""
    return mia_auc(forget_nll, test_nll, seed=seed)


def next_token_kl(p_true, log_q, mask=None) -> float:
    """Mean ``KL(p_true ‖ q)`` in nats over positions, from true next-token probabilities
    ``p_true [n, T, V]`` and the model's log-probabilities ``log_q [n, T, V]``; ``mask [n, T]``
    (bool) selects the positions counted (all if omitted). Terms with ``p_true = 0`` are 0."""
    p = np.asarray(p_true, dtype=np.float64)
    lq = np.asarray(log_q, dtype=np.float64)
    if p.shape != lq.shape:
        raise ValueError(f"next_token_kl: shapes differ ({p.shape} vs {lq.shape})")
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - lq), 0.0).sum(-1)  # [n, T]
    m = np.ones(terms.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    return float(terms[m].mean()) if m.any() else math.nan


# ----------------------------------------------------------------------------- models


def sequence_log_likelihoods(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """``(ll [n], tokens [n])``: mean per-token log-likelihood (nats) of each sequence of token ids
    ``x [n, L]`` under a next-token model, and its number of predicted (non-padding) tokens."""
    if len(x) == 0:
        return np.zeros(0), np.zeros(0)
    lls = [-per_example_loss(predict_logits(model, xb, batch_size), xb) for xb in x.split(batch_size)]
    tokens = (x[:, 1:] != 0).sum(1)
    return torch.cat(lls).double().numpy(), tokens.numpy()


def model_kl_to_truth(model: nn.Module, state: Mapping, x: torch.Tensor, batch_size: int = 512) -> float:
    """:func:`next_token_kl` of ``model`` against the true mixture of a markov bundle's ``state``
    on sequences ``x [n, L]`` (every prefix of every sequence)."""
    total, count = 0.0, 0
    for xb in x.split(batch_size):
        p = true_next_token_probs(dict(state), xb).numpy()
        log_q = torch.log_softmax(predict_logits(model, xb, batch_size)[:, :-1].double(), -1).numpy()
        kl = next_token_kl(p, log_q)
        total, count = total + kl * p.shape[0] * p.shape[1], count + p.shape[0] * p.shape[1]
    return total / count if count else math.nan


def split_rows(data, forget_pos: np.ndarray, retain_pos: np.ndarray) -> dict[str, torch.Tensor]:
    """Token ids of the forget rows, the retain rows (positions in ``data.x_train``) and the test
    set, keyed ``forget`` / ``retain`` / ``test``."""
    return {
        "forget": data.x_train[torch.as_tensor(forget_pos)],
        "retain": data.x_train[torch.as_tensor(retain_pos)],
        "test": data.x_test,
    }


def split_log_likelihoods(
    model: nn.Module, data, forget_pos: np.ndarray, retain_pos: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-sequence ``ll`` of each split of :func:`split_rows`."""
    return {k: sequence_log_likelihoods(model, x)[0] for k, x in split_rows(data, forget_pos, retain_pos).items()}


def evaluate_sequence_model(
    model: nn.Module,
    data,
    forget_pos: np.ndarray,
    retain_pos: np.ndarray,
    reference: Mapping[str, np.ndarray] | None = None,
    *,
    seed: int = 0,
) -> dict[str, float]:
    """The sequence metrics of ``model`` on a markov-style bundle.

    Always: forget / retain / test perplexity, the loss-MIA AUC of the forget rows against the
    test sequences from the same sources (labels), and (when ``data.state`` holds the true
    process) the KL to the truth on the test sequences not from the last (canary) source.
    With ``reference`` (the retrained model's :func:`split_log_likelihoods` on the same rows):
    the mean signed forget gap, the mean absolute retain gap and the sequence ToW.
    """
    rows = split_rows(data, forget_pos, retain_pos)
    scored = {k: sequence_log_likelihoods(model, x) for k, x in rows.items()}
    ll = {k: v[0] for k, v in scored.items()}
    out = {f"{k}_ppl": perplexity(v, tokens) for k, (v, tokens) in scored.items()}
    same_source = np.isin(data.y_test.numpy(), data.y_train[torch.as_tensor(forget_pos)].numpy())
    out["mia_auc"] = loss_mia_auc(-ll["forget"], -ll["test"][same_source], seed=seed)
    if "transitions" in data.state:
        chain_test = data.x_test[data.y_test < data.num_classes - 1]
        out["kl_to_truth"] = model_kl_to_truth(model, data.state, chain_test)
    if reference is not None:
        out["forget_gap"] = float(likelihood_gap(ll["forget"], reference["forget"]).mean())
        out["retain_gap"] = float(np.abs(likelihood_gap(ll["retain"], reference["retain"])).mean())
        out["tow"] = sequence_tow(ll, reference)
    return out
