// Write Sluice plugins in TypeScript or JavaScript: typed events and decisions, JSON values as
// native objects, the host's logs, counters and configuration, and (natively) a test double.
// `sluice plugin build` bundles the plugin with `component.js` and builds a WebAssembly
// component with componentize-qjs; natively, `node --test` runs the same code against the
// double in `testing.js`.

// QuickJS (the engine inside the component) has no TextEncoder/TextDecoder, and a loop over the
// bytes in JavaScript is slow there (measured: ~120 µs for a 300-byte event). So UTF-8 goes
// through built-ins written in C: percent-encoding converts between UTF-8 and a "binary"
// string of one char per byte, base64 between that and bytes. The loops below are the fallback
// for what those refuse (lone surrogates, invalid UTF-8) and for engines without them.

// Measured inside the component on a 300-byte event: bytes ⇄ binary string through base64
// ~4 µs, the regular expression ~10 µs, percent-encoding ~20–30 µs, a loop over the bytes
// ~50–120 µs. ASCII (most JSON) takes only the first two.
const BASE64 =
  typeof Uint8Array.fromBase64 === "function" && typeof Uint8Array.prototype.toBase64 === "function" &&
  typeof btoa === "function" && typeof atob === "function";
const NOT_ASCII = /[^\x00-\x7f]/;

/** UTF-8 bytes of a string (lone surrogates become U+FFFD, as TextEncoder does). */
export function utf8(text) {
  if (BASE64) {
    if (!NOT_ASCII.test(text)) return Uint8Array.fromBase64(btoa(text));
    try {
      return Uint8Array.fromBase64(btoa(unescape(encodeURIComponent(text))));
    } catch {
      // A lone surrogate: encoded below.
    }
  }
  return utf8Slow(text);
}

function utf8Slow(text) {
  const out = new Uint8Array(text.length * 3);
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      out[n++] = c;
      continue;
    }
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const low = text.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
        i++;
      } else {
        c = 0xfffd;
      }
    } else if (c >= 0xd800 && c <= 0xdfff) {
      c = 0xfffd;
    }
    if (c < 0x800) {
      out[n++] = 0xc0 | (c >> 6);
      out[n++] = 0x80 | (c & 0x3f);
    } else if (c < 0x10000) {
      out[n++] = 0xe0 | (c >> 12);
      out[n++] = 0x80 | ((c >> 6) & 0x3f);
      out[n++] = 0x80 | (c & 0x3f);
    } else {
      out[n++] = 0xf0 | (c >> 18);
      out[n++] = 0x80 | ((c >> 12) & 0x3f);
      out[n++] = 0x80 | ((c >> 6) & 0x3f);
      out[n++] = 0x80 | (c & 0x3f);
    }
  }
  return out.slice(0, n);
}

/**
 * The string a UTF-8 byte array holds. Invalid input is replaced as TextDecoder and Rust's
 * `from_utf8_lossy` do (WHATWG's decoder: one U+FFFD per maximal invalid subpart).
 */
export function text(bytes) {
  if (BASE64) {
    const binary = atob(bytes.toBase64());
    if (!NOT_ASCII.test(binary)) return binary;
    try {
      return decodeURIComponent(escape(binary));
    } catch {
      return textSlow(bytes);
    }
  }
  try {
    if (bytes.length <= 8192) return decodeURIComponent(escape(String.fromCharCode.apply(null, bytes)));
    // In slices: a call takes a bounded number of arguments. Escaping is per byte, so a slice
    // boundary inside a character is harmless; decoding is done once, on the whole.
    const escaped = [];
    for (let i = 0; i < bytes.length; i += 8192) {
      escaped.push(escape(String.fromCharCode.apply(null, bytes.subarray(i, i + 8192))));
    }
    return decodeURIComponent(escaped.join(""));
  } catch {
    // Invalid UTF-8: decoded below with replacements.
    return textSlow(bytes);
  }
}

function textSlow(bytes) {
  let out = "";
  let units = [];
  let needed = 0;
  let seen = 0;
  let point = 0;
  let lower = 0x80;
  let upper = 0xbf;
  const emit = (c) => {
    if (c >= 0x10000) units.push(0xd800 + ((c - 0x10000) >> 10), 0xdc00 + ((c - 0x10000) & 0x3ff));
    else units.push(c);
    if (units.length >= 4096) {
      out += String.fromCharCode.apply(null, units);
      units = [];
    }
  };
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (needed === 0) {
      if (b < 0x80) {
        // ASCII, most of any JSON: no call per byte.
        units.push(b);
        if (units.length >= 4096) {
          out += String.fromCharCode.apply(null, units);
          units = [];
        }
      } else if (b >= 0xc2 && b <= 0xdf) [needed, point] = [1, b & 0x1f];
      else if (b >= 0xe0 && b <= 0xef) {
        if (b === 0xe0) lower = 0xa0;
        if (b === 0xed) upper = 0x9f;
        [needed, point] = [2, b & 0x0f];
      } else if (b >= 0xf0 && b <= 0xf4) {
        if (b === 0xf0) lower = 0x90;
        if (b === 0xf4) upper = 0x8f;
        [needed, point] = [3, b & 0x07];
      } else emit(0xfffd);
      continue;
    }
    if (b < lower || b > upper) {
      // The sequence so far is one replacement; this byte starts afresh.
      [needed, seen, point, lower, upper] = [0, 0, 0, 0x80, 0xbf];
      emit(0xfffd);
      i--;
      continue;
    }
    [lower, upper] = [0x80, 0xbf];
    point = (point << 6) | (b & 0x3f);
    if (++seen === needed) {
      emit(point);
      [needed, seen, point] = [0, 0, 0];
    }
  }
  if (needed !== 0) emit(0xfffd);
  return out + String.fromCharCode.apply(null, units);
}

function bytesOf(value) {
  if (value === undefined || value === null) return value;
  return value instanceof Uint8Array ? value : utf8(String(value));
}

/** JSON text (as bytes) for an event value: a Uint8Array is JSON text already. */
export function jsonBytes(value) {
  return value instanceof Uint8Array ? value : utf8(JSON.stringify(value));
}

/** Headers from an array of `{key, value}` (value text or bytes) or a `{name: value}` object. */
export function headersOf(headers) {
  if (headers === undefined || headers === null) return [];
  if (Array.isArray(headers)) return headers.map((h) => ({ key: h.key, value: bytesOf(h.value) }));
  return Object.entries(headers).map(([key, value]) => ({ key, value: bytesOf(value) }));
}

const UNPARSED = Symbol("unparsed");

/** An event on its way into Kafka (produce path) or out of it (consume path). */
export class Event {
  /**
   * In tests: `new Event("orders", { order_id: "o-1" }, { headers: { trace: "t-1" } })`.
   * The value is a JSON value (or its JSON text as a Uint8Array).
   */
  constructor(topic, value = {}, options = {}) {
    this.topic = topic;
    this.value = jsonBytes(value);
    this.key = bytesOf(options.key) ?? null;
    this.headers = headersOf(options.headers);
    this.timestampMs = options.timestampMs ?? 0;
    this._parsed = UNPARSED;
  }

  /** @internal The component's own event record, taken as it is. */
  static fromWit(e) {
    const event = Object.create(Event.prototype);
    event.topic = e.topic;
    event.value = e.value;
    event.key = e.key ?? null;
    event.headers = e.headers;
    event.timestampMs = Number(e.timestampMs);
    event._parsed = UNPARSED;
    return event;
  }

  /** The value parsed as JSON (once; later calls return the same object). */
  json() {
    if (this._parsed === UNPARSED) this._parsed = JSON.parse(text(this.value));
    return this._parsed;
  }

  /** The value as text. */
  text() {
    return text(this.value);
  }

  /** The key as text, or null. */
  keyText() {
    return this.key === null ? null : text(this.key);
  }

  /** The first header called `name`, as text, or undefined. */
  header(name) {
    const found = this.headers.find((h) => h.key === name);
    return found === undefined ? undefined : text(found.value);
  }

  /** A copy of this event with another value (and optionally another topic). */
  with(changes) {
    const copy = new Event(changes.topic ?? this.topic, changes.value ?? this.value, {
      key: this.key,
      headers: this.headers,
      timestampMs: this.timestampMs,
    });
    return copy;
  }
}

/** Produce-path decisions. */
export const Action = Object.freeze({
  /** Keep the event as it is. */
  accept: () => ({ tag: "accept" }),
  /** Keep the event, changed: `{value, key, headers}`, each optional. */
  modify: (changes) => ({ tag: "modify", val: changes }),
  /** Leave the event out, successfully. */
  drop: (reason) => ({ tag: "drop", val: reason }),
  /** Refuse the event: the HTTP caller gets a 422 naming the plugin and this reason. */
  reject: (reason) => ({ tag: "reject", val: reason }),
  /** Send the event to the route's dead letter topic. */
  deadLetter: (reason) => ({ tag: "dead-letter", val: reason }),
  /** Send the event to another routed topic, optionally changed. */
  reroute: (topic, changes) => ({ tag: "reroute", val: changes === undefined ? { topic } : { topic, changes } }),
  /** Replace the event with these events. */
  fanOut: (events) => ({ tag: "fan-out", val: events }),
});

/** Consume-path decisions. */
export const Delivery = Object.freeze({
  deliver: () => ({ tag: "deliver" }),
  modify: (changes) => ({ tag: "modify", val: changes }),
  skip: (reason) => ({ tag: "skip", val: reason }),
  deadLetter: (reason) => ({ tag: "dead-letter", val: reason }),
});

/** What to do after a failed delivery. */
export const Decision = Object.freeze({
  retryAfter: (ms) => ({ tag: "retry-after", val: ms }),
  deadLetter: (reason) => ({ tag: "dead-letter", val: reason }),
  drop: (reason) => ({ tag: "drop", val: reason }),
});

const ACCEPT = Action.accept();
const DELIVER = Delivery.deliver();

/** The default failure decision: retry after a second up to five attempts, then dead-letter. */
export function defaultOnFailure(failure) {
  return failure.attempt < 5
    ? Decision.retryAfter(1000)
    : Decision.deadLetter(`gave up after ${failure.attempt} attempts: ${failure.error}`);
}

/**
 * Completes a plugin definition: per-event hooks (`produce`, `consume`) become the batch hooks
 * (`onProduce`, `onConsume`) unless given, and `hooks` says which ones exist.
 */
export function definePlugin(definition) {
  const produce = definition.produce;
  const consume = definition.consume;
  const plugin = {
    name: definition.name ?? "js-plugin",
    version: definition.version ?? "0.1.0",
    produce: produce ?? (() => ACCEPT),
    consume: consume ?? (() => DELIVER),
    onProduce: definition.onProduce ?? (produce ? (events) => events.map((e) => produce(e)) : (events) => events.map(() => ACCEPT)),
    onConsume: definition.onConsume ?? (consume ? (events) => events.map((e) => consume(e)) : (events) => events.map(() => DELIVER)),
    onFailure: definition.onFailure ?? defaultOnFailure,
    hooks: {
      produce: Boolean(produce || definition.onProduce),
      consume: Boolean(consume || definition.onConsume),
      failure: Boolean(definition.onFailure),
    },
  };
  return Object.freeze(plugin);
}

/** The value at a JSON pointer (RFC 6901) inside `value`, or undefined. */
export function pointer(value, path) {
  if (path === "") return value;
  if (!path.startsWith("/")) return undefined;
  for (const raw of path.slice(1).split("/")) {
    const token = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    if (Array.isArray(value)) {
      if (!/^(0|[1-9][0-9]*)$/.test(token)) return undefined;
      value = value[Number(token)];
    } else if (value !== null && typeof value === "object") {
      value = Object.hasOwn(value, token) ? value[token] : undefined;
    } else {
      return undefined;
    }
    if (value === undefined) return undefined;
  }
  return value;
}

const LEVELS = ["trace", "debug", "info", "warn", "error"];

/** The native test double's state; replaced by the component's bindings inside the gateway. */
export class HostDouble {
  constructor() {
    this.config = new Map();
    this.logs = [];
    this.counters = new Map();
  }
  log(level, message, fields) {
    this.logs.push({ level, message, fields: Object.fromEntries(fields) });
  }
  counterAdd(name, delta) {
    this.counters.set(name, (this.counters.get(name) ?? 0) + delta);
  }
  configGet(key) {
    return this.config.get(key);
  }
}

let backend = new HostDouble();

/** @internal Sets where host calls go (the component's bindings, or a fresh double). */
export function setHostBackend(next) {
  backend = next;
  return next;
}

/** @internal The current host backend. */
export function hostBackend() {
  return backend;
}

/** Functions the gateway offers plugins: logs, counters and configuration values. */
export const host = Object.freeze({
  /** Writes a structured log line; `fields` is an object of names to values. */
  log(level, message, fields = {}) {
    if (!LEVELS.includes(level)) throw new TypeError(`unknown log level ${level}; one of ${LEVELS.join(", ")}`);
    backend.log(level, message, Object.entries(fields).map(([k, v]) => [k, String(v)]));
  },
  /** Adds to a counter, exported by the gateway as a metric labelled with the plugin. */
  counterAdd(name, delta = 1) {
    backend.counterAdd(name, delta);
  },
  /** A value from the plugin's configuration, or `fallback`. */
  config(key, fallback) {
    return backend.configGet(key) ?? fallback;
  },
});
