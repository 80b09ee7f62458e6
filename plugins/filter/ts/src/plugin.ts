/**
 * # filter (TypeScript)
 *
 * Drops events flagged as test events, so they never reach the topic; on the consume path the
 * same events are skipped. The flag is the JSON pointer in the `field` configuration value
 * (default `/test`); an event is flagged when it is `true`. The same plugin as
 * `../../src/lib.rs` (Rust) and `../../python/plugin.py` (Python); all three pass
 * `../../cases.json`.
 *
 * Input `{"order_id": "o-1", "test": true}` → `drop("test event")`; `{"order_id": "o-2"}` →
 * `accept`.
 */

import { Action, Delivery, type Event, definePlugin, host, pointer } from "sluice-plugin";

const isTest = (event: Event) => pointer(event.json(), host.config("field", "/test")) === true;

export default definePlugin({
  name: "filter",
  produce(event) {
    if (!isTest(event)) return Action.accept();
    host.counterAdd("dropped");
    return Action.drop("test event");
  },
  consume(event) {
    if (!isTest(event)) return Delivery.deliver();
    host.counterAdd("skipped");
    return Delivery.skip("test event");
  },
});
