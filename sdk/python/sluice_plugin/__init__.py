"""Write Sluice plugins in Python.

A plugin is a subclass of :class:`Plugin` that overrides only the hooks it needs, registered with
:func:`export`. ``sluice plugin build`` turns the module into a WebAssembly component
(componentize-py); natively, the same module is unit-tested with pytest, the host functions in
:mod:`sluice_plugin.host` writing to the test double in :mod:`sluice_plugin.testing`::

    from sluice_plugin import Accept, Drop, Event, Plugin, export

    class DropTests(Plugin):
        def produce(self, event: Event):
            if event.json().get("test") is True:
                return Drop("test event")
            return Accept()

    export(DropTests())

    assert DropTests().produce(Event("orders", {"test": True})) == Drop("test event")
"""

from __future__ import annotations

import json as _json
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from . import host

__all__ = [
    "Accept",
    "Action",
    "DeadLetter",
    "Decision",
    "Deliver",
    "Delivery",
    "Drop",
    "Event",
    "Failure",
    "FanOut",
    "Header",
    "Modify",
    "Plugin",
    "Reject",
    "Reroute",
    "RetryAfter",
    "Skip",
    "export",
    "host",
    "pointer",
]

_MISSING = object()


def pointer(value: Any, path: str, default: Any = None) -> Any:
    """The value at a JSON pointer (RFC 6901) inside ``value``, or ``default`` when there is
    none: ``pointer({"a": [{"b/c": 1}]}, "/a/0/b~1c") == 1``."""
    if path == "":
        return value
    if not path.startswith("/"):
        return default
    for token in path[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict):
            value = value.get(token, _MISSING)
        elif isinstance(value, list) and token.isdigit() and (token == "0" or not token.startswith("0")):
            index = int(token)
            value = value[index] if index < len(value) else _MISSING
        else:
            return default
        if value is _MISSING:
            return default
    return value


@dataclass(slots=True)
class Header:
    """A Kafka record header."""

    key: str
    value: bytes

    def text(self) -> str:
        """The value as UTF-8 text (invalid bytes replaced)."""
        return bytes(self.value).decode("utf-8", "replace")


def _to_bytes(text: Union[str, bytes, bytearray, None]) -> Optional[bytes]:
    if text is None or isinstance(text, bytes):
        return text
    if isinstance(text, bytearray):
        return bytes(text)
    return text.encode("utf-8")


def _headers(headers: Any) -> list:
    """Headers from a list of :class:`Header` (or anything with ``key`` and ``value``) or a
    ``{name: str | bytes}`` mapping."""
    if headers is None:
        return []
    if isinstance(headers, dict):
        return [Header(k, _to_bytes(v)) for k, v in headers.items()]
    return [h if isinstance(h, Header) else Header(h.key, _to_bytes(h.value)) for h in headers]


def _json_bytes(value: Any) -> bytes:
    """JSON text for an event value: bytes are taken as JSON text already; anything else is
    serialised."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return _json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class Event:
    """An event on its way into Kafka (produce path) or out of it (consume path).

    ``value`` is the event's JSON text as bytes; :meth:`json` parses it (once). In tests, build
    events from Python values: ``Event("orders", {"order_id": "o-1"})``.
    """

    __slots__ = ("topic", "key", "value", "headers", "timestamp_ms", "_parsed")

    def __init__(
        self,
        topic: str,
        value: Any = b"{}",
        *,
        key: Union[str, bytes, None] = None,
        headers: Any = None,
        timestamp_ms: int = 0,
    ):
        self.topic = topic
        self.value = _json_bytes(value)
        self.key = _to_bytes(key)
        self.headers = _headers(headers)
        self.timestamp_ms = timestamp_ms
        self._parsed = None

    @classmethod
    def _from_wit(cls, e: Any) -> "Event":
        # The component's own event record: take its fields as they are, without copying.
        event = cls.__new__(cls)
        event.topic, event.key, event.value = e.topic, e.key, e.value
        event.headers, event.timestamp_ms, event._parsed = e.headers, e.timestamp_ms, None
        return event

    def json(self) -> Any:
        """The value parsed as JSON (parsed once, then cached). Raises ``ValueError`` if it is
        not JSON."""
        if self._parsed is None:
            self._parsed = (_json.loads(self.value),)
        return self._parsed[0]

    def text(self) -> str:
        """The value as UTF-8 text."""
        return bytes(self.value).decode("utf-8", "replace")

    def header(self, name: str) -> Optional[str]:
        """The first header called ``name``, as text."""
        for h in self.headers:
            if h.key == name:
                return bytes(h.value).decode("utf-8", "replace")
        return None

    def with_value(self, value: Any) -> "Event":
        """A copy of this event with another value (a Python value or JSON bytes)."""
        return Event(self.topic, value, key=self.key, headers=list(self.headers), timestamp_ms=self.timestamp_ms)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and (
            self.topic,
            self.key,
            bytes(self.value),
            [(h.key, bytes(h.value)) for h in self.headers],
            self.timestamp_ms,
        ) == (other.topic, other.key, bytes(other.value), [(h.key, bytes(h.value)) for h in other.headers], other.timestamp_ms)

    def __repr__(self) -> str:
        return f"Event(topic={self.topic!r}, value={self.text()!r}, key={self.key!r}, headers={self.headers!r})"


# Decisions. One class per decision; the ones that exist on several paths (`Modify`,
# `DeadLetter`, `Drop`) are shared, as in the WIT contract.


@dataclass(slots=True)
class Accept:
    """Produce path: keep the event as it is."""


@dataclass(slots=True)
class Deliver:
    """Consume path: deliver the event as it is."""


@dataclass(slots=True)
class Modify:
    """Keep (or deliver) the event, changed. ``value`` is a Python value (serialised as JSON)
    or JSON bytes; ``key`` text or bytes; ``headers`` a list of :class:`Header` or a mapping,
    replacing all headers. ``None`` leaves a field as it was."""

    value: Any = None
    key: Union[str, bytes, None] = None
    headers: Any = None


@dataclass(slots=True)
class Drop:
    """Produce path: leave the event out, successfully. After a failed delivery: give up on
    it, counting it as handled."""

    reason: str


@dataclass(slots=True)
class Reject:
    """Produce path: refuse the event; the HTTP caller gets a 422 naming the plugin and this
    reason."""

    reason: str


@dataclass(slots=True)
class DeadLetter:
    """Send the event to the dead letter topic with this reason (either path, or after a
    failed delivery)."""

    reason: str


@dataclass(slots=True)
class Reroute:
    """Produce path: send the event to another routed topic, optionally changed."""

    topic: str
    changes: Optional[Modify] = None


@dataclass(slots=True)
class FanOut:
    """Produce path: replace the event with these events."""

    events: list = field(default_factory=list)


@dataclass(slots=True)
class Skip:
    """Consume path: do not deliver the event; count it as handled."""

    reason: str


@dataclass(slots=True)
class RetryAfter:
    """After a failed delivery: try again after this many milliseconds."""

    ms: int


Action = Union[Accept, Modify, Drop, Reject, DeadLetter, Reroute, FanOut]
Delivery = Union[Deliver, Modify, Skip, DeadLetter]
Decision = Union[RetryAfter, DeadLetter, Drop]


@dataclass(slots=True)
class Failure:
    """A failed webhook delivery."""

    event: Event
    attempt: int
    status: Optional[int]
    error: str


_ACCEPT = Accept()
_DELIVER = Deliver()


class Plugin:
    """A Sluice plugin. Override only what you need: ``produce``/``consume`` per event, or
    ``on_produce``/``on_consume`` per batch, and ``on_failure``. Sluice calls only the hooks a
    subclass overrides. ``name`` and ``version`` are reported in the gateway's logs."""

    name: str = "python-plugin"
    version: str = "0.1.0"

    def produce(self, event: Event) -> Action:
        """Produce path, per event. By default the event is accepted as it is."""
        return _ACCEPT

    def on_produce(self, events: list) -> list:
        """Produce path, per batch: one action per event, in order."""
        produce = self.produce
        return [produce(e) for e in events]

    def consume(self, event: Event) -> Delivery:
        """Consume path, per event. By default the event is delivered as it is."""
        return _DELIVER

    def on_consume(self, events: list) -> list:
        """Consume path, per batch: one decision per event, in order."""
        consume = self.consume
        return [consume(e) for e in events]

    def on_failure(self, failure: Failure) -> Decision:
        """A failed delivery. By default: retry after a second up to five attempts, then
        dead-letter."""
        if failure.attempt < 5:
            return RetryAfter(1000)
        return DeadLetter(f"gave up after {failure.attempt} attempts: {failure.error}")

    def hooks(self) -> set:
        """The hooks this plugin implements: those its class overrides."""
        cls = type(self)

        def overrides(*names: str) -> bool:
            return any(getattr(cls, n) is not getattr(Plugin, n) for n in names)

        found = set()
        if overrides("produce", "on_produce"):
            found.add("produce")
        if overrides("consume", "on_consume"):
            found.add("consume")
        if overrides("on_failure"):
            found.add("failure")
        return found


_exported: Optional[Plugin] = None


def export(plugin: Plugin) -> Plugin:
    """Makes ``plugin`` the one the component runs. Call it once, at the end of the module."""
    global _exported
    if not isinstance(plugin, Plugin):
        raise TypeError("export() takes a Plugin instance, e.g. export(MyPlugin())")
    _exported = plugin
    return plugin


def exported() -> Optional[Plugin]:
    """The plugin :func:`export` registered, if any."""
    return _exported
