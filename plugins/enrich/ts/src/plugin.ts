/**
 * # enrich (TypeScript)
 *
 * Adds when the gateway received each event: a JSON field and a record header, both RFC 3339.
 * The same plugin as `../../src/lib.rs` (Rust) and `../../python/plugin.py` (Python); all three
 * pass `../../cases.json`.
 *
 * Configuration: `field` (default `ingested_at`), `header` (default `ingested-at`).
 *
 * Input (received at 2026-11-27T10:00:00Z) `{"order_id": "o-1"}` → `modify` to
 * `{"order_id": "o-1", "ingested_at": "2026-11-27T10:00:00.000Z"}` plus the header
 * `ingested-at: 2026-11-27T10:00:00.000Z`. Events that are not JSON objects pass unchanged.
 */

import { Action, type Json, definePlugin, host, utf8 } from "sluice-plugin";

export default definePlugin({
  name: "enrich",
  produce(event) {
    const value = event.json<Json>();
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      host.log("debug", "not a JSON object; passing it on");
      return Action.accept();
    }
    const stamp = new Date(event.timestampMs).toISOString();
    const headers = [...event.headers, { key: host.config("header", "ingested-at"), value: utf8(stamp) }];
    host.counterAdd("enriched");
    return Action.modify({ value: { ...value, [host.config("field", "ingested_at")]: stamp }, headers });
  },
});
