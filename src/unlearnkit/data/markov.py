"""``markov``: synthetic token sequences from a seeded mixture of Markov chains.

The generating process is known exactly, so a sequence model can be scored
against the truth. With ``chains`` = K and ``states`` = V:

- chain ``k < K`` has an initial distribution ``Dirichlet(1)`` over the V states
  and transition rows ``Dirichlet(concentration)`` (small concentration = peaked,
  predictable rows);
- component ``K`` is the *canary* source: every token uniform and independent
  (a Markov chain with uniform rows). Canaries are rare (``canaries`` of the
  ``n_train`` training sequences, the same share of the test set), so a model can
  only predict them well by memorizing them.

Each sequence picks a component (chains uniformly, canaries by their fixed
count), then ``length`` states. A row's label ``y`` is its component (``K`` =
canary); ``num_classes = K + 1``. Token ids follow the text datasets' convention:
0 = padding, 1 = unknown (never produced), state ``s`` -> ``s + 2``, so a model's
vocabulary is ``V + 2`` ids. ``bundle.state`` holds the vocabulary, ``max_len``
and the true process (``initial [K+1, V]``, ``transitions [K+1, V, V]``,
``weights [K+1]``); :func:`true_next_token_probs` computes the Bayes-optimal
next-token distribution of any prefix from it (used for the KL utility).
Everything is a deterministic function of the options (``seed`` included).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from unlearnkit.data.base import DataBundle, Dataset, make_bundle, parse_options
from unlearnkit.data.registry import DATASETS
from unlearnkit.errors import UnlearnkitError

if TYPE_CHECKING:  # imported where used: `unlearnkit data list` does not load torch
    import torch

OFFSET = 2  # token id of state 0 (0 = padding, 1 = unknown)
OPTIONS = {
    "states": 16,
    "chains": 2,
    "length": 24,
    "n_train": 2000,
    "n_test": 500,
    "canaries": 20,
    "concentration": 0.2,
    "seed": 0,
}


def make_process(states: int, chains: int, concentration: float, canary_share: float, seed: int) -> dict[str, np.ndarray]:
    """The true mixture: ``initial [K+1, V]``, ``transitions [K+1, V, V]``, ``weights [K+1]``
    (last component = uniform canaries with weight ``canary_share``)."""
    rng = np.random.default_rng(seed)
    initial = rng.dirichlet(np.ones(states), size=chains)
    transitions = rng.dirichlet(np.full(states, concentration), size=(chains, states))
    uniform = np.full((1, states), 1.0 / states)
    return {
        "initial": np.concatenate([initial, uniform]),
        "transitions": np.concatenate([transitions, np.broadcast_to(uniform, (1, states, states))]),
        "weights": np.concatenate([np.full(chains, (1.0 - canary_share) / chains), [canary_share]]),
    }


def _sample_rows(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per row of ``probs [n, V]`` (inverse CDF)."""
    cdf = probs.cumsum(1)
    u = rng.random(len(probs)) * cdf[:, -1]
    return np.minimum((u[:, None] > cdf).sum(1), probs.shape[1] - 1)


def sample_sequences(
    process: dict[str, np.ndarray], components: np.ndarray, length: int, rng: np.random.Generator
) -> np.ndarray:
    """States int64 ``[n, length]`` of sequences drawn from ``components [n]`` of ``process``."""
    init, trans = process["initial"], process["transitions"]
    s = np.empty((len(components), length), dtype=np.int64)
    s[:, 0] = _sample_rows(init[components], rng)
    for t in range(1, length):
        s[:, t] = _sample_rows(trans[components, s[:, t - 1]], rng)
    return s


def _components(n: int, canaries: int, chains: int, rng: np.random.Generator) -> np.ndarray:
    """Component of each of ``n`` sequences: ``canaries`` of them ``chains`` (the canary id),
    the rest uniform over the chains; shuffled so canaries sit at random positions."""
    comp = np.concatenate([rng.integers(0, chains, n - canaries), np.full(canaries, chains)])
    return rng.permutation(comp)


def true_next_token_probs(state: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
    """The true next-token distribution after every prefix, ``[n, L-1, V+2]`` (float64).

    Row ``t`` is ``p(x_{t+1} | x_{<=t})`` under the mixture in ``state`` (a markov
    bundle's ``state``): the chains' transition rows averaged with the posterior
    weight of each component given the prefix (exact Bayesian filtering). The
    padding and unknown ids get probability 0. ``x`` is int64 ``[n, L]``
    token ids (padding-free, as this dataset produces).
    """
    import torch

    init = torch.as_tensor(np.asarray(state["initial"]), dtype=torch.float64)
    trans = torch.as_tensor(np.asarray(state["transitions"]), dtype=torch.float64)
    weights = torch.as_tensor(np.asarray(state["weights"]), dtype=torch.float64)
    n_states = init.shape[1]
    s = x.to(torch.int64) - OFFSET
    if (s < 0).any() or (s >= n_states).any():
        raise UnlearnkitError(f"markov: token ids outside {OFFSET}..{n_states + OFFSET - 1} cannot be scored against the chain")
    log_trans = trans.clamp_min(1e-300).log()
    # log_post [n, K+1]: log weight + log-likelihood of the prefix so far under each component.
    log_post = weights.log()[None] + init.clamp_min(1e-300).log()[:, s[:, 0]].T
    out = torch.zeros(x.shape[0], x.shape[1] - 1, n_states + OFFSET, dtype=torch.float64)
    for t in range(x.shape[1] - 1):
        post = torch.softmax(log_post, dim=1)  # [n, K+1]
        rows = trans[:, s[:, t]]  # [K+1, n, V]
        out[:, t, OFFSET:] = torch.einsum("nk,knv->nv", post, rows)
        log_post = log_post + log_trans[:, s[:, t], s[:, t + 1]].T
    return out


@DATASETS.register("markov")
class Markov(Dataset):
    name = "markov"
    description = (
        "synthetic token sequences from a seeded mixture of Markov chains (+ rare uniform canaries); "
        "the true chain is known, for sequence-model unlearning"
    )

    def load(self, data_root, val_fraction, split_seed, state=None, **options: Any) -> DataBundle:
        o = parse_options(self.name, options, OPTIONS)
        if o["states"] < 2 or o["chains"] < 1 or o["length"] < 2 or o["n_test"] < 1 or o["concentration"] <= 0:
            raise UnlearnkitError(
                f"markov: need states >= 2, chains >= 1, length >= 2, n_test >= 1, concentration > 0; got {o}"
            )
        if not 0 <= o["canaries"] < o["n_train"]:
            raise UnlearnkitError(f"markov: canaries must be in [0, n_train), got {o['canaries']} of {o['n_train']}")
        share = o["canaries"] / o["n_train"]
        process = make_process(o["states"], o["chains"], o["concentration"], share, o["seed"])
        vocab = [f"s{i}" for i in range(o["states"])]
        if state and (len(state.get("vocab", [])) != len(vocab) or int(state.get("max_len", -1)) != o["length"]):
            raise UnlearnkitError(
                f"markov: vocabulary mismatch: the saved data has {len(state.get('vocab', []))} states and length "
                f"{state.get('max_len')}, these options give {len(vocab)} and {o['length']}"
            )
        rng = np.random.default_rng([o["seed"], 1])
        n_test_canaries = int(round(share * o["n_test"]))
        comp_tr = _components(o["n_train"], o["canaries"], o["chains"], rng)
        comp_te = _components(o["n_test"], n_test_canaries, o["chains"], rng)
        x_tr = sample_sequences(process, comp_tr, o["length"], rng) + OFFSET
        x_te = sample_sequences(process, comp_te, o["length"], rng) + OFFSET
        return make_bundle(
            self.name, x_tr, comp_tr, x_te, comp_te, val_fraction=val_fraction, split_seed=split_seed,
            num_classes=o["chains"] + 1,
            state={"vocab": vocab, "max_len": o["length"], **{k: v.tolist() for k, v in process.items()}},
        )


def canary_indices(data: DataBundle) -> np.ndarray:
    """Original training indices of the canary sequences of a markov bundle (label = last class)."""
    return data.index_train[data.y_train == data.num_classes - 1].numpy()
