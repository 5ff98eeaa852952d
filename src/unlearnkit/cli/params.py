"""The CLI's one ``KEY=VALUE`` parser (``--set``, ``--option``) and the one rule that types values.

Values are typed the same way everywhere: an int, else a float (``1e-3`` included), else
``true``/``false``, else ``none``/``null``, else the text itself. The receiver (a method's
pydantic ``Params``, a dataset's options) checks keys and converts further.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

from unlearnkit.errors import UnlearnkitError

Scope = Literal["none", "optional", "required"]


def parse_value(text: str) -> Any:
    """``"3"`` -> 3, ``"1e-3"`` -> 0.001, ``"True"`` -> True, ``"null"`` -> None, ``"sgd"`` -> ``"sgd"``."""
    text = text.strip()
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    return text


def parse_assignments(
    items: list[str] | None,
    flag: str = "--set",
    *,
    scope: Scope = "none",
    scope_name: str = "SCOPE",
    hint: Callable[[], str] | None = None,
) -> dict[str, Any]:
    """``["lr=0.01", "epochs=3"]`` -> ``{"lr": 0.01, "epochs": 3}``.

    ``scope``: ``"none"`` (``KEY=VALUE``; a dot is part of the key), ``"optional"``
    (``KEY=VALUE`` or ``SCOPE.KEY=VALUE`` -> ``{"SCOPE": {"KEY": value}}``, as RUM's per-group
    settings) or ``"required"`` (``SCOPE.KEY=VALUE`` only, as per-method settings);
    ``scope_name`` is what the error message calls the scope (``GROUP``, ``METHOD``).
    A malformed item is a one-line :class:`UnlearnkitError` naming it; ``hint()`` (called
    only then) may add what is valid, e.g. the method's keys.
    """
    scoped = f"{scope_name}.KEY=VALUE"
    shape = {"none": "KEY=VALUE", "optional": f"KEY=VALUE or {scoped}", "required": scoped}[scope]
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        outer, dot, inner = key.partition(".") if scope != "none" else (key, "", "")
        if not sep or not key or (dot and not (outer and inner)) or (scope == "required" and not dot):
            extra = f" ({hint()})" if hint is not None else ""
            raise UnlearnkitError(f"{flag} {item!r}: expected {shape}{extra}")
        value = parse_value(raw)
        if not dot:
            if isinstance(out.get(key), dict):
                raise UnlearnkitError(f"{flag}: '{key}' is used both as a key and as a scope")
            out[key] = value
            continue
        group = out.setdefault(outer, {})
        if not isinstance(group, dict):
            raise UnlearnkitError(f"{flag}: '{outer}' is used both as a key and as a scope")
        group[inner] = value
    return out
