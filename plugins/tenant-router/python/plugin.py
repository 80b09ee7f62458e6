"""# tenant-router (Python)

Sends each tenant's events to the tenant's own topic, ``{topic}.{tenant}``, read from the
``tenant`` field (configuration ``field``, a JSON pointer, default ``/tenant``). An event for
several tenants (``tenants``, an array) is fanned out: one copy per tenant, with ``tenant`` set.
The same plugin as ``../src/lib.rs`` (Rust) and ``../ts/src/plugin.ts`` (TypeScript); all three
pass ``../cases.json``.

Input on ``orders``: ``{"tenant": "acme"}`` → ``reroute(orders.acme)``;
``{"tenants": ["acme", "globex"]}`` → ``fan-out`` to ``orders.acme`` and ``orders.globex``;
anything else → ``accept``.
"""

from sluice_plugin import Accept, Event, FanOut, Plugin, Reroute, export, host, pointer


class TenantRouter(Plugin):
    name = "tenant-router"

    def produce(self, event: Event):
        value = event.json()
        tenant = pointer(value, host.config("field", "/tenant"))
        if isinstance(tenant, str):
            return Reroute(f"{event.topic}.{tenant}")
        tenants = value.get("tenants") if isinstance(value, dict) else None
        if isinstance(tenants, list):
            copies = []
            for tenant in tenants:
                if isinstance(tenant, str):
                    copy = event.with_value({**value, "tenant": tenant})
                    copy.topic = f"{event.topic}.{tenant}"
                    copies.append(copy)
            return FanOut(copies)
        return Accept()


export(TenantRouter())
