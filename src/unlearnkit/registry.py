"""A small name -> object registry used for datasets, models, methods and scores.

Third-party packages add entries through Python entry points: a registry made with
``entry_points="unlearnkit.methods"`` loads, on first use, every entry point of that
group. An entry point naming a class or function registers it under the entry
point's name; one naming a module just imports it (its ``@register`` decorators
run). In a plugin's ``pyproject.toml``::

    [project.entry-points."unlearnkit.methods"]
    my_method = "my_package.unlearning:MyMethod"
    [project.entry-points."unlearnkit.models"]
    my_net = "my_package.models:build_my_net"      # builder(input_shape, num_classes, **kw)
    [project.entry-points."unlearnkit.datasets"]
    my_data = "my_package.data:MyDataset"          # a unlearnkit.data.Dataset subclass
"""

from __future__ import annotations

import types
import warnings
from importlib.metadata import entry_points
from typing import Callable, Generic, Iterator, TypeVar

from unlearnkit.errors import UnlearnkitError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; ``register`` is used as a decorator and sets the ``name``
    attribute of a registered class (so a class never repeats its own name).

    >>> MODELS = Registry("model")
    >>> @MODELS.register("mlp")
    ... def build_mlp(...): ...
    """

    def __init__(self, kind: str, entry_points: str | None = None) -> None:
        self.kind = kind
        self.group = entry_points
        self._items: dict[str, T] = {}
        self._plugins_loaded = entry_points is None

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if self._items.get(name, obj) is not obj:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            if isinstance(obj, type):
                obj.name = name  # type: ignore[attr-defined]
            self._items[name] = obj
            return obj

        return decorator

    def _load_plugins(self) -> None:
        """Load this registry's entry points once; a broken plugin is a one-line warning."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self.group):
            try:
                obj = ep.load()
                if not isinstance(obj, types.ModuleType):
                    self.register(ep.name)(obj)
            except Exception as e:  # noqa: BLE001 - a third party's bug must not break the toolkit
                warnings.warn(f"{self.kind} plugin '{ep.name}' ({ep.value}) not loaded: {e}", stacklevel=2)

    def get(self, name: str) -> T:
        self._load_plugins()
        try:
            return self._items[name]
        except KeyError:
            raise UnlearnkitError(
                f"unknown {self.kind} '{name}'; choose from: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
