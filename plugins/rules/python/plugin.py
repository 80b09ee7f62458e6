"""# rules (Python)

Business rules for orders. The same plugin as ``../src/lib.rs`` (Rust) and
``../ts/src/plugin.ts`` (TypeScript); all three pass ``../cases.json``.

- a negative ``total_cents`` goes to the route's dead letter topic:
  ``{"total_cents": -5}`` → ``dead-letter("negative total_cents")``;
- a total above ``max_total_cents`` (configuration, default 100000000) is refused with a 422:
  ``{"total_cents": 500000000}`` → ``reject("total_cents above 100000000")``;
- on the consume path a negative total is dead-lettered instead of delivered, and a failing
  subscriber is retried after 200 ms × the attempt, then dead-lettered at the third failure.
"""

import re

from sluice_plugin import Accept, DeadLetter, Deliver, Event, Failure, Plugin, Reject, RetryAfter, export, host

DEFAULT_MAX = 100_000_000
INTEGER = re.compile(r"[+-]?[0-9]+")


class Rules(Plugin):
    name = "rules"

    def produce(self, event: Event):
        total = total_cents(event)
        if total is None:
            return Accept()
        configured = host.config("max_total_cents", "")
        ceiling = int(configured) if INTEGER.fullmatch(configured) else DEFAULT_MAX
        if total < 0:
            return DeadLetter("negative total_cents")
        if total > ceiling:
            return Reject(f"total_cents above {ceiling}")
        return Accept()

    def consume(self, event: Event):
        total = total_cents(event)
        if total is not None and total < 0:
            return DeadLetter("negative total_cents")
        return Deliver()

    def on_failure(self, failure: Failure):
        if failure.attempt >= 3:
            return DeadLetter(f"subscriber kept failing: {failure.error}")
        return RetryAfter(200 * failure.attempt)


def total_cents(event: Event):
    value = event.json()
    total = value.get("total_cents") if isinstance(value, dict) else None
    # JSON integers only: not 19.5, not "-5", and not booleans (a bool is an int in Python).
    return total if isinstance(total, int) and not isinstance(total, bool) else None


export(Rules())
