"""Membership-inference metrics. Pure functions on per-example values.

- :func:`mia_efficacy`: SalUn/RUM-style. An RBF SVC learns members (retain) vs
  non-members (test) from the true-label confidence ``p_true``; MIA-efficacy is
  the fraction of the forget set it calls non-member. Higher = the forget set
  looks less like training data. Compare it with the retrained model's value.
- :func:`mia_efficacy_repeats`: the same over several subsample seeds, so the
  spread the subsampling alone causes is known (at small scale it is large).
- :func:`mia_auc`: a loss-based logistic-regression attack, forget (positive)
  vs test (negative); ROC AUC of its cross-validated scores. 0.5 = the forget
  set is indistinguishable from unseen data.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

DEFAULT_MAX_PER_SIDE = 2000
# SalUn's SVC_MIA settings.
SVC_C = 3.0
SVC_GAMMA = "auto"
AUC_FOLDS = 5
# Subsample draws behind each reported MIA-efficacy.
MIA_REPEATS = 5
# Warn when the reference's own MIA-efficacy ranges over more than this across
# seeds: a ToW-MIA difference smaller than the reference's jitter says nothing.
MIA_SPREAD_WARN = 0.2


def _subsample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= n else x[np.sort(rng.choice(len(x), size=n, replace=False))]


def mia_efficacy(
    member_conf,
    nonmember_conf,
    target_conf,
    *,
    max_per_side: int = DEFAULT_MAX_PER_SIDE,
    seed: int = 0,
) -> float:
    """Fraction of ``target_conf`` an RBF SVC predicts as non-member, in [0, 1].

    ``member_conf`` (retain set), ``nonmember_conf`` (test set) and
    ``target_conf`` (forget set) are 1-d arrays of true-label confidence
    ``p_true`` in [0, 1]. The SVC (C=3, gamma="auto", as in SalUn) is fitted on
    ``n = min(len(members), len(non-members), max_per_side)`` examples drawn
    without replacement from each side with ``seed`` (balanced classes; an RBF
    SVC costs ~10 s on 10k+10k points, hence the cap). NaN when a side is empty.
    """
    if max_per_side < 1:
        raise ValueError(f"max_per_side must be >= 1, got {max_per_side}")
    mem = np.asarray(member_conf, dtype=np.float64).ravel()
    non = np.asarray(nonmember_conf, dtype=np.float64).ravel()
    tgt = np.asarray(target_conf, dtype=np.float64).ravel()
    if min(len(mem), len(non), len(tgt)) == 0:
        return math.nan
    rng = np.random.default_rng(seed)
    n = min(len(mem), len(non), max_per_side)
    mem, non = _subsample(mem, n, rng), _subsample(non, n, rng)
    x = np.concatenate([mem, non])[:, None]
    y = np.concatenate([np.ones(n), np.zeros(n)])
    if np.ptp(x) == 0:  # one distinct value: the SVC cannot separate anything
        return 0.5
    clf = SVC(C=SVC_C, gamma=SVC_GAMMA, kernel="rbf").fit(x, y)
    return float((clf.predict(tgt[:, None]) == 0).mean())


def mia_efficacy_repeats(
    member_conf,
    nonmember_conf,
    target_conf,
    *,
    max_per_side: int = DEFAULT_MAX_PER_SIDE,
    seed: int = 0,
    repeats: int = MIA_REPEATS,
) -> np.ndarray:
    """:func:`mia_efficacy` with subsample seeds ``seed, seed + 1, ...``: ``[repeats]`` values in [0, 1].

    Their mean is the reported MIA-efficacy, their spread the part of its
    variation that comes from which members and non-members were drawn.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    return np.array([
        mia_efficacy(member_conf, nonmember_conf, target_conf, max_per_side=max_per_side, seed=seed + i)
        for i in range(repeats)
    ])


def mia_spread_warning(values, what: str = "the reference", threshold: float = MIA_SPREAD_WARN) -> str | None:
    """A one-line warning when MIA-efficacy ``values`` (one per seed) range over more than ``threshold``."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size < 2 or np.ptp(v) <= threshold:
        return None
    shown = ", ".join(f"{x:.3f}" for x in v)
    return (f"{what}'s MIA-efficacy ranges over {np.ptp(v):.3f} across seeds ({shown}), more than {threshold}: "
            "MIA-efficacy and ToW-MIA differences are noise at this scale")


def mia_auc(target_loss, nonmember_loss, *, folds: int = AUC_FOLDS, seed: int = 0) -> float:
    """ROC AUC of a loss-based logistic-regression membership attack, in [0, 1].

    Positive class = ``target_loss`` (forget set), negative = ``nonmember_loss``
    (test set); 1-d arrays of per-example cross-entropy. A logistic regression
    on the standardised loss (class-balanced weights) is scored with stratified
    ``folds``-fold cross-validation (shuffled with ``seed``; fewer folds when a
    class has fewer examples): the AUC is measured on each held-out fold and
    averaged over folds. 0.5 = the forget set looks like unseen data; 1 = its
    losses give membership away.
    NaN when either side has fewer than 2 examples.
    """
    pos = np.asarray(target_loss, dtype=np.float64).ravel()
    neg = np.asarray(nonmember_loss, dtype=np.float64).ravel()
    k = min(folds, len(pos), len(neg))
    if k < 2:
        return math.nan
    x = np.concatenate([pos, neg])[:, None]
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    if np.ptp(x) == 0:
        return 0.5
    clf = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced"))
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return float(cross_val_score(clf, x, y, cv=cv, scoring="roc_auc").mean())
