"""# filter (Python)

Drops events flagged as test events, so they never reach the topic; on the consume path the
same events are skipped. The flag is the JSON pointer in the ``field`` configuration value
(default ``/test``); an event is flagged when it is ``true``. The same plugin as
``../src/lib.rs`` (Rust) and ``../ts/src/plugin.ts`` (TypeScript); all three pass
``../cases.json``.

Input ``{"order_id": "o-1", "test": true}`` → ``drop("test event")``; ``{"order_id": "o-2"}``
→ ``accept``.
"""

from sluice_plugin import Accept, Deliver, Drop, Event, Plugin, Skip, export, host, pointer


class Filter(Plugin):
    name = "filter"

    def produce(self, event: Event):
        if is_test(event):
            host.counter_add("dropped")
            return Drop("test event")
        return Accept()

    def consume(self, event: Event):
        if is_test(event):
            host.counter_add("skipped")
            return Skip("test event")
        return Deliver()


def is_test(event: Event) -> bool:
    return pointer(event.json(), host.config("field", "/test")) is True


export(Filter())
