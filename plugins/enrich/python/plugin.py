"""# enrich (Python)

Adds when the gateway received each event: a JSON field and a record header, both RFC 3339.
The same plugin as ``../src/lib.rs`` (Rust) and ``../ts/src/plugin.ts`` (TypeScript); all three
pass ``../cases.json``.

Configuration: ``field`` (default ``ingested_at``), ``header`` (default ``ingested-at``).

Input (received at 2026-11-27T10:00:00Z) ``{"order_id": "o-1"}`` → ``modify`` to
``{"order_id": "o-1", "ingested_at": "2026-11-27T10:00:00.000Z"}`` plus the header
``ingested-at: 2026-11-27T10:00:00.000Z``. Events that are not JSON objects pass unchanged.
"""

from datetime import datetime, timedelta, timezone

from sluice_plugin import Accept, Event, Header, Modify, Plugin, export, host

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class Enrich(Plugin):
    name = "enrich"

    def produce(self, event: Event):
        value = event.json()
        if not isinstance(value, dict):
            host.log("debug", "not a JSON object; passing it on")
            return Accept()
        stamp = rfc3339(event.timestamp_ms)
        value[host.config("field", "ingested_at")] = stamp
        headers = list(event.headers) + [Header(host.config("header", "ingested-at"), stamp.encode())]
        host.counter_add("enriched")
        return Modify(value=value, headers=headers)


def rfc3339(ms: int) -> str:
    """Milliseconds since the epoch as ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    instant = EPOCH + timedelta(milliseconds=ms)
    return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


export(Enrich())
