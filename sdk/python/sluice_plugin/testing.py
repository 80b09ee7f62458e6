"""The native test double behind :mod:`sluice_plugin.host`, and the runner for behaviour cases
shared by the Rust, TypeScript and Python versions of a plugin (``cases.json``)."""

from __future__ import annotations

import json
from typing import Any, Optional

from . import (
    Accept,
    DeadLetter,
    Deliver,
    Drop,
    Event,
    FanOut,
    Failure,
    Modify,
    Plugin,
    Reject,
    Reroute,
    RetryAfter,
    Skip,
    _headers,
    _json_bytes,
    host,
)


def reset() -> None:
    """Forgets configuration, logs and counters."""
    host._backend = host._Double()


def set_config(key: str, value: str) -> None:
    """Sets a configuration value that :func:`sluice_plugin.host.config` returns."""
    host._backend.config[key] = value


def logs() -> list:
    """Log lines written so far: ``(level, message, fields)``."""
    return list(host._backend.logs)


def counters() -> dict:
    """Counters added to so far."""
    return dict(host._backend.counters)


# The JSON form of decisions, the same as `sluice plugin test` prints for a component.


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return bytes(raw).decode("utf-8", "replace")


def _changes_json(out: dict, m: Modify) -> dict:
    if m.value is not None:
        out["value"] = _json_or_text(_json_bytes(m.value))
    if m.key is not None:
        out["key"] = m.key if isinstance(m.key, str) else bytes(m.key).decode("utf-8", "replace")
    if m.headers is not None:
        out["headers"] = {h.key: h.text() for h in _headers(m.headers)}
    return out


def decision_json(decision: Any, hook: str) -> dict:
    """A decision as the JSON object `sluice plugin test` prints (``{"action": "drop", ...}``)."""
    field = {"produce": "action", "consume": "delivery", "failure": "decision"}[hook]
    kind = type(decision)
    if kind is Accept:
        return {field: "accept"}
    if kind is Deliver:
        return {field: "deliver"}
    if kind is Modify:
        return _changes_json({field: "modify"}, decision)
    if kind in (Drop, Reject, DeadLetter, Skip):
        name = {Drop: "drop", Reject: "reject", DeadLetter: "dead-letter", Skip: "skip"}[kind]
        return {field: name, "reason": decision.reason}
    if kind is Reroute:
        out = {field: "reroute", "topic": decision.topic}
        return _changes_json(out, decision.changes) if decision.changes is not None else out
    if kind is FanOut:
        return {field: "fan-out", "events": [{"topic": e.topic, "value": _json_or_text(e.value)} for e in decision.events]}
    if kind is RetryAfter:
        return {field: "retry-after", "ms": decision.ms}
    raise TypeError(f"{decision!r} is not a decision")


def case_event(spec: dict) -> Event:
    """An event from a case's JSON description (`topic`, `value`, optional `key`, `headers`,
    `timestamp_ms`)."""
    return Event(
        spec.get("topic", "events"),
        spec.get("value", {}),
        key=spec.get("key"),
        headers=spec.get("headers"),
        timestamp_ms=spec.get("timestamp_ms", 0),
    )


def run_case(plugin: Plugin, case: dict) -> tuple:
    """Runs one case with a fresh test double; returns ``(decisions as JSON, counters)``."""
    reset()
    for key, value in case.get("config", {}).items():
        set_config(key, value)
    hook = case["hook"]
    if hook == "produce":
        got = [decision_json(a, hook) for a in plugin.on_produce([case_event(e) for e in case["events"]])]
    elif hook == "consume":
        got = [decision_json(d, hook) for d in plugin.on_consume([case_event(e) for e in case["events"]])]
    else:
        spec = case["failure"]
        failure = Failure(case_event(spec["event"]), spec["attempt"], spec.get("status"), spec["error"])
        got = [decision_json(plugin.on_failure(failure), hook)]
    return got, counters()


def load_cases(path: str) -> list:
    """The cases of a ``cases.json`` file."""
    with open(path, encoding="utf-8") as file:
        return json.load(file)["cases"]


def check_case(plugin: Plugin, case: dict, expect_counters: Optional[bool] = True) -> None:
    """Asserts that ``plugin`` decides as ``case`` expects (and adds the counters it lists)."""
    got, added = run_case(plugin, case)
    assert got == case["expect"], f"{case['name']}: got {got}, expected {case['expect']}"
    if expect_counters:
        for name, value in case.get("counters", {}).items():
            assert added.get(name) == value, f"{case['name']}: counter {name} is {added.get(name)}, expected {value}"
