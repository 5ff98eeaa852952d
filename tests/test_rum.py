"""RUM: refinement, sequential chaining, variants, retain policies, rum.json and the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from pydantic import Field

from unlearnkit import UnlearnkitError, load_run
from unlearnkit.data import ForgetSet, save_forget
from unlearnkit.meta import refine, rum, rum_run
from unlearnkit.meta.rum import weights_sha256
from unlearnkit.methods import METHODS, Method, MethodOutput, Params

CALLS: list[dict] = []  # what the probe method saw, one entry per call


class ProbeParams(Params):
    shift: float = Field(0.01, gt=0)


@METHODS.register("rum_test_probe")
class Probe(Method):
    """Records its input weights, forget and retain rows; shifts the head bias by ``shift``."""

    requires = frozenset({"retain"})
    Params = ProbeParams

    def run(self, ctx, params):
        CALLS.append({
            "weights_in": weights_sha256(ctx.model),
            "forget": ctx.data.index_train[ctx.forget].numpy(),
            "retain": ctx.data.index_train[ctx.retain].numpy(),
            "shift": params.shift,
        })
        with torch.no_grad():
            ctx.model.head.bias += params.shift
        return MethodOutput(ctx.model, len(ctx.forget))


class AscentParams(Params):
    lr: float = Field(0.5, gt=0)
    steps: int = Field(5, ge=1)


@METHODS.register("rum_test_ascent")
class Ascent(Method):
    """A few full-batch gradient-ascent steps on the forget rows (a real, retain-free unlearner)."""

    requires = frozenset()
    Params = AscentParams

    def run(self, ctx, params):
        opt = torch.optim.SGD(ctx.model.parameters(), lr=params.lr)
        x, y = ctx.data.x_train[ctx.forget], ctx.data.y_train[ctx.forget]
        ctx.model.train()
        for _ in range(params.steps):
            opt.zero_grad()
            (-F.cross_entropy(ctx.model(x), y)).backward()
            opt.step()
        return MethodOutput(ctx.model, params.steps * len(ctx.forget))


@pytest.fixture(scope="module")
def run(digits_run, tmp_path_factory):
    """A copy of the digits run with a scores.parquet (memorization random, confidence = 1 - memorization)."""
    path = tmp_path_factory.mktemp("rum") / "orig"
    shutil.copytree(digits_run.path, path)
    idx = digits_run.data.index_train.numpy()
    mem = np.random.default_rng(0).random(len(idx))
    pd.DataFrame({
        "index": idx, "label": digits_run.data.y_train.numpy(), "memorization": mem, "confidence": 1 - mem,
    }).to_parquet(path / "scores.parquet")
    return load_run(path, data=digits_run.data)


@pytest.fixture(scope="module")
def scores(run):
    return pd.read_parquet(run.path / "scores.parquet")


@pytest.fixture(scope="module")
def forget(run):
    idx = np.random.default_rng(1).choice(run.data.index_train.numpy(), 90, replace=False)
    return ForgetSet(idx, {"kind": "random", "size": 90})


def mean_score(scores, idx, col="memorization"):
    return scores.set_index("index").loc[idx, col].mean()


def test_refine_partitions_by_score(forget, scores):
    g = refine(forget, scores, "memorization")
    assert list(g) == ["low", "medium", "high"]
    allidx = np.concatenate(list(g.values()))
    assert np.array_equal(np.sort(allidx), forget.indices) and len(allidx) == len(set(allidx.tolist()))
    assert {len(v) for v in g.values()} == {30}
    means = [mean_score(scores, g[k]) for k in ("low", "medium", "high")]
    assert means[0] < means[1] < means[2]
    # every low score is below every high score (rank split, not just means)
    s = scores.set_index("index")["memorization"]
    assert s.loc[g["low"]].max() < s.loc[g["medium"]].min() <= s.loc[g["medium"]].max() < s.loc[g["high"]].min()
    # K != 3: g0..g{K-1}, sizes differ by at most one
    g4 = refine(forget, scores, "memorization", groups=4)
    assert list(g4) == ["g0", "g1", "g2", "g3"] and sorted(len(v) for v in g4.values()) == [22, 22, 23, 23]


def test_refine_inverts_confidence_and_breaks_ties_by_index(forget, scores):
    by_mem = refine(forget, scores, "memorization")
    by_conf = refine(forget, scores, "confidence")
    for k in by_mem:
        assert np.array_equal(by_mem[k], by_conf[k])
    assert mean_score(scores, by_conf["low"], "confidence") > mean_score(scores, by_conf["high"], "confidence")
    # explicit direction overrides the table
    flipped = refine(forget, scores, "confidence", higher_is_harder=True)
    assert np.array_equal(flipped["high"], by_mem["low"])
    tied = scores.assign(memorization=0.5)
    g = refine(forget, tied, "memorization")
    assert np.array_equal(g["low"], forget.indices[:30]) and np.array_equal(g["high"], forget.indices[60:])


def test_refine_errors(forget, scores):
    with pytest.raises(UnlearnkitError, match=r"no score 'entropy'.*unlearnkit score --run RUN_DIR --scores entropy"):
        refine(forget, scores, "entropy")
    with pytest.raises(UnlearnkitError, match="--memorization MEM_DIR"):
        refine(forget, scores.drop(columns="memorization"), "memorization")
    with pytest.raises(UnlearnkitError, match="empty"):
        refine(ForgetSet(forget.indices[:2]), scores, "memorization", groups=3)


def test_steps_chain_from_previous_model(run, forget):
    CALLS.clear()
    before = weights_sha256(run.model)
    res = rum(run, forget, methods="rum_test_probe", seed=0)
    assert weights_sha256(run.model) == before  # the original is untouched
    assert [s["group"] for s in res.steps] == ["low", "medium", "high"]
    assert [c["weights_in"] for c in CALLS] == [s["weights_in"] for s in res.steps]
    assert res.steps[0]["weights_in"] == before
    for prev, nxt in zip(res.steps, res.steps[1:]):
        assert nxt["weights_in"] == prev["weights_out"] != prev["weights_in"]
    assert weights_sha256(res.model) == res.steps[-1]["weights_out"]
    # three shifts of 0.01 accumulated on the head bias
    assert torch.allclose(res.model.head.bias, run.model.head.bias + 0.03, atol=1e-6)
    for call, s in zip(CALLS, res.steps):
        assert np.array_equal(call["forget"], res.groups[s["group"]])
    assert res.examples_processed == len(forget)
    assert {"group_acc", "forget_acc", "retain_acc", "test_acc", "seconds", "size"} <= set(res.steps[0])


def test_retain_policies(run, forget):
    s = set(forget.indices.tolist())
    train = set(run.data.index_train.numpy().tolist())
    CALLS.clear()
    strict = rum(run, forget, methods="rum_test_probe", retain="strict")
    for call, step in zip(CALLS, strict.steps):
        assert set(call["retain"].tolist()) == train - s
        assert step["retain_size"] == len(train - s)
    CALLS.clear()
    order = ["high", "low", "medium"]
    loose = rum(run, forget, methods="rum_test_probe", retain="rum", order=order)
    assert [st["group"] for st in loose.steps] == order
    for i, call in enumerate(CALLS):
        later = set(np.concatenate([loose.groups[g] for g in order[i + 1:]] or [[]]).astype(int).tolist())
        assert set(call["retain"].tolist()) == (train - s) | later
    assert len(CALLS[0]["retain"]) > len(CALLS[1]["retain"]) > len(CALLS[2]["retain"])


def test_variants_differ_only_where_they_should(run, forget):
    refined = refine(forget, pd.read_parquet(run.path / "scores.parquet"), "memorization")
    van = rum(run, forget, methods="rum_test_probe", variant="vanilla")
    assert len(van.steps) == 1 and np.array_equal(van.groups["all"], forget.indices)
    sh = rum(run, forget, methods="rum_test_probe", variant="shuffle", seed=3)
    assert len(sh.steps) == 3 and sorted(len(v) for v in sh.groups.values()) == [30, 30, 30]
    assert np.array_equal(np.sort(np.concatenate(list(sh.groups.values()))), forget.indices)
    assert not any(np.array_equal(a, b) for a in sh.groups.values() for b in refined.values())
    again = rum(run, forget, methods="rum_test_probe", variant="shuffle", seed=3)
    other = rum(run, forget, methods="rum_test_probe", variant="shuffle", seed=4)
    assert all(np.array_equal(sh.groups[k], again.groups[k]) for k in sh.groups)
    assert not np.array_equal(sh.groups["r0"], other.groups["r0"])
    rf = rum(run, forget, methods="rum_test_probe", variant="rum_f")
    assert all(np.array_equal(rf.groups[k], refined[k]) for k in refined)
    assert set(rf.methods.values()) == {"rum_test_probe"}
    with pytest.raises(UnlearnkitError, match="refined variants"):
        rum(run, forget, methods="rum_test_probe", variant="vanilla", order=["all"])
    with pytest.raises(UnlearnkitError, match="one method"):
        rum(run, forget, methods=["rum_test_probe", "none", "rum_test_probe"], variant="shuffle")


def test_methods_and_params_per_group(run, forget):
    res = rum(run, forget, methods="none,rum_test_probe,noop", params={"shift": 0.5, "medium": {"shift": 2.0}})
    low, med, high = res.steps
    assert low["method"] == high["method"] == "none" and low["examples_processed"] == 0
    assert low["weights_in"] == low["weights_out"] and high["weights_in"] == high["weights_out"]
    assert med["params"] == {"shift": 2.0}
    res = rum(run, forget, methods="rum_test_probe", params={"shift": 0.5, "high": {"shift": 2.0}})
    assert [s["params"]["shift"] for s in res.steps] == [0.5, 0.5, 2.0]
    with pytest.raises(UnlearnkitError, match="unknown group 'top'"):
        rum(run, forget, methods="rum_test_probe", params={"top": {"shift": 1.0}})
    with pytest.raises(UnlearnkitError, match="2 methods for 3 groups"):
        rum(run, forget, methods="rum_test_probe,none")
    with pytest.raises(UnlearnkitError, match="unknown method 'nope'"):
        rum(run, forget, methods="nope")
    with pytest.raises(UnlearnkitError, match="shift"):  # validated before any step runs
        rum(run, forget, methods="rum_test_probe", params={"high": {"shift": -1.0}})
    with pytest.raises(UnlearnkitError, match="unknown group"):
        rum(run, forget, methods="rum_test_probe", order=["low", "medium", "top"])


def test_rum_variant_searches_candidates(run, forget):
    cands = {"none": {}, "rum_test_ascent": {"lr": 0.5}, "rum_test_probe": {"shift": 0.3}}
    res = rum(run, forget, variant="rum", candidates=cands, seed=0)
    t = res.search
    assert len(t) == 3 * len(cands) and set(t["method"]) == set(cands)
    assert set(t["group"]) == {"low", "medium", "high"}
    for g, rows in t.groupby("group"):
        best = rows.loc[rows["tow"].idxmax(), "method"]
        assert rows["chosen"].sum() == 1 and rows.loc[rows["chosen"], "method"].item() == best == res.methods[g]
        assert ((rows["tow"] >= 0) & (rows["tow"] <= 1)).all()
    assert [s["method"] for s in res.steps] == [res.methods[g] for g in res.order]
    assert not set(res.validation.indices.tolist()) & set(forget.indices.tolist())
    with pytest.raises(UnlearnkitError, match="per candidate"):
        rum(run, forget, variant="rum", params={"lr": 0.1}, candidates=cands)


def test_refine_by_centroid_distance_needs_no_scores(digits_run, forget):
    res = rum(digits_run, forget, refine_by="centroid_distance", methods="none")
    assert [len(v) for v in res.groups.values()] == [30, 30, 30]
    with pytest.raises(UnlearnkitError, match="no scores.parquet"):
        rum(digits_run, forget, refine_by="memorization", methods="none")


def test_rum_run_writes_a_run_and_rum_json(run, forget, tmp):
    out = rum_run(run, forget, tmp / "r", methods="rum_test_ascent,none,rum_test_probe", retain="rum", seed=2)
    back = load_run(out.path, data=run.data)
    assert weights_sha256(back.model) == weights_sha256(out.model)
    assert back.meta["kind"] == "rum"
    assert back.meta["forgotten"]["indices"] == forget.indices.tolist()
    assert back.meta["excluded"]["indices"] == run.excluded.tolist()
    info = json.loads((tmp / "r" / "rum.json").read_text())
    assert info["order"] == ["low", "medium", "high"] and info["retain"] == "rum" and info["variant"] == "rum_f"
    assert info["methods"] == {"low": "rum_test_ascent", "medium": "none", "high": "rum_test_probe"}
    assert sorted(sum(info["groups"].values(), [])) == forget.indices.tolist()
    assert [s["group"] for s in info["steps"]] == info["order"] and info["params"]["low"] == {"lr": 0.5, "steps": 5}
    low = run.data.positions(info["groups"]["low"])
    before = (run.model(run.data.x_train[low]).argmax(1) == run.data.y_train[low]).float().mean().item()
    assert info["steps"][0]["group_acc"] < before  # the ascent really unlearned the low group


def test_cli(run, forget, tmp, cli):
    f = tmp / "forget.json"
    save_forget(f, forget)
    code, out, err = cli("rum", "--run", run.path, "--forget", f, "--methods", "rum_test_probe",
                         "--set", "shift=0.2", "--set", "high.shift=0.4", "--out", tmp / "o", "-q")
    assert code == 0, err
    info = json.loads((tmp / "o" / "rum.json").read_text())
    assert [s["params"]["shift"] for s in info["steps"]] == [0.2, 0.2, 0.4]
    bad = [
        (["--refine-by", "entropy"], "unlearnkit score --run RUN_DIR --scores entropy"),
        (["--groups", "200"], "empty"),
        (["--order", "low,top,high"], "unknown group"),
        (["--variant", "wild"], "unknown variant"),
    ]
    for extra, msg in bad:
        code, out, err = cli("rum", "--run", run.path, "--forget", f, "--methods", "rum_test_probe",
                             "--out", tmp / "x", *extra)
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, (extra, err)
        assert not (tmp / "x").exists()


def test_rum_units_rerun_when_a_candidates_preset_changes(monkeypatch):
    """A RUM unit's key covers the presets its steps may apply, as a vanilla unit's does."""
    from importlib import resources

    import unlearnkit.methods as methods_pkg
    from unlearnkit.experiments.config import load_config
    from unlearnkit.experiments.plan import build_plan

    cfg = load_config(resources.files("unlearnkit").joinpath("configs", "demo.yaml"))

    def rum_keys() -> dict[str, str]:
        return {u.label: u.key for u in build_plan(cfg, {}).units if u.kind == "rum"}

    before = rum_keys()
    real = methods_pkg.preset_for
    monkeypatch.setattr(methods_pkg, "preset_for",
                        lambda ds, m, model=None, kind=None: {**real(ds, m, model, kind), **({"lr": 0.5} if m == "salun" else {})})
    after = rum_keys()
    assert before.keys() == after.keys() and before
    changed = {label for label in before if before[label] != after[label]}
    # salun is a candidate of the 'rum' variant only: exactly those units rerun
    assert changed == {label for label in before if label.startswith("rum rum ")}
