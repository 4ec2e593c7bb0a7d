"""One way to declare the fields of the files this package reads, and to check them.

A file's records are frozen dataclasses. Each field's type hint says what a value
must be; :func:`key` adds its default, its unit (text for messages and docs, e.g.
``"seconds"``) and its bounds. :func:`from_mapping` builds a record from a parsed
YAML or JSON mapping, :func:`to_mapping` writes one back. The caller chooses the
error class and whether unknown keys are refused or ignored (:class:`Rules`).

Types understood: ``bool``, ``int``, ``float``, ``str``, ``datetime.date``, Enum
classes (their members' values), ``X | None``, nested dataclasses, ``tuple[X, ...]``
and ``list[X]``, ``Mapping[str, X]`` and ``dict``, and ``Any``. The rules are the
same everywhere: a bool is never a number, an int is accepted where a float
belongs (and stored as a float), a float never where an int belongs, and a float
must be finite.

Every message names the key by its path (``'training.epochs'``, ``'runs[1].status'``),
says what was expected and what was found. This module imports nothing of the package.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import types
import typing
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any, NoReturn

__all__ = ["IGNORE", "REFUSE", "Rules", "Spec", "check", "check_keys", "describe", "fail", "from_mapping",
           "key", "spec_of", "to_mapping"]

REFUSE = "refuse"  # an unknown key is an error naming the valid keys
IGNORE = "ignore"  # an unknown key is skipped (a file written by a newer program)

_MISSING = dataclasses.MISSING


@dataclasses.dataclass(frozen=True)
class Rules:
    """How one file format reports what is wrong.

    error: the exception raised (its message is the whole sentence).
    unknown: :data:`REFUSE` or :data:`IGNORE` keys the record does not declare.
    null_is_absent: a null value of a field that has a default counts as absent
        (the default); otherwise null is accepted only where the type allows None.
    mapping_name: how messages name a mapping ("a mapping" for YAML, "an object" for JSON).
    """

    error: type[Exception]
    unknown: str = REFUSE
    null_is_absent: bool = False
    mapping_name: str = "a mapping"


@dataclasses.dataclass(frozen=True)
class Spec:
    """What a field's type hint does not say. Bounds: ``minimum``/``maximum`` inclusive,
    ``above``/``below`` exclusive; ``choices``: the closed set of a str field; ``min_items``:
    the least length of a list; ``required``: the file must hold the key even though the
    field has a default (for records built in code); ``none_as_null``: :func:`to_mapping`
    writes None as null instead of leaving the key out; ``null_is_default``: null means the
    default (e.g. a YAML section left empty)."""

    unit: str = ""
    doc: str = ""
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    below: float | None = None
    choices: tuple[Any, ...] = ()
    min_items: int = 0
    required: bool = False
    none_as_null: bool = False
    null_is_default: bool = False


_NO_SPEC = Spec()
_METADATA = "validation"


def key(*, default: Any = _MISSING, default_factory: Any = _MISSING, unit: str = "", doc: str = "",
        minimum: float | None = None, maximum: float | None = None, above: float | None = None,
        below: float | None = None, choices: Sequence[Any] = (), min_items: int = 0, required: bool = False,
        none_as_null: bool = False, null_is_default: bool = False) -> Any:
    """A dataclass field with its :class:`Spec`. Without a default (or with ``required``) a file must hold it."""
    spec = Spec(unit=unit, doc=doc, minimum=minimum, maximum=maximum, above=above, below=below,
                choices=tuple(choices), min_items=min_items, required=required, none_as_null=none_as_null,
                null_is_default=null_is_default)
    return dataclasses.field(default=default, default_factory=default_factory, metadata={_METADATA: spec})


def spec_of(f: dataclasses.Field) -> Spec:
    return f.metadata.get(_METADATA, _NO_SPEC)


# --------------------------------------------------------------------------- messages


def _where(where: str, path: str, text: str) -> str:
    head = f"{where}: " if where else ""
    return f"{head}'{path}' {text}" if path else f"{head}{text}"


def fail(rules: Rules, where: str, path: str, text: str) -> NoReturn:
    """Raise the caller's error: ``"<where>: '<path>' <text>"``."""
    raise rules.error(_where(where, path, text))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _either(values: Sequence[Any]) -> str:
    """The valid values in words: "a", "a or b", "a, b or c"."""
    words = [str(value.value if isinstance(value, Enum) else value) for value in values]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _bounds(spec: Spec) -> str:
    """The bounds in words: "at least 2", "in (0, 1)", "greater than 0", "in [0, 1]"."""
    low = (spec.minimum, "[", "at least") if spec.minimum is not None else (spec.above, "(", "greater than")
    high = (spec.maximum, "]", "at most") if spec.maximum is not None else (spec.below, ")", "less than")
    if low[0] is not None and high[0] is not None:
        return f"in {low[1]}{low[0]}, {high[0]}{high[1]}"
    bound = low if low[0] is not None else high
    return f"{bound[2]} {bound[0]}"


def _unit(spec: Spec) -> str:
    return f" ({spec.unit})" if spec.unit else ""


# --------------------------------------------------------------------------- types


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _optional(hint: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); any other hint -> (hint, False)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(args) < len(typing.get_args(hint)):
            return (args[0] if len(args) == 1 else typing.Union[tuple(args)]), True
    return hint, False


def _expected(hint: Any, rules: Rules) -> str:
    """What a value of ``hint`` is, in words."""
    hint, _ = _optional(hint)
    origin = typing.get_origin(hint) or hint
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if hint is str:
        return "a string"
    if hint is dt.date:
        return "a date written YYYY-MM-DD (unquoted)"
    if isinstance(hint, type) and issubclass(hint, Enum):
        return _either([member.value for member in hint])
    if dataclasses.is_dataclass(hint) or origin in (dict, Mapping):
        return rules.mapping_name
    if origin in (tuple, list):
        return "a list"
    return getattr(hint, "__name__", str(hint))


def check(value: Any, hint: Any, rules: Rules, where: str, path: str, spec: Spec = _NO_SPEC) -> Any:
    """``value`` checked against the type ``hint`` and ``spec``; returns it converted (an int to a float, a
    string to its Enum member, a mapping to its record, a list to a tuple of records)."""
    inner, nullable = _optional(hint)
    if value is None:
        if nullable or hint is Any:
            return None
        fail(rules, where, path, f"must be {_expected(inner, rules)}{_unit(spec)}, got None")
    hint = inner
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if isinstance(hint, type) and issubclass(hint, Enum):
        values = [member.value for member in hint]
        if isinstance(value, hint):
            return value
        if isinstance(value, bool) or value not in values:
            fail(rules, where, path, f"must be {_either(values)}, got {_shown(value)}")
        return hint(value)
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, rules, where, path)
    if origin in (tuple, list) or hint in (tuple, list):
        return _sequence(value, hint, rules, where, path, spec)
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return _mapping(value, hint, rules, where, path)
    value = _scalar(value, hint, rules, where, path, spec)
    if spec.choices and value not in spec.choices:
        fail(rules, where, path, f"must be {_either(spec.choices)}, got {_shown(value)}")
    if any(bound is not None for bound in (spec.minimum, spec.maximum, spec.above, spec.below)):
        if ((spec.minimum is not None and not value >= spec.minimum)
                or (spec.maximum is not None and not value <= spec.maximum)
                or (spec.above is not None and not value > spec.above)
                or (spec.below is not None and not value < spec.below)):
            fail(rules, where, path, f"must be {_bounds(spec)}{_unit(spec)}, got {_shown(value)}")
    return value


def _scalar(value: Any, hint: Any, rules: Rules, where: str, path: str, spec: Spec) -> Any:
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            fail(rules, where, path, f"must be a finite number{_unit(spec)}, got {_shown(value)}")
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    elif hint is dt.date:
        ok = isinstance(value, dt.date)  # a datetime is a date too
    else:
        raise TypeError(f"validation: no rule for the type {hint!r} (at {path!r})")
    if not ok:
        fail(rules, where, path, f"must be {_expected(hint, rules)}{_unit(spec)}, got {_shown(value)}")
    return value


def _sequence(value: Any, hint: Any, rules: Rules, where: str, path: str, spec: Spec) -> tuple | list:
    if not isinstance(value, (list, tuple)):
        fail(rules, where, path, f"must be a list, got {_shown(value)}")
    if len(value) < spec.min_items:
        fail(rules, where, path, "must be a non-empty list" if spec.min_items == 1
             else f"must list at least {spec.min_items} items, got {len(value)}")
    args = typing.get_args(hint)
    item = args[0] if args else Any
    items = [check(v, item, rules, where, f"{path}[{i}]") for i, v in enumerate(value)]
    return tuple(items) if (typing.get_origin(hint) or hint) is tuple else items


def _not_a_mapping(value: Any, rules: Rules, where: str, path: str) -> NoReturn:
    fail(rules, where, path, f"must be {rules.mapping_name}, got {_shown(value)}" if path
         else f"the top level must be {rules.mapping_name}, got {_shown(value)}")


def _mapping(value: Any, hint: Any, rules: Rules, where: str, path: str) -> dict:
    if not isinstance(value, Mapping):
        _not_a_mapping(value, rules, where, path)
    args = typing.get_args(hint)
    item = args[1] if len(args) == 2 else Any
    return {k: check(v, item, rules, where, f"{path}.{k}" if path else str(k)) for k, v in value.items()}


# --------------------------------------------------------------------------- records


def check_keys(raw: Mapping[str, Any], allowed: Sequence[str] | set[str], rules: Rules, where: str,
               path: str = "", required: Sequence[str] = ()) -> None:
    """Refuse (under :data:`REFUSE`) keys not in ``allowed``, naming the valid ones; then refuse absent ``required`` keys."""
    if rules.unknown == REFUSE:
        unknown = sorted(set(raw) - set(allowed), key=str)
        if unknown:
            text = f"unknown key(s) {unknown} in '{path}'" if path else f"unknown top-level key(s) {unknown}"
            fail(rules, where, "", f"{text}; valid keys: {sorted(allowed)}")
    missing = [name for name in required if name not in raw]
    if missing:
        names = [f"{path}.{name}" if path else name for name in missing]
        fail(rules, where, "", f"missing required key '{names[0]}'" if len(names) == 1
             else f"missing required keys {names}")


def _has_default(f: dataclasses.Field) -> bool:
    return f.default is not _MISSING or f.default_factory is not _MISSING


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not _MISSING else f.default


def from_mapping(cls: type, raw: Any, rules: Rules, where: str, path: str = "") -> Any:
    """The record ``cls`` from a parsed mapping; ``where`` starts every message (e.g. the file's name),
    ``path`` is the record's own key path inside the file ("" at the top)."""
    if not isinstance(raw, Mapping):
        _not_a_mapping(raw, rules, where, path)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    required = [f.name for f in fields if not _has_default(f) or spec_of(f).required]
    check_keys(raw, [f.name for f in fields], rules, where, path, required)
    hints = _hints(cls)
    values = {}
    for f in fields:
        if f.name not in raw:
            continue
        spec, value = spec_of(f), raw[f.name]
        if value is None and _has_default(f) and not spec.required and (spec.null_is_default or rules.null_is_absent):
            continue
        values[f.name] = check(value, hints[f.name], rules, where, f"{path}.{f.name}" if path else f.name, spec)
    return cls(**values)


def _plain(value: Any) -> Any:
    """A value as plain JSON/YAML data: records to mappings, tuples to lists, Enum members to their values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_mapping(value)
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {k: _plain(item) for k, item in value.items()}
    if isinstance(value, Enum):
        return value.value
    return value


def to_mapping(record: Any) -> dict[str, Any]:
    """The record as plain data, in field order; a None value is left out unless its field says ``none_as_null``.
    A nested record with its own ``to_json`` is written by it."""
    data = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if value is None and not spec_of(f).none_as_null:
            continue
        data[f.name] = value.to_json() if hasattr(value, "to_json") and dataclasses.is_dataclass(value) \
            else _plain(value)
    return data


def describe(cls: type, prefix: str = "") -> list[str]:
    """One line per key of a record (nested records expanded): its path, type, unit, default and doc."""
    hints = _hints(cls)
    lines = []
    for f in dataclasses.fields(cls):
        spec, hint = spec_of(f), hints[f.name]
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(_optional(hint)[0]):
            lines += describe(_optional(hint)[0], f"{path}.")
            continue
        words = _expected(hint, Rules(ValueError))
        if _optional(hint)[1]:
            words += " or null"
        parts = [f"{path}: {words}{_unit(spec)}"]
        if any(b is not None for b in (spec.minimum, spec.maximum, spec.above, spec.below)):
            parts.append(_bounds(spec))
        if _has_default(f) and not spec.required:
            parts.append(f"default {_plain(_default(f))!r}")
        if spec.doc:
            parts.append(spec.doc)
        lines.append("; ".join(parts))
    return lines
