"""Records that anyone with write access to a database could have written:
decoded whole, bounded, or refused with one reason. Pure: no I/O.

A record is trusted by nothing: JSON nested thousands deep
(``RecursionError``), numbers such as ``1e400`` (``inf``, then
``OverflowError`` from ``int``), megabytes of text, or the wrong type in
any field are all just "invalid, because ...". Callers skip an invalid
record, report it, and go on with the others.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Any, Mapping

from virtio_ovs.core.errors import UserError
from virtio_ovs.core.validate import int_in_range

MAX_DEPTH = 8  # our records nest 3 deep at most
MAX_RECORD = 1 << 20  # characters: a group of thousands of rules fits


class InvalidRecord(ValueError):
    """Why a stored record cannot be used (one line)."""


@dataclasses.dataclass(frozen=True)
class Invalid:
    """A record that was skipped: where it is and why."""
    kind: str  # "network", "security group", "rule", "agent record"
    key: str  # the external_ids key, or the row's name
    reason: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def line(self) -> str:
        return f"invalid {self.kind} record {self.key!r}: {self.reason}"


def load(text: Any, limit: int = MAX_RECORD) -> Any:
    """``text`` as JSON, or InvalidRecord: at most ``limit`` characters,
    ``MAX_DEPTH`` levels of nesting, finite numbers only."""
    if not isinstance(text, str):
        raise InvalidRecord("not a string")
    if len(text) > limit:
        raise InvalidRecord(f"longer than {limit} characters")
    if _depth(text) > MAX_DEPTH:
        raise InvalidRecord(f"nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text, parse_constant=_no_constant,
                          parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:
        raise InvalidRecord(f"not JSON ({_first_line(exc)})") from None


_STRUCTURE = re.compile(r'[\[\]{}"]')


def _depth(text: str) -> int:
    """The deepest nesting of [ and { outside strings (before parsing:
    the parser itself recurses). Only the structural characters are
    visited, and only when there are enough brackets to go too deep."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return 0
    depth = deepest = 0
    in_string = False
    for match in _STRUCTURE.finditer(text):
        char = match.group()
        if char == '"':
            if not (in_string and _escaped(text, match.start())):
                in_string = not in_string
        elif in_string:
            continue
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                return deepest
        else:
            depth -= 1
    return deepest


def _escaped(text: str, at: int) -> bool:
    """Is the quote at ``at`` escaped (an odd run of backslashes before)?"""
    run = at
    while run > 0 and text[run - 1] == "\\":
        run -= 1
    return (at - run) % 2 == 1


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:120]


def int_field(data: dict, key: str, low: int, high: int) -> int:
    """``data[key]``: an integer (not a bool, not a float) in low..high.
    (The reason shows the value cut short: it goes into a log line.)"""
    value = data.get(key)
    try:
        return int_in_range(value, key, low, high)
    except UserError:
        raise InvalidRecord(f"{key} must be an integer in {low}..{high}, "
                            f"got {short(value)}") from None


def mapping(value: Any, keys: set[str], what: str = "the record") -> dict:
    """``value`` as an object with only ``keys`` (a subset of them)."""
    if not isinstance(value, dict):
        raise InvalidRecord(f"{what} must be a JSON object")
    unknown = set(value) - keys
    if unknown:
        raise InvalidRecord(f"unknown key {short(sorted(unknown)[0])} in "
                            f"{what}")
    return value


def short(value: Any, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters for a log line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# The fields of an agent's or a standby's record that are read, not just
# shown: their types, checked before anything uses them.
_AGENT_NUMBERS = ("heartbeat", "report_interval", "since", "started_at")


def agent_record(text: str) -> dict:
    """An agent's or standby's record (``virtio-ovs:agent``,
    ``virtio-ovs:standby``), or InvalidRecord."""
    data = load(text, 64 * 1024)
    if not isinstance(data, dict):
        raise InvalidRecord("the record must be a JSON object")
    for key in _AGENT_NUMBERS:
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or
                                  not isinstance(value, (int, float))
                                  or value < 0):
            raise InvalidRecord(f"{key} must be a number of seconds, got "
                                f"{short(value)}")
    if data.get("report_interval") == 0:
        raise InvalidRecord("report_interval must be above 0")
    if "pid" in data:
        int_field(data, "pid", 1, 2**31)
    for key in ("host", "role", "backend"):
        if not isinstance(data.get(key, ""), str):
            raise InvalidRecord(f"{key} must be a string")
    mappings = data.get("bridge_mappings", {})
    if not isinstance(mappings, dict) or not all(
            isinstance(v, str) for v in mappings.values()):
        raise InvalidRecord("bridge_mappings must map physnets to bridges")
    return data


def read_agent_record(external_ids: Mapping[str, str], key: str
                      ) -> tuple[dict | None, Invalid | None]:
    """The agent or standby record under ``key``: (the record, None), or
    (None, why it is invalid), or (None, None) when there is none."""
    text = external_ids.get(key)
    if not text:
        return None, None
    try:
        return agent_record(text), None
    except InvalidRecord as exc:
        return None, Invalid("agent", key, str(exc))
