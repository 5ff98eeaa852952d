"""The papers' claims judged on a bench's results: a list of :class:`~unlearnkit.metrics.stats.Verdict`.

Every comparison is paired: two rows are partners when they share the seed
and the forget set (and, where results are pooled over methods, the method),
so a claim is judged on per-pair differences with a Student-t 95% CI
("held" only when the CI excludes 0 in the claimed direction, "contradicted"
when it excludes 0 the other way, "inconclusive" otherwise or with fewer than
2 pairs). Rows without a partner (a failed unit) are left out and named in
the verdict's ``detail``. A claim the results cannot test (no IMU rows, say)
is "inconclusive" with n = 0 and says what it needs.

The records are plain data (claim, status, diff, lo, hi, n, method, detail);
the report writer renders them. :func:`noise_warnings` lists the metrics that
are noise at the bench's scale (the reference's own MIA-efficacy jumping
across seeds), to print above the tables they qualify.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import pandas as pd
from scipy import stats

from unlearnkit.metrics.mia import MIA_SPREAD_WARN, mia_spread_warning
from unlearnkit.metrics.stats import Verdict, correlation_verdict, paired_verdict

ORIGINAL = "original"
# Exact or retrain-based rows are not "approximate unlearning": their ToW says nothing
# about how hard a forget set is to unlearn approximately.
NOT_APPROXIMATE = (ORIGINAL, "sisa", "retrain")


def _not_tested(claim: str, needs: str) -> Verdict:
    return Verdict(claim, math.nan, math.nan, math.nan, 0, "inconclusive", "paired t", f"not tested: needs {needs}")


def _values(d: pd.DataFrame, keys: Sequence[str], value: str) -> dict[Hashable, float]:
    return {tuple(k) if len(keys) > 1 else k[0]: float(v)
            for k, v in zip(d[list(keys)].itertuples(index=False, name=None), d[value])}


def _paired(
    claim: str,
    a: pd.DataFrame,
    b: pd.DataFrame,
    keys: Sequence[str],
    value: str = "tow",
    *,
    direction: str = "greater",
    b_value: str | None = None,
    what: str = "",
) -> Verdict:
    """:func:`paired_verdict` on rows ``a`` vs ``b`` partnered by ``keys``; unpartnered rows named in detail."""
    va, vb = _values(a, keys, value), _values(b, keys, b_value or value)
    shared = [k for k in va if k in vb]
    lone = [k for k in va if k not in vb] + [k for k in vb if k not in va]
    v = paired_verdict(claim, {k: va[k] for k in shared}, {k: vb[k] for k in shared}, direction=direction)  # type: ignore[arg-type]
    parts = [f"pairs: {what or 'seed x forget set'}"]
    if lone:
        parts.append(f"{len(lone)} row(s) without a partner left out (e.g. {dict(zip(keys, _as_tuple(lone[0])))})")
    if v.detail:
        parts.append(v.detail)
    v.detail = "; ".join(parts)
    return v


def _as_tuple(k: Hashable) -> tuple:
    return k if isinstance(k, tuple) else (k,)


def _vanilla(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["variant"] == "vanilla"]


def _approximate(df: pd.DataFrame) -> pd.DataFrame:
    v = _vanilla(df)
    return v[~v["method"].isin(NOT_APPROXIMATE)]


def method_vs_original(df: pd.DataFrame) -> list[Verdict]:
    """Each approximate method against doing nothing (the original), ToW paired over seed x forget set."""
    orig = df[df["method"] == ORIGINAL]
    rows = _approximate(df)
    return [_paired(f"{m} does better than doing nothing (higher ToW than the original)",
                    rows[rows["method"] == m], orig, ["forget_kind", "seed"])
            for m in sorted(rows["method"].unique())]


def gain_by_kind(df: pd.DataFrame) -> pd.DataFrame:
    """Each approximate method against doing nothing on each forget kind: a table (rows: methods,
    columns: forget kinds) of cells "+0.184 [+0.091, +0.276] held", the ToW difference paired over
    seeds with its 95% t CI and verdict (n = the seeds; "n=1" without a CI)."""
    van = _vanilla(df)
    orig = van[van["method"] == ORIGINAL]
    rows = _approximate(df)
    kinds = [k for k in dict.fromkeys(df["forget_kind"]) if k in set(orig["forget_kind"])]
    table: dict[str, dict[str, str]] = {}
    for m in sorted(rows["method"].unique()):
        for k in kinds:
            a = rows[(rows["method"] == m) & (rows["forget_kind"] == k)]
            if a.empty:
                continue
            v = _paired(f"{m} beats the original on {k}", a, orig[orig["forget_kind"] == k], ["seed"])
            ci = f" [{v.lo:+.3f}, {v.hi:+.3f}]" if math.isfinite(v.lo) else f" (n={v.n})"
            table.setdefault(m, {})[k] = f"{v.diff:+.3f}{ci} {v.status}"
    return pd.DataFrame.from_dict(table, orient="index", columns=kinds).rename_axis("method").reset_index()


def rum_claims(df: pd.DataFrame) -> list[Verdict]:
    """RUM^F vs vanilla, RUM^F vs shuffle, RUM vs vanilla [RUM]: paired over method x seed x forget set."""
    keys = ["method", "forget_kind", "seed"]
    van = _vanilla(df)
    out = []
    for variant, other, claim in (
        ("rum_f", "vanilla", "RUM^F beats vanilla (higher ToW) [RUM]"),
        ("rum_f", "shuffle", "RUM^F beats shuffle: the memorization order matters (higher ToW) [RUM]"),
        ("shuffle", "vanilla", "refining in groups alone (shuffle) beats vanilla (higher ToW) [RUM]"),
    ):
        a = df[df["variant"] == variant]
        b = van if other == "vanilla" else df[df["variant"] == other]
        # Only where both were run: the methods and forget sets of the variant's rows.
        b = b[b["method"].isin(a["method"].unique()) & b["forget_kind"].isin(a["forget_kind"].unique())]
        if a.empty or b.empty:
            out.append(_not_tested(claim, f"{variant} and {other} rows"))
            continue
        out.append(_paired(claim, a, b, keys, what="method x seed x forget set"))
    rum = df[df["variant"] == "rum"]
    claim = "RUM (a method chosen per group) beats the best vanilla method of each forget set (higher ToW) [RUM]"
    if rum.empty:
        out.append(_not_tested(claim, "rum rows"))
    else:
        # Against the best vanilla candidate of each (seed, forget set): the bar RUM must clear.
        cands = _approximate(df)[lambda d: d["forget_kind"].isin(rum["forget_kind"].unique())]
        best = cands.groupby(["forget_kind", "seed"], as_index=False)["tow"].max()
        out.append(_paired(claim, rum, best, ["forget_kind", "seed"], what="seed x forget set, vs the best vanilla"))
    return out


def difficulty_claims(df: pd.DataFrame) -> list[Verdict]:
    """High vs low sets of each family (memorization, entanglement, ...): lower ToW on the high set."""
    approx = _approximate(df)
    kinds = set(approx["forget_kind"])
    out = []
    families = sorted({k.rsplit("-", 1)[0] for k in kinds if k.endswith(("-high", "-low"))})
    for fam in families or ["memorization"]:
        claim = f"high-{fam} sets are harder than low ones (lower ToW) [RUM]"
        hi, lo = f"{fam}-high", f"{fam}-low"
        if hi not in kinds or lo not in kinds:
            out.append(_not_tested(claim, f"{hi} and {lo} forget sets"))
            continue
        a = approx[approx["forget_kind"] == hi]
        b = approx[approx["forget_kind"] == lo]
        out.append(_paired(claim, a, b, ["method", "seed"], direction="less", what="method x seed"))
    out.append(es_trend(df))
    return out


def es_trend(df: pd.DataFrame) -> Verdict:
    """"Higher ES is harder": per seed, Spearman of ES vs mean approximate ToW over every forget set."""
    claim = "forget sets with higher ES are harder (ToW falls as ES rises, all forget sets) [RUM]"
    approx = _approximate(df)
    per = approx.groupby(["seed", "forget_kind"], as_index=False).agg(es=("es", "first"), tow=("tow", "mean"))
    counts = per.groupby("seed")["forget_kind"].nunique()
    if per.empty or counts.min() < 3:
        have = int(counts.min()) if len(counts) else 0
        return _not_tested(claim, f">= 3 forget sets per seed (has {have})")
    x = {s: dict(zip(g["forget_kind"], g["es"])) for s, g in per.groupby("seed")}
    y = {s: dict(zip(g["forget_kind"], g["tow"])) for s, g in per.groupby("seed")}
    return correlation_verdict(claim, x, y, direction="less")


def imu_claim(df: pd.DataFrame) -> Verdict:
    claim = "IMU beats imu_uniform (higher ToW) [IMU]"
    van = _vanilla(df)
    a, b = van[van["method"] == "imu"], van[van["method"] == "imu_uniform"]
    if a.empty or b.empty:
        return _not_tested(claim, "imu and imu_uniform rows")
    return _paired(claim, a, b, ["forget_kind", "seed"])


def sisa_claims(df: pd.DataFrame) -> list[Verdict]:
    """SISA against the single-model retrain: faster, and what it costs in test accuracy."""
    sisa = _vanilla(df)[lambda d: d["method"] == "sisa"]
    claims = ("SISA unlearning is faster than retraining a single model [SISA]",
              "SISA's ensemble loses test accuracy against the single-model retrain [SISA]")
    if sisa.empty:
        return [_not_tested(c, "sisa rows") for c in claims]
    keys = ["forget_kind", "seed"]
    return [
        _paired(claims[0], sisa, sisa, keys, "seconds", direction="less", b_value="retrain_seconds"),
        _paired(claims[1], sisa, sisa, keys, "test_acc", direction="less", b_value="retrain_test_acc"),
    ]


def proxy_claim(scores: pd.DataFrame | None) -> Verdict:
    """The C-proxy claim over examples: Spearman with a Fisher-z CI (SE = 1.06 / sqrt(n - 3))."""
    claim = "the C-proxy (mean confidence) correlates negatively with memorization [RUM]"
    if scores is None or not {"confidence", "memorization"} <= set(scores.columns):
        return _not_tested(claim, "memorization and confidence scores")
    ok = scores[["confidence", "memorization"]].dropna()
    n = len(ok)
    if n < 4:
        return _not_tested(claim, f">= 4 examples with both scores (has {n})")
    rho = float(stats.spearmanr(ok["confidence"], ok["memorization"]).statistic)
    z = math.atanh(min(max(rho, -0.999999), 0.999999))
    half = stats.norm.ppf(0.975) * 1.06 / math.sqrt(n - 3)
    lo, hi = math.tanh(z - half), math.tanh(z + half)
    status = "held" if hi < 0 else "contradicted" if lo > 0 else "inconclusive"
    return Verdict(claim, rho, lo, hi, n, status, "Fisher z (Spearman)",  # type: ignore[arg-type]
                   f"Spearman over {n} examples of the first seed's original")


def findings(df: pd.DataFrame, scores: pd.DataFrame | None = None) -> list[Verdict]:
    """Every claim the report makes, judged on ``df`` (a bench results table); ``scores``:
    the first seed's score table (for the proxy claim)."""
    if df.empty:
        return []
    return [
        *method_vs_original(df),
        *rum_claims(df),
        *difficulty_claims(df),
        imu_claim(df),
        *sisa_claims(df),
        proxy_claim(scores),
    ]


def noise_warnings(df: pd.DataFrame, threshold: float = MIA_SPREAD_WARN) -> list[str]:
    """One line per forget kind whose reference MIA-efficacy ranges over more than ``threshold``
    across seeds: there, MIA-efficacy and ToW-MIA comparisons are noise."""
    out = []
    refs = df[df["method"] != ORIGINAL].drop_duplicates(["forget_kind", "seed"])
    for kind, g in refs.groupby("forget_kind"):
        w = mia_spread_warning(g.sort_values("seed")["ref_mia_efficacy"], what=f"the retrained reference on {kind}",
                               threshold=threshold)
        if w:
            out.append(w)
    return out


__all__ = ["findings", "noise_warnings", "es_trend"]
