"""The one validation layer (validation.py): types from the hints, specs from key(), the caller's error and rules."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping

import pytest

from unlearning_challenge.validation import IGNORE, Rules, check, describe, from_mapping, key, to_mapping


class Problem(ValueError):
    pass


RULES = Rules(Problem)


class Colour(str, Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Inner:
    size: int
    ratio: float = key(default=0.5, above=0, below=1)


@dataclass(frozen=True)
class Outer:
    name: str
    count: int = key(default=1, minimum=0)
    seconds: float = key(default=1.0, unit="seconds", minimum=0)
    flag: bool = True
    colour: Colour = Colour.RED
    note: str | None = None
    day: dt.date | None = None
    inner: Inner = key(default_factory=lambda: Inner(size=1), null_is_default=True)
    items: tuple[Inner, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    sorting: str = key(default="desc", choices=("asc", "desc"))


def build(raw, rules=RULES):
    return from_mapping(Outer, raw, rules, "f.yaml")


def test_a_record_is_built_with_converted_values():
    outer = build({"name": "x", "seconds": 2, "colour": "blue", "inner": {"size": 3}, "items": [{"size": 4}],
                   "day": dt.date(2024, 1, 2), "extra": {"a": [1]}})
    assert outer.seconds == 2.0 and isinstance(outer.seconds, float)
    assert outer.colour is Colour.BLUE and outer.inner == Inner(size=3) and outer.items == (Inner(size=4),)
    assert build({"name": "x", "inner": None}).inner == Inner(size=1)  # null: the default


@pytest.mark.parametrize("raw, message", [
    ({"name": "x", "count": 2.5}, "f.yaml: 'count' must be an integer, got 2.5"),
    ({"name": "x", "count": True}, "f.yaml: 'count' must be an integer, got True"),
    ({"name": "x", "seconds": False}, "f.yaml: 'seconds' must be a number (seconds), got False"),
    ({"name": "x", "seconds": float("nan")}, "f.yaml: 'seconds' must be a finite number (seconds), got nan"),
    ({"name": "x", "seconds": -1}, "f.yaml: 'seconds' must be at least 0 (seconds), got -1.0"),
    ({"name": "x", "count": -1}, "f.yaml: 'count' must be at least 0, got -1"),
    ({"name": "x", "flag": 1}, "f.yaml: 'flag' must be true or false, got 1"),
    ({"name": 3}, "f.yaml: 'name' must be a string, got 3"),
    ({"name": "x", "colour": "green"}, "f.yaml: 'colour' must be red or blue, got 'green'"),
    ({"name": "x", "sorting": "up"}, "f.yaml: 'sorting' must be asc or desc, got 'up'"),
    ({"name": "x", "day": "June 28"}, "f.yaml: 'day' must be a date written YYYY-MM-DD (unquoted), got 'June 28'"),
    ({"name": "x", "inner": {"size": 1, "ratio": 1}}, "f.yaml: 'inner.ratio' must be in (0, 1), got 1.0"),
    ({"name": "x", "inner": {}}, "f.yaml: missing required key 'inner.size'"),
    ({"name": "x", "inner": 3}, "f.yaml: 'inner' must be a mapping, got 3"),
    ({"name": "x", "items": [{"size": 1}, {"size": "2"}]}, "f.yaml: 'items[1].size' must be an integer, got '2'"),
    ({"name": "x", "items": [3]}, "f.yaml: 'items[0]' must be a mapping, got 3"),
    ({"name": "x", "items": {"size": 1}}, "f.yaml: 'items' must be a list, got {'size': 1}"),
    ({}, "f.yaml: missing required key 'name'"),
    ({"name": "x", "colr": 1}, "f.yaml: unknown top-level key(s) ['colr']; valid keys: ['colour', 'count'"),
    ({"name": "x", "inner": {"size": 1, "sise": 2}}, "f.yaml: unknown key(s) ['sise'] in 'inner'; valid keys: ["),
    ({"name": "x", "count": None}, "f.yaml: 'count' must be an integer, got None"),
])
def test_a_bad_value_is_refused_naming_its_key(raw, message):
    with pytest.raises(Problem) as info:
        build(raw)
    assert str(info.value).startswith(message)


def test_unknown_keys_and_nulls_may_be_ignored():
    rules = Rules(Problem, unknown=IGNORE, null_is_absent=True, mapping_name="an object")
    assert build({"name": "x", "later": 1, "count": None}, rules) == Outer(name="x")
    with pytest.raises(Problem, match="'inner' must be an object, got 3"):
        build({"name": "x", "inner": 3}, rules)


def test_a_record_is_written_back_as_plain_data():
    outer = build({"name": "x", "colour": "blue", "items": [{"size": 4}]})
    data = to_mapping(outer)
    assert "note" not in data and "day" not in data  # None left out
    assert data["colour"] == "blue" and data["items"] == [{"size": 4, "ratio": 0.5}]
    assert build(data) == outer


def test_check_of_one_value_and_the_description_of_a_record():
    assert check(3, float, RULES, "w", "k") == 3.0
    with pytest.raises(Problem, match="^w: 'k' must be an integer, got 3.0$"):
        check(3.0, int, RULES, "w", "k")
    lines = describe(Outer)
    assert "seconds: a number (seconds); at least 0; default 1.0" in lines
    assert "inner.ratio: a number; in (0, 1); default 0.5" in lines
    assert "colour: red or blue; default 'red'" in lines
