"""# redact (Python)

Masks e-mail addresses in string values anywhere in the event, keeping the first character of
the local part and the domain, so support can still tell addresses apart. The same plugin as
``../src/lib.rs`` (Rust) and ``../ts/src/plugin.ts`` (TypeScript); all three pass
``../cases.json``.

Input ``{"customer": {"email": "alice@example.com", "notes": ["call bob@corp.io"]}}`` →
``modify`` to ``{"customer": {"email": "a***@example.com", "notes": ["call b***@corp.io"]}}``.
Events without an address pass unchanged (nothing is parsed).
"""

from sluice_plugin import Accept, Deliver, Event, Modify, Plugin, export, host


class Redact(Plugin):
    name = "redact"

    def produce(self, event: Event):
        value = redacted(event)
        return Accept() if value is None else Modify(value=value)

    def consume(self, event: Event):
        value = redacted(event)
        return Deliver() if value is None else Modify(value=value)


def redacted(event: Event):
    """The event's value with every address masked, or None if it has none."""
    # A cheap test first: most events have no '@' at all.
    if b"@" not in event.value:
        return None
    value = event.json()
    masked = [0]
    value = mask_all(value, masked)
    if masked[0] == 0:
        return None
    host.counter_add("masked", masked[0])
    return value


def mask_all(value, masked):
    if isinstance(value, str):
        text = mask(value)
        if text is None:
            return value
        masked[0] += 1
        return text
    # Arrays and objects are changed in place.
    if isinstance(value, list):
        for i, item in enumerate(value):
            value[i] = mask_all(item, masked)
    elif isinstance(value, dict):
        for key, item in value.items():
            value[key] = mask_all(item, masked)
    return value


def mask(text: str):
    """Masks every ``local@domain.tld`` word in ``text``; None if there is none."""
    if "@" not in text:
        return None
    changed = False
    words = text.split(" ")
    for i, word in enumerate(words):
        local, at, domain = word.partition("@")
        if at and local and "." in domain and not domain.startswith("."):
            words[i] = f"{local[0]}***@{domain}"
            changed = True
    return " ".join(words) if changed else None


export(Redact())
