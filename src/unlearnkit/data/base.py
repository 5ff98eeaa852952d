"""The DataBundle every loader returns, and the deterministic validation split."""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from unlearnkit.errors import ConfigError, DataError, UnlearnkitError

if TYPE_CHECKING:  # imported where used, so that listing datasets does not load torch
    import torch


@dataclass
class DataBundle:
    """Train / validation / test tensors of one dataset.

    ``x_*`` are float32 tensors ``[n, *input_shape]`` (images ``[n, C, H, W]``,
    tabular ``[n, d]``) or int64 token ids ``[n, L]`` for text (0 = padding); for a
    bundle over torch Datasets (:func:`as_bundle`) they are :class:`LazyRows`, which
    index and split like tensors and read rows only on ``.to(device)``.
    ``y_*`` are int64 labels in ``[0, num_classes)``.
    ``index_train`` / ``index_val`` are int64 positions in the dataset's
    original training set; ``index_train`` is sorted ascending. Forget and
    exclude files speak in these indices.
    ``state`` holds what was fitted on the training split (e.g. a text
    vocabulary); it is saved with a run so the data can be rebuilt exactly.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    index_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    index_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    spec: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def is_text(self) -> bool:
        return not self.x_train.is_floating_point()

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    def positions(self, indices: np.ndarray | list[int], what: str = "index") -> np.ndarray:
        """Row positions in ``x_train`` of original training indices.

        Raises a one-line error for indices that are outside the training set
        or that fall in the validation split.
        """
        idx = np.asarray(indices, dtype=np.int64)
        train_idx = self.index_train.numpy()
        pos = np.searchsorted(train_idx, idx)
        pos_c = np.clip(pos, 0, len(train_idx) - 1)
        ok = train_idx[pos_c] == idx
        if not ok.all():
            bad = idx[~ok]
            val = set(self.index_val.numpy().tolist())
            in_val = [int(b) for b in bad if int(b) in val]
            if in_val:
                raise DataError(
                    f"{what} {in_val[:5]} belong to the validation split of {self.name}, not the training set"
                )
            total = len(train_idx) + len(val)
            raise DataError(
                f"{what} {bad[:5].tolist()} are outside the training set of {self.name} (valid: 0..{total - 1})"
            )
        return pos_c

    def complement(self, positions: np.ndarray) -> np.ndarray:
        """Row positions of the training set not in ``positions`` (e.g. the retain set)."""
        mask = np.ones(self.n_train, dtype=bool)
        mask[np.asarray(positions, dtype=np.int64)] = False
        return np.nonzero(mask)[0]


def check_seed(seed: Any, what: str = "seed") -> int:
    """``seed`` as an int >= 0 (what NumPy's generators accept); otherwise a one-line ConfigError."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"{what} must be an integer >= 0, got {seed!r}")
    return int(seed)


def split_validation(
    n: int, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministically split ``range(n)`` into sorted (train, validation) positions."""
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, numbers.Real) or not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be a number in [0, 1), got {val_fraction!r}")
    rng = np.random.default_rng(check_seed(seed, "split_seed"))
    perm = rng.permutation(n)
    n_val = int(round(n * val_fraction))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def make_bundle(
    name: str,
    x_train: np.ndarray | torch.Tensor,
    y_train: np.ndarray | torch.Tensor,
    x_test: np.ndarray | torch.Tensor,
    y_test: np.ndarray | torch.Tensor,
    *,
    val_fraction: float = 0.0,
    split_seed: int = 0,
    num_classes: int | None = None,
    spec: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
) -> DataBundle:
    """A :class:`DataBundle` from in-memory arrays ``x [n, ...]``, ``y [n]`` (integer labels).

    Every training row stays a training row unless ``val_fraction > 0`` asks for a
    validation split (then those rows' indices are refused as forget indices, and a
    model trained on all of ``x_train`` must not be unlearned with this bundle).
    ``spec`` records name, split and a fingerprint of the labels, so a run trained on
    it is loaded back with ``load_run(path, data=bundle)``
    (:func:`check_bundle_matches` refuses a different bundle).
    """
    import torch

    xt = torch.as_tensor(x_train)
    yt = as_labels(y_train, "y_train")
    yte = as_labels(y_test, "y_test")
    xte = torch.as_tensor(x_test)
    for what, x, y in (("train", xt, yt), ("test", xte, yte)):
        if len(x) != len(y):
            raise UnlearnkitError(f"make_bundle: x_{what} has {len(x)} rows but y_{what} has {len(y)}")
        bad = ~torch.isfinite(x.reshape(len(x), -1)).all(1) if x.is_floating_point() and len(x) else None
        if bad is not None and bool(bad.any()):  # named here, not as "loss became nan" in training
            raise DataError(f"make_bundle: x_{what} holds NaN or infinite values in {int(bad.sum())} row(s), "
                            f"the first at row {int(bad.nonzero()[0, 0])}")
    tr, va = split_validation(len(yt), val_fraction, split_seed)
    num_classes = check_num_classes(num_classes, yt, yte)
    bundle = DataBundle(
        name=name,
        x_train=xt[tr],
        y_train=yt[tr],
        index_train=torch.as_tensor(tr, dtype=torch.int64),
        x_val=xt[va],
        y_val=yt[va],
        index_val=torch.as_tensor(va, dtype=torch.int64),
        x_test=xte,
        y_test=yte,
        num_classes=num_classes,
        state=dict(state or {}),
    )
    bundle.spec = {**memory_spec(bundle, val_fraction, split_seed), **(spec or {})}
    return bundle


def as_labels(y: Any, what: str) -> torch.Tensor:
    """``y`` as int64 labels ``[n]``; float labels that are not whole numbers are refused."""
    import torch

    t = torch.as_tensor(y)
    if t.dim() != 1:
        raise UnlearnkitError(f"{what}: labels must be one integer per row, got shape {list(t.shape)}")
    if t.is_floating_point() and not bool((t == t.round()).all()):
        raise UnlearnkitError(f"{what}: labels must be integers (class ids), got fractional values")
    return t.to(torch.int64)


def check_num_classes(num_classes: int | None, *labels: torch.Tensor) -> int:
    """``num_classes`` (default: largest label + 1), checked to cover every label."""
    present = [y for y in labels if len(y)]
    lo = min((int(y.min()) for y in present), default=0)
    hi = max((int(y.max()) for y in present), default=-1)
    if lo < 0:
        raise UnlearnkitError(f"labels must be class ids >= 0, got {lo}")
    if num_classes is None:
        return max(hi + 1, 2)
    if hi >= num_classes:
        raise UnlearnkitError(f"label {hi} is outside num_classes={num_classes} (labels must be 0..{num_classes - 1})")
    return int(num_classes)


def bundle_fingerprint(data: DataBundle) -> str:
    """sha256 of what identifies a bundle cheaply: split indices, labels, input shape, classes."""
    import hashlib

    h = hashlib.sha256()
    for t in (data.index_train, data.y_train, data.index_val, data.y_val, data.y_test):
        h.update(np.ascontiguousarray(t.numpy(), dtype=np.int64).tobytes())
    h.update(repr((data.input_shape, data.num_classes)).encode())
    return h.hexdigest()


def memory_spec(data: DataBundle, val_fraction: float, split_seed: int) -> dict[str, Any]:
    """The ``spec`` of a bundle built in memory (not by a registered loader)."""
    return {
        "name": data.name, "val_fraction": val_fraction, "split_seed": split_seed, "options": {},
        "data_root": None, "in_memory": True, "fingerprint": bundle_fingerprint(data),
    }


def check_bundle_matches(spec: dict[str, Any], data: DataBundle, where: str) -> None:
    """Refuse ``data`` for a run whose recorded ``spec`` has a different fingerprint."""
    want = spec.get("fingerprint")
    if want is not None and want != bundle_fingerprint(data):
        raise UnlearnkitError(
            f"{where}: the data passed is not the data the run was trained on ('{spec.get('name')}': "
            "different split, labels or shape); pass the same bundle"
        )


class LazyRows:
    """Rows of a map-style ``torch.utils.data.Dataset`` that stand in for an ``x`` tensor ``[n, ...]``.

    Nothing is read until :meth:`to`: indexing gives another ``LazyRows`` (a view
    over positions), :meth:`split` gives views of consecutive batches, and ``.to(device)``
    reads those rows (``dataset[i][0]`` each), stacks them and returns the tensor. So
    the training loop, evaluation and the methods' batch loops hold one batch at a time.
    ``shape`` / ``dtype`` come from the first item.
    """

    def __init__(self, dataset: Any, positions: np.ndarray, item_shape: tuple[int, ...], dtype: torch.dtype) -> None:
        self.dataset = dataset
        self.positions = np.asarray(positions, dtype=np.int64)
        self.item_shape = tuple(item_shape)
        self.dtype = dtype

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.item_shape)

    def dim(self) -> int:
        return 1 + len(self.item_shape)

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    def __getitem__(self, index: Any) -> "LazyRows":
        import torch

        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        pos = self.positions[index]
        return LazyRows(self.dataset, np.atleast_1d(pos), self.item_shape, self.dtype)

    def split(self, size: int) -> tuple["LazyRows", ...]:
        return tuple(self[i : i + size] for i in range(0, len(self), size))

    def to(self, device: Any = None, non_blocking: bool = False) -> torch.Tensor:
        """Read the rows: a tensor ``[len(self), *shape]`` on ``device``."""
        import torch

        xs = [dataset_item(self.dataset, int(i))[0] for i in self.positions]
        x = torch.stack(xs) if xs else torch.zeros((0, *self.item_shape), dtype=self.dtype)
        return x.to(device, non_blocking=non_blocking)

    def cat(self, other: "LazyRows") -> "LazyRows":
        """The rows of ``self`` then those of ``other`` (same dataset)."""
        if other.dataset is not self.dataset:
            raise UnlearnkitError("cannot concatenate rows of two different datasets")
        return LazyRows(self.dataset, np.concatenate([self.positions, other.positions]), self.item_shape, self.dtype)


def cat_rows(a: Any, b: Any) -> Any:
    """``a`` then ``b`` along the rows: ``torch.cat`` for tensors, :meth:`LazyRows.cat` for views."""
    import torch

    return a.cat(b) if isinstance(a, LazyRows) else torch.cat([a, b])


def dataset_item(dataset: Any, i: int) -> tuple[torch.Tensor, int]:
    """``dataset[i]`` checked to be an ``(x, y)`` pair: x a tensor, y an integer label."""
    import torch

    item = dataset[i]
    if not (isinstance(item, (tuple, list)) and len(item) == 2):
        raise UnlearnkitError(
            f"{type(dataset).__name__}[{i}] returned {type(item).__name__}"
            f"{f' of length {len(item)}' if isinstance(item, (tuple, list)) else ''}, not an (x, y) pair; "
            "make __getitem__ return (input tensor, integer label)"
        )
    x, y = item
    x = torch.as_tensor(x)
    y_t = torch.as_tensor(y)
    if y_t.numel() != 1 or y_t.is_floating_point() or y_t.dtype == torch.bool:
        raise UnlearnkitError(
            f"{type(dataset).__name__}[{i}]: the label is {y!r}, not one integer class id; "
            "make __getitem__ return (input tensor, integer label)"
        )
    return x, int(y_t)


def dataset_rows(dataset: Any, what: str) -> tuple[LazyRows, torch.Tensor]:
    """``(LazyRows over every item, labels [n])`` of a map-style Dataset.

    The labels are read once here (each item is loaded and its input dropped, so the
    inputs are never all in memory).
    """
    import torch

    try:
        n = len(dataset)
    except TypeError:
        raise UnlearnkitError(f"{what}: {type(dataset).__name__} has no len(); pass a map-style Dataset") from None
    if n == 0:
        return LazyRows(dataset, np.zeros(0, np.int64), (), torch.float32), torch.zeros(0, dtype=torch.int64)
    labels = np.zeros(n, dtype=np.int64)
    for i in range(n):
        x, labels[i] = dataset_item(dataset, i)
        if i == 0:
            shape, dtype = tuple(x.shape), x.dtype
    return LazyRows(dataset, np.arange(n), shape, dtype), torch.as_tensor(labels)


def datasets_bundle(
    train: Any, test: Any | None = None, *, name: str = "datasets", num_classes: int | None = None
) -> DataBundle:
    """A :class:`DataBundle` over map-style torch Datasets (every training item is a training
    row; no validation split). Inputs are read batch by batch when used."""
    import torch

    x_train, y_train = dataset_rows(train, "train dataset")
    if test is not None:
        x_test, y_test = dataset_rows(test, "test dataset")
        if len(x_test) and x_test.item_shape != x_train.item_shape:
            raise UnlearnkitError(
                f"test items have shape {list(x_test.item_shape)} but training items {list(x_train.item_shape)}"
            )
    else:
        x_test, y_test = x_train[np.zeros(0, np.int64)], torch.zeros(0, dtype=torch.int64)
    n = len(y_train)
    if n == 0:
        raise UnlearnkitError("the training dataset is empty")
    bundle = DataBundle(
        name=name, x_train=x_train, y_train=y_train, index_train=torch.arange(n),
        x_val=x_train[np.zeros(0, np.int64)], y_val=torch.zeros(0, dtype=torch.int64),
        index_val=torch.zeros(0, dtype=torch.int64), x_test=x_test, y_test=y_test,
        num_classes=check_num_classes(num_classes, y_train, y_test),
    )
    bundle.spec = memory_spec(bundle, 0.0, 0)
    return bundle


def as_bundle(data: Any, num_classes: int | None = None) -> DataBundle:
    """What the model-first API accepts as ``data``, as a :class:`DataBundle`:

    - a :class:`DataBundle` (returned as is);
    - tensors or arrays ``(x, y)`` or ``(x, y, x_test, y_test)`` (every row a training row);
    - map-style torch Datasets ``train`` or ``(train, test)``, each item ``(x, y)``.

    Forget indices then are row numbers of ``x`` / of the training Dataset.
    """
    import torch
    from torch.utils.data import Dataset as TorchDataset

    if isinstance(data, DataBundle):
        return data
    if isinstance(data, TorchDataset):
        return datasets_bundle(data, num_classes=num_classes)
    if isinstance(data, (tuple, list)):
        if len(data) in (1, 2) and all(isinstance(d, TorchDataset) for d in data):
            return datasets_bundle(*data, num_classes=num_classes)
        if len(data) in (2, 4) and all(isinstance(d, (torch.Tensor, np.ndarray)) for d in data):
            x, y = data[0], data[1]
            x_test, y_test = (data[2], data[3]) if len(data) == 4 else (x[:0], y[:0])
            return make_bundle("tensors", x, y, x_test, y_test, num_classes=num_classes)
    raise UnlearnkitError(
        f"data must be a DataBundle, tensors (x, y) or (x, y, x_test, y_test), or torch Datasets "
        f"train or (train, test); got {type(data).__name__}"
        + (f" of {len(data)} {', '.join(sorted({type(d).__name__ for d in data}))}" if isinstance(data, (tuple, list)) else "")
    )


class Dataset:
    """A registered dataset: how to find its files, load them and (maybe) fetch them.

    Subclasses set ``name``/``description`` and implement :meth:`load`; file-based
    ones also implement :meth:`search_paths`. ``arg`` is the part after ``:`` in
    parametrised names such as ``tabular:wine`` or ``npz:/path/file.npz``.
    """

    name: str = ""
    description: str = ""

    def __init__(self, arg: str | None = None) -> None:
        self.arg = arg

    @property
    def full_name(self) -> str:
        return f"{self.name}:{self.arg}" if self.arg else self.name

    def search_paths(self, data_root: str | None) -> list[str]:
        """Directories looked in, in order; empty for datasets bundled with a package."""
        return []

    def locate(self, data_root: str | None) -> str | None:
        """The directory or file holding the data, or None if it is not available."""
        return "bundled"

    def availability(self, data_root: str | None) -> tuple[bool, str]:
        """(available, where found or where looked) for ``unlearnkit data list``."""
        where = self.locate(data_root)
        if where is not None:
            return True, where
        return False, "looked in: " + ", ".join(self.search_paths(data_root))

    def load(
        self,
        data_root: str | None,
        val_fraction: float,
        split_seed: int,
        state: dict[str, Any] | None = None,
        **options: Any,
    ) -> DataBundle:
        raise NotImplementedError

    def fetch(self, data_root: str | None) -> str:
        """Obtain the data if it can be obtained here; returns what was done."""
        ok, where = self.availability(data_root)
        if ok:
            return f"{self.full_name}: already available ({where})"
        raise UnlearnkitError(f"{self.full_name}: cannot be fetched automatically; {where}")


# Where file-based datasets are looked for, after --data-root and $UNLEARNKIT_DATA.
DATA_ENV = "UNLEARNKIT_DATA"
SYSTEM_DATA_DIR = Path("/usr/share/datasets")  # Debian's dataset-* packages install here


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/unlearnkit`` (default ``~/.cache/unlearnkit``): where ``data fetch`` puts files."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "unlearnkit"


def parse_options(dataset: str, options: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Check a loader's options against ``defaults`` and coerce CLI strings to their types.

    ``defaults`` maps each valid option to its default (its type gives the
    coercion: ``"true"``/``"1"`` -> True for bools, ``"32"`` -> 32 for ints).
    Coercion is idempotent, so options recorded in run.json load again.
    """
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        valid = ", ".join(sorted(defaults)) or "none"
        raise UnlearnkitError(f"{dataset}: unknown option(s) {', '.join(unknown)}; valid options: {valid}")
    out = dict(defaults)
    for key, value in options.items():
        kind = type(defaults[key])
        try:
            if kind is bool and isinstance(value, str):
                if value.lower() not in ("1", "true", "yes", "0", "false", "no"):
                    raise ValueError
                value = value.lower() in ("1", "true", "yes")
            elif kind is int and (isinstance(value, bool) or float(value) != int(float(value))):
                raise ValueError
            out[key] = kind(value)
        except (TypeError, ValueError):
            raise UnlearnkitError(f"{dataset}: option {key}={value!r} is not a valid {kind.__name__}") from None
    return out


def split_off_test(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) positions of ``y [n]``, stratified by label when every class has 2+ members.

    Used by datasets without an official test split; sorting keeps the original
    order so training indices follow the source file.
    """
    from sklearn.model_selection import train_test_split

    y = np.asarray(y)
    _, counts = np.unique(y, return_counts=True)
    stratify = y if counts.min() >= 2 and round(len(y) * fraction) >= len(counts) else None
    tr, te = train_test_split(np.arange(len(y)), test_size=fraction, random_state=seed, stratify=stratify)
    return np.sort(tr), np.sort(te)


class FileDataset(Dataset):
    """A dataset read from files, looked for in a fixed order of directories.

    Order: ``<data_root>/<name>/``, ``<data_root>/``, ``$UNLEARNKIT_DATA/<name>/``,
    ``$UNLEARNKIT_DATA/``, ``<cache_dir()>/<name>/``, ``/usr/share/datasets/<name>/``.
    Subclasses implement :meth:`find_in` and set ``how_to_get`` (one line).
    """

    how_to_get: str = ""

    def search_paths(self, data_root: str | None) -> list[str]:
        dirs: list[Path] = []
        for base in (data_root, os.environ.get(DATA_ENV)):
            if base:
                dirs += [Path(base) / self.name, Path(base)]
        dirs += [cache_dir() / self.name, SYSTEM_DATA_DIR / self.name]
        return list(dict.fromkeys(str(d) for d in dirs))

    def find_in(self, directory: Path) -> Path | None:
        """The location of the data inside ``directory`` (itself or a subdirectory), or None."""
        raise NotImplementedError

    def locate(self, data_root: str | None) -> str | None:
        for d in self.search_paths(data_root):
            found = self.find_in(Path(d)) if Path(d).is_dir() else None
            if found is not None:
                return str(found)
        return None

    def require(self, data_root: str | None) -> Path:
        """The located data, or a one-line error saying where it looked and how to get it."""
        where = self.locate(data_root)
        if where is None:
            raise UnlearnkitError(
                f"{self.name}: data files not found; looked in {', '.join(self.search_paths(data_root))}; "
                f"{self.how_to_get}"
            )
        return Path(where)

    def fetch(self, data_root: str | None) -> str:
        """Files that cannot be downloaded here: report where they are, or how to get them."""
        where = self.locate(data_root)
        if where is not None:
            return f"{self.name}: already available ({where})"
        raise UnlearnkitError(f"{self.name}: not found; {self.how_to_get}")
