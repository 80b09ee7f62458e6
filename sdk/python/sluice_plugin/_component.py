"""The component's side of the plugin world: converts between the WIT types componentize-py
generates and the SDK's, and calls the exported plugin. Imported only inside the component
(``sluice plugin build`` generates the entry module that imports it)."""

from wit_world.imports import host as _wit_host
from wit_world.imports import types as _t

from . import Accept, DeadLetter, Deliver, Drop, Event, FanOut, Failure, Modify, Reject, Reroute, RetryAfter, Skip
from . import _headers, _json_bytes, _to_bytes, exported, host

_LEVELS = {
    "trace": _t.Level.TRACE,
    "debug": _t.Level.DEBUG,
    "info": _t.Level.INFO,
    "warn": _t.Level.WARN,
    "error": _t.Level.ERROR,
}


class _WitBackend:
    @staticmethod
    def log(level, message, fields):
        _wit_host.log(_LEVELS[level], message, fields)

    @staticmethod
    def counter_add(name, delta):
        _wit_host.counter_add(name, delta)

    @staticmethod
    def config_get(key):
        return _wit_host.config_get(key)


host._backend = _WitBackend()

_ACCEPT = _t.Action_Accept()
_DELIVER = _t.Delivery_Deliver()


def _wit_headers(headers):
    return [_t.Header(h.key, _to_bytes(h.value)) for h in _headers(headers)]


def _changes(m):
    return _t.Changes(
        None if m.value is None else _json_bytes(m.value),
        _to_bytes(m.key),
        None if m.headers is None else _wit_headers(m.headers),
    )


def _event_out(e):
    return _t.Event(e.topic, e.key, _json_bytes(e.value), _wit_headers(e.headers), e.timestamp_ms)


def _action(a):
    kind = type(a)
    if kind is Accept:
        return _ACCEPT
    if kind is Modify:
        return _t.Action_Modify(_changes(a))
    if kind is Drop:
        return _t.Action_Drop(a.reason)
    if kind is Reject:
        return _t.Action_Reject(a.reason)
    if kind is DeadLetter:
        return _t.Action_DeadLetter(a.reason)
    if kind is Reroute:
        return _t.Action_Reroute(_t.RerouteTo(a.topic, None if a.changes is None else _changes(a.changes)))
    if kind is FanOut:
        return _t.Action_FanOut([_event_out(e) for e in a.events])
    # The host answers a wrong decision as a plugin failure; say which one it was.
    return _t.Action_Reject(f"plugin bug: produce returned {a!r}, not an action")


def _delivery(d):
    kind = type(d)
    if kind is Deliver:
        return _DELIVER
    if kind is Modify:
        return _t.Delivery_Modify(_changes(d))
    if kind is Skip:
        return _t.Delivery_Skip(d.reason)
    if kind is DeadLetter:
        return _t.Delivery_DeadLetter(d.reason)
    return _t.Delivery_DeadLetter(f"plugin bug: consume returned {d!r}, not a delivery decision")


def _plugin():
    plugin = exported()
    if plugin is None:
        raise RuntimeError("the plugin module did not call sluice_plugin.export(...)")
    return plugin


class WitWorld:
    def describe(self):
        plugin = _plugin()
        hooks = _t.Hooks(0)
        found = plugin.hooks()
        if "produce" in found:
            hooks |= _t.Hooks.PRODUCE
        if "consume" in found:
            hooks |= _t.Hooks.CONSUME
        if "failure" in found:
            hooks |= _t.Hooks.FAILURE
        return _t.Info(plugin.name, plugin.version, hooks)

    def on_produce(self, events):
        from_wit = Event._from_wit
        return [_action(a) for a in _plugin().on_produce([from_wit(e) for e in events])]

    def on_consume(self, events):
        from_wit = Event._from_wit
        return [_delivery(d) for d in _plugin().on_consume([from_wit(e) for e in events])]

    def on_failure(self, failure):
        decision = _plugin().on_failure(
            Failure(Event._from_wit(failure.event), failure.attempt, failure.status, failure.error)
        )
        kind = type(decision)
        if kind is RetryAfter:
            return _t.Decision_RetryAfter(decision.ms)
        if kind is Drop:
            return _t.Decision_Drop(decision.reason)
        if kind is DeadLetter:
            return _t.Decision_DeadLetter(decision.reason)
        return _t.Decision_DeadLetter(f"plugin bug: on_failure returned {decision!r}, not a decision")
