"""End to end on the real Fashion-MNIST: ``unlearnkit train`` at its defaults makes a cnn with
>= 88% test accuracy in one epoch, and in that model's embeddings the entanglement forget sets
come out ordered by their measured ES (low < medium < high).

Needs Debian's ``dataset-fashion-mnist`` (``make test`` installs it). Missing data is a
failure, not a skip: this is the one test that proves the toolkit trains real models.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

FASHION = Path("/usr/share/datasets/fashion-mnist")
TARGET = 0.88  # one epoch of the normalised cnn at the CLI defaults (SGD 0.05, batch 128, cosine)

# ES of 300-example sets built for each level, in a fresh process (one embedding pass for all
# three; the construction's own ES is not trusted: each set is measured by entanglement_score).
ES_BY_LEVEL = """
import json, sys
import numpy as np
from unlearnkit import load_run
from unlearnkit.difficulty.forget_sets import es_quantile_rows
from unlearnkit.difficulty.geometry import entanglement_score, run_embeddings
pos, emb = run_embeddings(load_run(sys.argv[1], data_root=sys.argv[2], device="cpu"))
es = {}
for level in ("low", "medium", "high"):
    rows, _ = es_quantile_rows(emb, level, 300, seed=0)
    forget = np.zeros(len(emb), dtype=bool)
    forget[rows] = True
    es[level] = entanglement_score(emb[~forget], emb[forget])
print(json.dumps(es))
"""


@pytest.mark.slow
def test_cnn_reaches_88_percent_in_one_epoch(tmp):
    assert FASHION.is_dir(), f"{FASHION} is missing: run `make data` (apt-get install -y dataset-fashion-mnist)"
    # A fresh process, as a user runs it: earlier tests may have switched process-wide
    # torch settings (building a ResNet turns oneDNN off, which halves cnn speed).
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("unlearnkit")), "train", "--dataset", "fashion-mnist",
         "--data-root", str(FASHION), "--model", "cnn", "--epochs", "1", "--device", "cpu", "--quiet",
         "--out", str(tmp / "run")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((tmp / "run" / "run.json").read_text())
    results = meta["results"]
    assert results["test_acc"] >= TARGET, results
    assert results["train_acc"] >= TARGET and results["val_acc"] >= TARGET, results
    n_train = 54000  # 60,000 minus the 10% validation split
    dyn = pd.read_parquet(tmp / "run" / "dynamics.parquet", columns=["index", "epoch", "correct"])
    assert len(dyn) == n_train and dyn["index"].nunique() == n_train
    # It learned during training, not by accident: the predictions made while training
    # (early ones included) are worse than the trained model's on the same rows.
    assert dyn["correct"].mean() < results["train_acc"]
    # Entanglement forget sets on real data: ordered by measured ES.
    proc = subprocess.run([sys.executable, "-c", ES_BY_LEVEL, str(tmp / "run"), str(FASHION)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    es = json.loads(proc.stdout.strip().splitlines()[-1])
    assert es["low"] < es["medium"] < es["high"], es
