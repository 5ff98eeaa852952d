"""Verdict-based findings on synthetic results of known effect: held, contradicted,
inconclusive (noise, one seed), unpartnered rows named, the ES trend's 3-point rule,
and the MIA noise warning."""

from __future__ import annotations

import numpy as np
import pandas as pd

from unlearnkit.experiments.store import result_row, results_frame
from unlearnkit.report.findings import es_trend, findings, noise_warnings

REF = {"forget_acc": 0.80, "retain_acc": 0.99, "test_acc": 0.95, "mia_efficacy": 0.30}


def results(effects: dict[tuple[str, str], float], kinds: dict[str, float], seeds=(0, 1, 2, 3), noise=0.005,
            ref_mia=None, seed=0) -> pd.DataFrame:
    """One row per (kind, method/variant, seed); the forget-accuracy gap = kind's gap x method's factor + noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for kind, gap in kinds.items():
        for (method, variant), factor in effects.items():
            for s in seeds:
                g = max(gap * factor + rng.normal(0, noise), 0.0)
                ref = {**REF, "mia_efficacy": ref_mia[s] if ref_mia else REF["mia_efficacy"]}
                m = {**REF, "forget_acc": REF["forget_acc"] + min(g, 0.2)}
                setup = {"dataset": "digits", "model": "mlp", "forget_kind": kind, "forget_size": 30,
                         "es": 10 * gap + 0.01 * s, "method": method, "variant": variant, "seed": s}
                rows.append(result_row(setup, m, ref, 0.0 if method == "original" else 1.0, 5.0, 10))
    return results_frame(rows)


def by_claim(df: pd.DataFrame) -> dict:
    return {v.claim.split(" [")[0]: v for v in findings(df)}


KINDS = {"memorization-low": 0.02, "memorization-high": 0.15, "random": 0.06}


def test_known_effects_give_held_and_contradicted():
    df = results({("original", "vanilla"): 1.0, ("finetune", "vanilla"): 0.5, ("finetune", "rum_f"): 0.2,
                  ("finetune", "shuffle"): 0.8}, KINDS)
    v = by_claim(df)
    assert v["RUM^F beats vanilla (higher ToW)"].status == "held"
    assert v["RUM^F beats shuffle: the memorization order matters (higher ToW)"].status == "held"
    # shuffle (0.8) is worse than vanilla (0.5): the claim that it beats vanilla is contradicted.
    assert v["refining in groups alone (shuffle) beats vanilla (higher ToW)"].status == "contradicted"
    assert v["high-memorization sets are harder than low ones (lower ToW)"].status == "held"
    assert v["finetune does better than doing nothing (higher ToW than the original)"].status == "held"
    # 3 forget sets per seed: the ES trend can be judged (ToW falls with ES by construction).
    es = v["forget sets with higher ES are harder (ToW falls as ES rises, all forget sets)"]
    assert es.status == "held" and es.n == 4 and "3 points" in es.detail


def test_small_effect_in_noise_is_inconclusive():
    df = results({("original", "vanilla"): 1.0, ("finetune", "vanilla"): 0.5, ("finetune", "rum_f"): 0.49},
                 KINDS, noise=0.05, seed=3)
    v = by_claim(df)["RUM^F beats vanilla (higher ToW)"]
    assert v.status == "inconclusive" and v.lo < 0 < v.hi and v.n == 12


def test_one_seed_gives_no_ci_and_no_verdict():
    df = results({("original", "vanilla"): 1.0, ("finetune", "vanilla"): 0.5, ("finetune", "rum_f"): 0.2},
                 {"memorization-low": 0.02}, seeds=(0,))
    v = by_claim(df)["RUM^F beats vanilla (higher ToW)"]
    assert v.n == 1 and v.status == "inconclusive" and np.isnan(v.lo)
    es = es_trend(df)
    assert es.n == 0 and "3 forget sets per seed (has 1)" in es.detail


def test_rows_without_a_partner_are_named():
    df = results({("original", "vanilla"): 1.0, ("finetune", "vanilla"): 0.5, ("finetune", "rum_f"): 0.2}, KINDS)
    gone = (df["variant"] == "rum_f") & (df["seed"] == 2) & (df["forget_kind"] == "random")
    v = by_claim(df[~gone])["RUM^F beats vanilla (higher ToW)"]
    assert v.n == 11 and "1 row(s) without a partner" in v.detail and "'seed': 2" in v.detail


def test_mia_noise_warning():
    quiet = results({("original", "vanilla"): 1.0, ("finetune", "vanilla"): 0.5}, KINDS,
                    ref_mia={0: 0.3, 1: 0.32, 2: 0.31, 3: 0.3})
    assert noise_warnings(quiet) == []
    noisy = results({("original", "vanilla"): 1.0, ("finetune", "vanilla"): 0.5}, KINDS,
                    ref_mia={0: 0.017, 1: 0.833, 2: 0.017, 3: 0.02})
    w = noise_warnings(noisy)
    assert len(w) == 3 and "0.816" in w[0] and "noise" in w[0]


def test_gain_by_kind_judges_each_method_on_each_forget_set():
    from unlearnkit.report.findings import gain_by_kind

    # finetune halves the forget-accuracy gap everywhere; neggrad changes nothing (factor 1 = the original)
    df = results({("original", "vanilla"): 1.0, ("finetune", "vanilla"): 0.5, ("neggrad", "vanilla"): 1.0},
                 KINDS, noise=0.002)
    t = gain_by_kind(df).set_index("method")
    assert set(t.columns) == set(KINDS) and set(t.index) == {"finetune", "neggrad"}
    assert t.loc["finetune", "memorization-high"].endswith("held")  # a gap of 0.15 halved: clearly above 0
    assert not t.loc["neggrad", "memorization-high"].endswith("held")
    assert t.loc["finetune", "memorization-high"].startswith("+0.0")  # ~ +0.075, with its CI
    one = gain_by_kind(results({("original", "vanilla"): 1.0, ("finetune", "vanilla"): 0.5}, KINDS, seeds=(0,)))
    assert one.set_index("method").loc["finetune", "random"].endswith("(n=1) inconclusive")
