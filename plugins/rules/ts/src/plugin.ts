/**
 * # rules (TypeScript)
 *
 * Business rules for orders. The same plugin as `../../src/lib.rs` (Rust) and
 * `../../python/plugin.py` (Python); all three pass `../../cases.json`.
 *
 * - a negative `total_cents` goes to the route's dead letter topic:
 *   `{"total_cents": -5}` → `dead-letter("negative total_cents")`;
 * - a total above `max_total_cents` (configuration, default 100000000) is refused with a 422:
 *   `{"total_cents": 500000000}` → `reject("total_cents above 100000000")`;
 * - on the consume path a negative total is dead-lettered instead of delivered, and a failing
 *   subscriber is retried after 200 ms × the attempt, then dead-lettered at the third failure.
 */

import { Action, Decision, Delivery, type Event, definePlugin, host } from "sluice-plugin";

const DEFAULT_MAX = 100_000_000;

/** The event's `total_cents` if it is a JSON integer. */
function totalCents(event: Event): number | undefined {
  const total = event.json()?.total_cents;
  return Number.isInteger(total) ? total : undefined;
}

export default definePlugin({
  name: "rules",
  produce(event) {
    const total = totalCents(event);
    if (total === undefined) return Action.accept();
    const configured = host.config("max_total_cents", "");
    const ceiling = /^[+-]?[0-9]+$/.test(configured) ? Number(configured) : DEFAULT_MAX;
    if (total < 0) return Action.deadLetter("negative total_cents");
    if (total > ceiling) return Action.reject(`total_cents above ${ceiling}`);
    return Action.accept();
  },
  consume(event) {
    const total = totalCents(event);
    return total !== undefined && total < 0 ? Delivery.deadLetter("negative total_cents") : Delivery.deliver();
  },
  onFailure(failure) {
    return failure.attempt >= 3
      ? Decision.deadLetter(`subscriber kept failing: ${failure.error}`)
      : Decision.retryAfter(200 * failure.attempt);
  },
});
