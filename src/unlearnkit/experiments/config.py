"""The benchmark configuration: one YAML file, validated with pydantic.

:func:`load_config` reads the YAML with a loader that remembers where every
key and value sits, so each validation problem is reported as one line
``KEY: PROBLEM (line N)``. All problems are reported at once.

The config names the dataset, model and training recipe, the seeds, the
forget sets (random, class, by memorization, by entanglement, by any score
column), the memorization estimate, the methods with their hyperparameters,
the RUM variants, SISA, the metrics, the population of N models per side
(per-example ε, KLoM) and the executor. See ``docs/bench.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from unlearnkit.errors import UnlearnkitError, validation_problems
from unlearnkit.io import read_text
from unlearnkit.training import TrainConfig

Level = Literal["low", "medium", "high", "mix"]
Variant = Literal["vanilla", "shuffle", "rum_f", "rum"]
# The cheap scores computed on every original model when a config does not list its own.
DEFAULT_SCORES = ("confidence", "max_confidence", "entropy", "binary_accuracy", "margin", "loss")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DatasetConfig(_Strict):
    """Which data, and how its validation split is drawn."""

    name: str
    data_root: str | None = None
    val_fraction: float = Field(0.1, ge=0, lt=1)
    split_seed: int = 0
    options: dict[str, Any] = Field(default_factory=dict)


class ModelConfig(_Strict):
    name: str = "mlp"
    width: int | None = Field(None, ge=1)
    kwargs: dict[str, Any] = Field(default_factory=dict)

    def build_kwargs(self) -> dict[str, Any]:
        return {**self.kwargs, **({"width": self.width} if self.width is not None else {})}


class TrainingConfig(TrainConfig):
    """The recipe of the original model and of every retrained reference.

    The seed comes from the config's ``seeds``, so it is not accepted here.
    """

    @model_validator(mode="after")
    def _no_seed(self) -> "TrainingConfig":
        if "seed" in self.model_fields_set:
            raise ValueError("the training seed comes from the top-level 'seeds' list; remove it here")
        return self


class ForgetSpec(_Strict):
    """One forget set (or one per level when ``level`` is a list).

    ``size``: a count, or a fraction of the training set when in (0, 1).
    """

    kind: Literal["random", "class", "memorization", "entanglement", "score"]
    size: float | None = Field(None, gt=0)
    level: list[Level] | None = None
    class_: int | None = Field(None, alias="class", ge=0)
    score: str | None = None
    bins: int = Field(15, ge=3, description="rum-bins: bins of distance to the training centroid")
    construction: Literal["es-quantiles", "rum-bins"] = Field("es-quantiles", description="entanglement sets only")
    class_balanced: bool = False

    @field_validator("level", mode="before")
    @classmethod
    def _one_level(cls, v: Any) -> Any:
        # ``level: high`` is short for ``level: [high]``.
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _check(self) -> "ForgetSpec":
        needs_level = self.kind in ("memorization", "entanglement", "score")
        if needs_level and self.level is None:
            raise ValueError(f"a '{self.kind}' forget set needs 'level' (low, medium, high, mix)")
        if not needs_level and self.level is not None:
            raise ValueError(f"'level' does not apply to a '{self.kind}' forget set")
        if self.kind == "class":
            if self.class_ is None:
                raise ValueError("a 'class' forget set needs 'class' (the label to forget)")
            if self.size is not None:
                raise ValueError("a 'class' forget set takes the whole class; remove 'size'")
        elif self.size is None:
            raise ValueError(f"a '{self.kind}' forget set needs 'size' (a count, or a fraction in (0, 1))")
        if self.kind == "score" and not self.score:
            raise ValueError("a 'score' forget set needs 'score' (a column of scores.parquet)")
        if self.kind != "score" and self.score is not None:
            raise ValueError(f"'score' does not apply to a '{self.kind}' forget set")
        if self.size is not None and self.size >= 1 and not float(self.size).is_integer():
            raise ValueError("size must be a whole count or a fraction in (0, 1)")
        return self

    @property
    def levels(self) -> list[str | None]:
        return list(self.level) if self.level else [None]

    def expand(self) -> list["ForgetSpec"]:
        """One spec per level (``level`` then holds exactly one)."""
        return [self.model_copy(update={"level": None if lv is None else [lv]}) for lv in self.levels]

    @property
    def one_level(self) -> str | None:
        return self.level[0] if self.level else None

    @property
    def label(self) -> str:
        """The ``forget_kind`` column: random, class-3, memorization-low, entanglement-high,
        entanglement-rum-bins-high (RUM's construction, so both can sit in one bench), ..."""
        if self.kind == "class":
            return f"class-{self.class_}"
        if self.kind == "score":
            return f"{self.score}-{self.one_level}"
        if self.kind == "random":
            return "random"
        if self.kind == "entanglement" and self.construction == "rum-bins":
            return f"entanglement-rum-bins-{self.one_level}"
        return f"{self.kind}-{self.one_level}"


class MemorizationConfig(_Strict):
    """Feldman memorization estimate; run only when something needs it.

    The subset models train with ``training`` when given, else with the model
    family's default memorization recipe (no weight decay, until each model fits
    its subset); ``epochs`` (the cap under ``until_fit``) and ``until_fit``
    override the recipe's. A median in-subset accuracy below ``fit_threshold``
    is reported as a warning.
    """

    k: int = Field(100, ge=2)
    fraction: float = Field(0.7, gt=0, lt=1)
    epochs: int | None = Field(None, ge=1, description="overrides the recipe's epochs")
    until_fit: float | None = Field(None, gt=0, le=1, description="stop each model at this in-subset accuracy")
    fit_threshold: float = Field(0.99, gt=0, le=1)
    training: TrainingConfig | None = None
    seed: int = 0


class RumConfig(_Strict):
    """RUM variants (docs/rum.md). ``vanilla`` rows are the plain methods' rows."""

    variants: list[Variant] = Field(default_factory=lambda: ["vanilla", "shuffle", "rum_f"])
    methods: list[str] = Field(default_factory=list, description="methods run as shuffle / rum_f")
    candidates: list[str] = Field(default_factory=list, description="methods the 'rum' variant chooses from")
    refine_by: str = "memorization"
    groups: int = Field(3, ge=2)
    retain: Literal["strict", "rum"] = "strict"
    forget_sets: list[str] | None = Field(None, description="forget_kind labels to run RUM on; default all")


class TuningConfig(_Strict):
    """Tune each method inside the bench (see ``docs/methods.md``), once per forget kind
    (``per: forget_kind``: on a validation set matched to that kind) or once for all
    (``per: none``: on a random validation set), on the first seed's original, disjoint
    from every evaluated forget set of every seed. Tuned values replace the searched keys
    of ``methods:``; the other keys still come from there.

    ``validation: reserve`` (default) sets aside a class-stratified random ``reserve``
    fraction of the training set: every evaluated forget set (except whole classes) is drawn
    from the other examples, and each kind's validation set is the same construction on the
    reserve, so it is as hard as the sets it stands for even when the hardest examples are
    few. ``validation: match`` keeps every example available to the evaluated sets and
    matches a validation set to each kind among what they leave (refused, presets kept,
    when no close match is left)."""

    per: Literal["forget_kind", "none"] = "forget_kind"
    validation: Literal["reserve", "match"] = "reserve"
    reserve: float = Field(0.5, gt=0, lt=1, description="fraction of each class set aside for validation sets (validation: reserve)")
    grid: Literal["small", "wide"] = "wide"
    grids: dict[str, dict[str, list[Any]]] = Field(default_factory=dict, description="{method: {param: [values]}} replacing `grid` for that method")
    max_cost: float | None = Field(0.2, gt=0, description="most examples a setting may process, as a fraction of retraining's")
    methods: list[str] | None = Field(None, description="methods to tune; default every approximate method listed")
    rum_grid: Literal["small", "wide", "none"] = Field("small", description="the grid the 'rum' variant searches per candidate and group")
    val_seed: int = 1000
    confirm: bool | int = Field(True, description="re-run the best settings on other seeds' originals (each against "
                                                  "its own reference) and choose by the mean ToW over all: true = "
                                                  "every other seed, N = the next N seeds, false = none")

    @field_validator("confirm")
    @classmethod
    def _confirm_count(cls, v: bool | int) -> bool | int:
        if not isinstance(v, bool) and v < 0:
            raise ValueError(f"confirm: a number of seeds must be >= 0, got {v}")
        return v

    def confirm_seeds(self, seeds: list[int]) -> list[int]:
        """The seeds whose originals confirm the tuning (the first seed's) choice."""
        if self.confirm is True:
            return list(seeds[1:])
        return list(seeds[1:1 + int(self.confirm)])  # False is 0

    def tuned_methods(self, methods: list[str]) -> list[str]:
        """The methods of ``methods`` this block tunes (exact methods have nothing to tune)."""
        from unlearnkit.methods import METHODS

        listed = self.methods if self.methods is not None else methods
        return [m for m in listed if m in METHODS and not METHODS.get(m).exact
                and (METHODS.get(m).tune_grid or m in self.grids)]

    def grid_of(self, method: str) -> str | dict[str, list[Any]]:
        return self.grids.get(method, self.grid)

    def reserve_input(self) -> dict[str, Any] | None:
        """What a forget or validation unit needs to rebuild the tuning reserve, or None."""
        return {"fraction": self.reserve, "seed": self.val_seed} if self.validation == "reserve" else None


class PopulationConfig(_Strict):
    """N models per side on some forget sets: per-example ε, forget quality F, the challenge's final
    score and KLoM (docs/metrics.md). On the first seed's forget set of each kind listed, N originals
    (seeds ``seed``..``seed+N-1``, all training rows) and N oracles (the same seeds, D minus S) train
    with the ensemble engine; each method unlearns every original (member j with seed ``seed+j``) with
    the hyperparameters of the bench's vanilla rows of that kind; a second N oracles (seeds
    ``seed+N``..``seed+2N-1``) give the noise floor: what retraining itself scores."""

    n: int = Field(16, description="models per side (>= 2; the challenge's F counts nothing at N = 2)")
    forget_sets: list[str] = Field(min_length=1, description="forget_kind labels")
    methods: list[str] | None = Field(None, description="default: the config's approximate methods")
    seed: int = Field(1000, ge=0, description="first seed of the originals and oracles")
    scorer_grid: bool = Field(False, description="also ε on the challenge scorer's grid (~30 ms per forget example per row)")

    @field_validator("n")
    @classmethod
    def _two_per_side(cls, v: int) -> int:
        if v < 2:
            raise ValueError(f"per-example ε and KLoM compare two populations of models: n must be at least 2, got {v}")
        return v

    def methods_of(self, methods: list[str]) -> list[str]:
        """The methods run on the population: those listed, or every approximate one of ``methods``
        (retrain is the oracle itself; SISA needs its own shard ensemble, not a plain model)."""
        from unlearnkit.methods import METHODS

        if self.methods is not None:
            return list(self.methods)
        return [m for m in methods if m in METHODS and not METHODS.get(m).exact]


class SisaConfig(_Strict):
    shards: int = Field(5, ge=1)
    slices: int = Field(3, ge=1)
    epochs: int | None = Field(None, ge=1, description="defaults to the training recipe's epochs")
    aggregate: Literal["mean", "vote"] = "mean"


class MetricsConfig(_Strict):
    """How rows are scored. ``pairing``: ``seed`` compares the model of seed s with the
    reference of seed s (the RUM protocol); ``mean`` with the mean of the references of
    every seed for that forget kind (their forget sets differ when built per seed)."""

    mia_max_per_side: int = Field(2000, ge=10, description="MIA SVC: members and non-members subsampled to this many each")
    mia_repeats: int = Field(5, ge=1, description="MIA SVC fits per model on subsamples of different seeds (mean reported)")
    pairing: Literal["seed", "mean"] = "seed"


class InstancesConfig(_Strict):
    """Per-instance difficulty analysis (docs/difficulty.md) on one forget set of the first seed."""

    forget_set: str
    methods: list[str] = Field(default_factory=lambda: ["retrain", "finetune", "neggrad_plus"])
    seeds: int = Field(3, ge=2)


class ExecutorConfig(_Strict):
    """Where units run. ``threads``: torch threads per unit (and CPUs per Ray task); fixed
    so that results are bitwise identical whichever executor runs a unit. One thread is
    fastest for small models (measured here: a 64-wide mlp used 10x the CPU time with 2
    threads on a busy machine); raise it for convolutional models on an idle machine."""

    kind: Literal["local", "ray"] = "local"
    address: str | None = None
    threads: int = Field(1, ge=1)
    workers: int = Field(1, ge=1, description="local: units of a wave run on this many processes (e.g. the CPU cores)")


class BenchConfig(_Strict):
    """A whole benchmark (see ``configs/demo.yaml``)."""

    name: str = "bench"
    dataset: DatasetConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    seeds: list[int] = Field(default_factory=lambda: [0])
    forget_sets: list[ForgetSpec] = Field(min_length=1)
    memorization: MemorizationConfig = Field(default_factory=MemorizationConfig)
    scores: list[str] = Field(default_factory=lambda: list(DEFAULT_SCORES))
    methods: dict[str, dict[str, Any]] = Field(default_factory=dict)
    rum: RumConfig | None = None
    tuning: TuningConfig | None = None
    sisa: SisaConfig = Field(default_factory=SisaConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    instances: InstancesConfig | None = None
    population: PopulationConfig | None = None
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    device: str = "auto"

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_count(cls, v: Any) -> Any:
        # ``seeds: 3`` means seeds 0, 1, 2.
        if isinstance(v, int) and not isinstance(v, bool):
            if v < 1:
                raise ValueError("a seed count must be at least 1")
            return list(range(v))
        return v

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("at least one seed is needed")
        if len(set(v)) != len(v):
            raise ValueError("seeds must be distinct")
        return v

    @field_validator("methods", mode="before")
    @classmethod
    def _method_list(cls, v: Any) -> Any:
        # ``methods: [finetune, neggrad]`` is short for defaults.
        if isinstance(v, list):
            return {m: {} for m in v}
        if isinstance(v, dict):
            return {k: ({} if p is None else p) for k, p in v.items()}
        return v

    def forget_specs(self) -> list[ForgetSpec]:
        """Every forget set, one per level."""
        return [s for spec in self.forget_sets for s in spec.expand()]

    @property
    def needs_memorization(self) -> bool:
        uses = [s.kind == "memorization" or (s.kind == "score" and s.score == "memorization") for s in self.forget_specs()]
        return any(uses) or "memorization" in self.scores or (self.rum is not None and self.rum.refine_by == "memorization")

    @property
    def score_names(self) -> list[str]:
        """Scores to compute on each original model (memorization joins when estimated)."""
        names = list(self.scores)
        for s in self.forget_specs():
            if s.kind == "score" and s.score not in names:
                names.append(s.score)
        if self.rum is not None and self.rum.refine_by not in names:
            names.append(self.rum.refine_by)
        if self.needs_memorization and "memorization" not in names:
            names.append("memorization")
        return names


# --------------------------------------------------------------------------- YAML with line numbers


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that also returns, for every key path, the 1-based line it sits on."""


def _walk(node: yaml.Node, path: tuple, lines: dict[tuple, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value
            lines[path + (key,)] = k.start_mark.line + 1
            _walk(v, path + (key,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _walk(v, path + (i,), lines)


def parse_yaml(text: str, source: str = "config") -> tuple[Any, dict[tuple, int]]:
    """Parse YAML; returns (data, {key path: line}). Syntax errors name the line."""
    try:
        node = yaml.compose(text, Loader=_LineLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UnlearnkitError(f"{source}: invalid YAML: {problem}{where}") from None
    if node is None:
        raise UnlearnkitError(f"{source}: the config is empty")
    lines: dict[tuple, int] = {}
    _walk(node, (), lines)
    data = _LineLoader(text).get_single_data()
    return data, lines


def _line_of(loc: tuple, lines: dict[tuple, int]) -> int | None:
    # The deepest prefix of the error location that exists in the file
    # (a missing key is reported at the line of its parent).
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _clean_loc(loc: tuple) -> tuple:
    # pydantic adds the union member or validator name to the location
    # (e.g. ``level.list[...]`` or ``training.function-before[...]``); drop those.
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))


def format_problems(problems: list[tuple[tuple, str]], lines: dict[tuple, int], source: str) -> str:
    """One line per problem: ``SOURCE: KEY: PROBLEM (line N)``."""
    out, seen = [], set()
    for loc, msg in problems:
        key = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_of(loc, lines)
        text = f"{source}: {key}: {msg}" + (f" (line {line})" if line else "")
        if text not in seen:
            seen.add(text)
            out.append(text)
    return "\n".join(out)


def _semantic_problems(cfg: BenchConfig) -> list[tuple[tuple, str]]:
    """Problems pydantic cannot see: unknown names in the registries, bad hyperparameters."""
    from unlearnkit.data import DATASETS, get_dataset
    from unlearnkit.methods import METHODS
    from unlearnkit.models import MODELS

    out: list[tuple[tuple, str]] = []
    base = cfg.dataset.name.split(":")[0]
    if base not in DATASETS:
        out.append((("dataset", "name"), f"unknown dataset '{cfg.dataset.name}'; choose from: {', '.join(DATASETS.names())}"))
    else:
        ok, where = get_dataset(cfg.dataset.name).availability(cfg.dataset.data_root)
        if not ok:
            out.append((("dataset", "name"), f"dataset '{cfg.dataset.name}' is not present here ({where}); get it with `unlearnkit data fetch {cfg.dataset.name}`"))
    if cfg.model.name not in MODELS:
        out.append((("model", "name"), f"unknown model '{cfg.model.name}'; choose from: {', '.join(MODELS.names())}"))
    for name, params in cfg.methods.items():
        if name not in METHODS:
            out.append((("methods", name), f"unknown method '{name}'; choose from: {', '.join(METHODS.names())}"))
            continue
        try:
            METHODS.get(name).resolve_params(base, params)
        except UnlearnkitError as e:
            out.append((("methods", name), str(e).split(": ", 1)[-1]))
    if cfg.rum is not None:
        for field in ("methods", "candidates"):
            for i, m in enumerate(getattr(cfg.rum, field)):
                if m not in METHODS:
                    out.append((("rum", field, i), f"unknown method '{m}'; choose from: {', '.join(METHODS.names())}"))
        if "rum" in cfg.rum.variants and not cfg.rum.candidates:
            out.append((("rum", "variants"), "the 'rum' variant needs 'candidates' (methods to choose from per group)"))
        labels = {s.label for s in cfg.forget_specs()}
        for i, lab in enumerate(cfg.rum.forget_sets or []):
            if lab not in labels:
                out.append((("rum", "forget_sets", i), f"no forget set '{lab}'; this config has: {', '.join(sorted(labels))}"))
    if cfg.tuning is not None:
        for i, m in enumerate(cfg.tuning.methods or []):
            if m not in cfg.methods:
                out.append((("tuning", "methods", i), f"'{m}' is not among the config's methods: {', '.join(cfg.methods)}"))
            elif m in METHODS and METHODS.get(m).exact:
                out.append((("tuning", "methods", i), f"'{m}' is exact; it has nothing to tune"))
        for m, g in cfg.tuning.grids.items():
            if m not in METHODS:
                out.append((("tuning", "grids", m), f"unknown method '{m}'; choose from: {', '.join(METHODS.names())}"))
                continue
            fields = METHODS.get(m).Params.model_fields
            for k in g:
                if k not in fields:
                    out.append((("tuning", "grids", m, k), f"unknown key for {m} (valid keys: {', '.join(fields)})"))
    if cfg.instances is not None:
        labels = {s.label for s in cfg.forget_specs()}
        if cfg.instances.forget_set not in labels:
            out.append((("instances", "forget_set"), f"no forget set '{cfg.instances.forget_set}'; this config has: {', '.join(sorted(labels))}"))
    if cfg.population is not None:
        labels = {s.label for s in cfg.forget_specs()}
        for i, lab in enumerate(cfg.population.forget_sets):
            if lab not in labels:
                out.append((("population", "forget_sets", i), f"no forget set '{lab}'; this config has: {', '.join(sorted(labels))}"))
        for i, m in enumerate(cfg.population.methods or []):
            if m not in cfg.methods:
                out.append((("population", "methods", i), f"'{m}' is not among the config's methods: {', '.join(cfg.methods)}"))
            elif m in METHODS and METHODS.get(m).exact:
                why = "the oracles are retrained models already" if m == "retrain" else "it needs its own shard ensemble"
                out.append((("population", "methods", i), f"'{m}' is exact ({why}); the population runs approximate methods"))
    labels = [s.label for s in cfg.forget_specs()]
    dup = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dup:
        out.append((("forget_sets",), f"forget sets {dup} appear more than once"))
    if not cfg.methods and cfg.rum is None:
        out.append((("methods",), "no methods to run; list at least one"))
    return out


def validate_config(data: Any, lines: dict[tuple, int] | None = None, source: str = "config") -> BenchConfig:
    """Validate a parsed config; raises one :class:`UnlearnkitError` listing every problem."""
    lines = lines or {}
    if not isinstance(data, dict):
        raise UnlearnkitError(f"{source}: the config must be a mapping of keys (line 1)")
    try:
        cfg = BenchConfig.model_validate(data)
    except ValidationError as e:
        problems = [(_clean_loc(loc), msg) for loc, msg in validation_problems(e)]
        raise UnlearnkitError(format_problems(problems, lines, source)) from None
    problems = _semantic_problems(cfg)
    if problems:
        raise UnlearnkitError(format_problems(problems, lines, source))
    return cfg


def load_config(path: str | Path) -> BenchConfig:
    """Read and validate a YAML benchmark config."""
    path = Path(path)
    data, lines = parse_yaml(read_text(path, "config file"), str(path))  # missing, binary: one line
    return validate_config(data, lines, str(path))
