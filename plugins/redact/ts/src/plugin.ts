/**
 * # redact (TypeScript)
 *
 * Masks e-mail addresses in string values anywhere in the event, keeping the first character
 * of the local part and the domain, so support can still tell addresses apart. The same plugin
 * as `../../src/lib.rs` (Rust) and `../../python/plugin.py` (Python); all three pass
 * `../../cases.json`.
 *
 * Input `{"customer": {"email": "alice@example.com", "notes": ["call bob@corp.io"]}}` →
 * `modify` to `{"customer": {"email": "a***@example.com", "notes": ["call b***@corp.io"]}}`.
 * Events without an address pass unchanged (nothing is parsed).
 */

import { Action, Delivery, type Event, type Json, definePlugin, host } from "sluice-plugin";

const AT = 0x40;

export default definePlugin({
  name: "redact",
  produce(event) {
    const value = redacted(event);
    return value === undefined ? Action.accept() : Action.modify({ value });
  },
  consume(event) {
    const value = redacted(event);
    return value === undefined ? Delivery.deliver() : Delivery.modify({ value });
  },
});

/** The event's value with every address masked, or undefined if it has none. */
function redacted(event: Event): Json | undefined {
  // A cheap test first: most events have no '@' at all.
  if (!event.value.includes(AT)) return undefined;
  const count = { masked: 0 };
  const value = maskAll(event.json<Json>(), count);
  if (count.masked === 0) return undefined;
  host.counterAdd("masked", count.masked);
  return value;
}

/** Masks the addresses in `value`, changing its arrays and objects in place. */
function maskAll(value: Json, count: { masked: number }): Json {
  if (typeof value === "string") {
    const masked = mask(value);
    if (masked === undefined) return value;
    count.masked++;
    return masked;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = maskAll(value[i], count);
  } else if (value !== null && typeof value === "object") {
    for (const key in value) value[key] = maskAll(value[key], count);
  }
  return value;
}

/** Masks every `local@domain.tld` word in `text`; undefined if there is none. */
export function mask(text: string): string | undefined {
  if (!text.includes("@")) return undefined;
  let changed = false;
  const words = text.split(" ").map((word) => {
    const at = word.indexOf("@");
    if (at <= 0) return word;
    const [local, domain] = [word.slice(0, at), word.slice(at + 1)];
    if (!domain.includes(".") || domain.startsWith(".")) return word;
    changed = true;
    // The first character, not the first UTF-16 unit: an emoji is one character.
    return `${String.fromCodePoint(local.codePointAt(0)!)}***@${domain}`;
  });
  return changed ? words.join(" ") : undefined;
}
