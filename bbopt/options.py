"""Options: the one home for checking what users pass to strategies and problems.

Every check raises :class:`OptionError` (a ``ValueError``) that carries the option's name,
so the config layer can point at ``optimizer.<name>`` or ``problem.<name>`` and exit 2,
and whose message starts with its owner (``"mezo: eps must be a positive number, got 0"``).

Names follow one table (``docs/options.md``): a strategy that renamed an option lists the
old name in its ``renamed_options`` class attribute, and :func:`check_options` answers the
old name with the new one. :func:`merge_recommended` applies what a problem recommends for
a strategy (``problem.recommended_options(name)``) under the user's own options.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np


class OptionError(ValueError):
    """An option that is unknown, unused by the chosen variant, or out of range; ``option``
    is its name."""

    def __init__(self, option: str, message: str):
        super().__init__(message)
        self.option = option


def _prefix(owner: str) -> str:
    return f"{owner}: " if owner else ""


def number(value: Any, name: str, owner: str = "") -> float:
    """``value`` as a ``float`` if it is a finite number (``bool`` is refused)."""
    return _number(value, name, owner, integer=False, what="a finite number")


def positive(value: Any, name: str, owner: str = "", *, integer: bool = False) -> Any:
    """``value`` if it is a finite number > 0 (an ``int`` when ``integer``)."""
    return _number(value, name, owner, integer=integer, low=0, low_open=True, what="positive")


def nonnegative(value: Any, name: str, owner: str = "", *, integer: bool = False) -> Any:
    """``value`` if it is a finite number ≥ 0 (an ``int`` when ``integer``)."""
    return _number(value, name, owner, integer=integer, low=0, what="non-negative")


def integer(value: Any, name: str, owner: str = "", *, minimum: int | None = None,
            maximum: int | None = None) -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]`` (``bool`` is refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise OptionError(name, f"{_prefix(owner)}{name} must be an integer, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise OptionError(name, f"{_prefix(owner)}{name} must be an integer in {_interval(minimum, maximum)}, "
                                f"got {value!r}")
    return int(value)


def number_in(value: Any, name: str, owner: str, low: float, high: float, *, low_open: bool = False,
              high_open: bool = False) -> float:
    """``value`` as a finite ``float`` in the interval from ``low`` to ``high``."""
    return _number(value, name, owner, integer=False, low=low, high=high, low_open=low_open,
                   high_open=high_open, what="a number in " + _interval(low, high, low_open, high_open))


def one_of(value: Any, name: str, owner: str, allowed: Iterable[Any]) -> Any:
    """``value`` if it is one of ``allowed`` (compared by type and value: ``0`` is not ``False``)."""
    allowed = tuple(allowed)
    if not any(type(value) is type(a) and value == a for a in allowed):
        hint = difflib.get_close_matches(value, [a for a in allowed if isinstance(a, str)], n=1) \
            if isinstance(value, str) else []
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        raise OptionError(name, f"{_prefix(owner)}{name} must be one of {', '.join(map(repr, allowed))}, "
                                f"got {value!r}{extra}")
    return value


def point(value: Any, name: str, owner: str, space: Any) -> np.ndarray:
    """``value`` as a ``(d,)`` float array of finite numbers inside the Box ``space`` (a point of a
    ``soft`` box may lie outside it: the box only says where to search)."""
    try:
        x = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        x = None
    if x is None or x.shape != (space.dim,) or not np.isfinite(x).all():
        raise OptionError(name, f"{_prefix(owner)}{name} must be a list of {space.dim} finite numbers, got {value!r}")
    if not space.soft and not space.contains(x).all():
        raise OptionError(name, f"{_prefix(owner)}{name} must lie inside the box {space!r}, got {value!r}")
    return x


def unused(name: str, owner: str, reason: str) -> OptionError:
    """The error for an option the chosen variant does not use (never ignored silently)."""
    return OptionError(name, f"{_prefix(owner)}{name} is not used {reason}; remove it")


def check_options(func: Any, options: Mapping[str, Any], owner: str,
                  skip: tuple[str, ...] = ("self", "space", "seed")) -> None:
    """Reject keyword options ``func`` does not accept: a renamed option gets its new name
    (``func.renamed_options``), any other the nearest valid name."""
    params = inspect.signature(func).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = [p for p in params if p not in skip]
    renamed: Mapping[str, str] = getattr(func, "renamed_options", {})
    for key in options:
        if key in valid:
            continue
        if key in renamed:
            raise OptionError(key, f"{owner} has no option {key!r}; it is now called {renamed[key]!r} "
                                   "(see docs/options.md)")
        hint = difflib.get_close_matches(key, valid, n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else f"; valid options: {', '.join(valid) or 'none'}"
        raise OptionError(key, f"{owner} has no option {key!r}{extra}")


def merge_recommended(recommended: Mapping[str, Any], given: Mapping[str, Any]) -> dict:
    """``given`` over ``recommended``, key by key; nested mappings (e.g. ``inner_options``)
    merge the same way, so a user who sets one inner option keeps the others recommended."""
    out = dict(recommended)
    for key, value in given.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_recommended(out[key], value)
        else:
            out[key] = value
    return out


def unknown_name_message(kind: str, name: str, known: Any, listed: int = 30) -> str:
    """One line: the nearest name, then the known ones (a long registry is cut short)."""
    hint = difflib.get_close_matches(name, list(known), n=1)
    suggestion = f"did you mean {hint[0]!r}? " if hint else ""
    names = sorted(known)
    shown = ", ".join(names[:listed]) + (f", … ({len(names) - listed} more)" if len(names) > listed else "")
    return f"unknown {kind} {name!r}; {suggestion}known: {shown}"


def _number(value: Any, name: str, owner: str, *, integer: bool, low: float | None = None,
            high: float | None = None, low_open: bool = False, high_open: bool = False, what: str) -> Any:
    ok = (not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
          and math.isfinite(value) and (not integer or isinstance(value, (int, np.integer))))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        kind = "integer" if integer else "number"
        text = f"a {what} {kind}" if what in ("positive", "non-negative") else what
        raise OptionError(name, f"{_prefix(owner)}{name} must be {text}, got {value!r}")
    return int(value) if integer else float(value)


def _interval(low: float | None, high: float | None, low_open: bool = False, high_open: bool = False) -> str:
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    return f"{left}{'-∞' if low is None else low}, {'∞' if high is None else high}{right}"


def point_in_box(value: Any, name: str, owner: str, space: Any) -> np.ndarray:
    """``value`` as a ``(space.dim,)`` float array of finite numbers inside the Box ``space``
    (e.g. a start point ``x0``)."""
    try:
        x = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        x = None
    if x is None or x.shape != (space.dim,) or not np.isfinite(x).all() or not space.contains(x).all():
        raise OptionError(name, f"{_prefix(owner)}{name} must be {space.dim} finite numbers inside the box, "
                                f"got {value!r}")
    return x
