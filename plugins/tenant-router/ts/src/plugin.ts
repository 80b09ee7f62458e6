/**
 * # tenant-router (TypeScript)
 *
 * Sends each tenant's events to the tenant's own topic, `{topic}.{tenant}`, read from the
 * `tenant` field (configuration `field`, a JSON pointer, default `/tenant`). An event for
 * several tenants (`tenants`, an array) is fanned out: one copy per tenant, with `tenant` set.
 * The same plugin as `../../src/lib.rs` (Rust) and `../../python/plugin.py` (Python); all three
 * pass `../../cases.json`.
 *
 * Input on `orders`: `{"tenant": "acme"}` → `reroute(orders.acme)`;
 * `{"tenants": ["acme", "globex"]}` → `fan-out` to `orders.acme` and `orders.globex`;
 * anything else → `accept`.
 */

import { Action, definePlugin, host, pointer } from "sluice-plugin";

export default definePlugin({
  name: "tenant-router",
  produce(event) {
    const value = event.json();
    const tenant = pointer(value, host.config("field", "/tenant"));
    if (typeof tenant === "string") return Action.reroute(`${event.topic}.${tenant}`);
    const tenants = value?.tenants;
    if (Array.isArray(tenants)) {
      const copies = tenants
        .filter((t): t is string => typeof t === "string")
        .map((t) => event.with({ topic: `${event.topic}.${t}`, value: { ...value, tenant: t } }));
      return Action.fanOut(copies);
    }
    return Action.accept();
  },
});
