// Types of the Sluice plugin SDK. The contract's own types (`wit/`) are generated from
// `wit/sluice-plugin.wit` by jco (`npm run generate-types`); these wrap them.

import type * as wit from "./wit/interfaces/sluice-plugin-types.js";

export type { wit };

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A record header as the gateway passes it. */
export type Header = wit.Header;

/** Headers to set: `[{key, value}]` (value text or bytes) or `{name: value}`. */
export type HeadersInit = Array<{ key: string; value: string | Uint8Array }> | Record<string, string | Uint8Array>;

/** Changes to an event; fields left out stay as they were. */
export interface Changes {
  /** A new value: a JSON value (serialised for you) or JSON text as bytes. */
  value?: Json | Uint8Array;
  /** A new key. */
  key?: string | Uint8Array;
  /** New headers, replacing all of them. */
  headers?: HeadersInit;
}

/** An event on its way into Kafka (produce path) or out of it (consume path). */
export declare class Event {
  /** In tests: `new Event("orders", {order_id: "o-1"}, {headers: {trace: "t-1"}})`. */
  constructor(
    topic: string,
    value?: Json | Uint8Array,
    options?: { key?: string | Uint8Array; headers?: HeadersInit; timestampMs?: number },
  );
  topic: string;
  /** The event's JSON text. */
  value: Uint8Array;
  key: Uint8Array | null;
  headers: Header[];
  /** Milliseconds since the epoch: when the gateway received it, or the record's timestamp. */
  timestampMs: number;
  /** The value parsed as JSON (once; later calls return the same object). */
  json<T = any>(): T;
  /** The value as text. */
  text(): string;
  /** The key as text, or null. */
  keyText(): string | null;
  /** The first header called `name`, as text. */
  header(name: string): string | undefined;
  /** A copy with another value and/or topic (key, headers and timestamp kept). */
  with(changes: { topic?: string; value?: Json | Uint8Array }): Event;
}

/** A produce-path decision (the WIT `action` variant, with SDK-friendly payloads). */
export type Action =
  | { tag: "accept" }
  | { tag: "modify"; val: Changes }
  | { tag: "drop"; val: string }
  | { tag: "reject"; val: string }
  | { tag: "dead-letter"; val: string }
  | { tag: "reroute"; val: { topic: string; changes?: Changes } }
  | { tag: "fan-out"; val: Event[] };

/** A consume-path decision (the WIT `delivery` variant). */
export type Delivery =
  | { tag: "deliver" }
  | { tag: "modify"; val: Changes }
  | { tag: "skip"; val: string }
  | { tag: "dead-letter"; val: string };

/** What to do after a failed delivery (the WIT `decision` variant). */
export type Decision = wit.Decision;

export declare const Action: {
  accept(): Action;
  modify(changes: Changes): Action;
  drop(reason: string): Action;
  reject(reason: string): Action;
  deadLetter(reason: string): Action;
  reroute(topic: string, changes?: Changes): Action;
  fanOut(events: Event[]): Action;
};

export declare const Delivery: {
  deliver(): Delivery;
  modify(changes: Changes): Delivery;
  skip(reason: string): Delivery;
  deadLetter(reason: string): Delivery;
};

export declare const Decision: {
  retryAfter(ms: number): Decision;
  deadLetter(reason: string): Decision;
  drop(reason: string): Decision;
};

/** A failed webhook delivery. */
export interface Failure {
  event: Event;
  /** Attempts so far (1 after the first failure). */
  attempt: number;
  /** The subscriber's HTTP status, if it answered. */
  status: number | null;
  error: string;
}

/** What a plugin implements: any of these; the others keep their defaults. */
export interface PluginDefinition {
  name?: string;
  version?: string;
  /** Produce path, per event. */
  produce?(event: Event): Action;
  /** Produce path, per batch: one action per event, in order. */
  onProduce?(events: Event[]): Action[];
  /** Consume path, per event. */
  consume?(event: Event): Delivery;
  /** Consume path, per batch. */
  onConsume?(events: Event[]): Delivery[];
  /** After a failed delivery. Default: retry after 1 s up to five attempts, then dead-letter. */
  onFailure?(failure: Failure): Decision;
}

/** A complete plugin: every hook present, and which ones the definition implements. */
export interface Plugin {
  readonly name: string;
  readonly version: string;
  produce(event: Event): Action;
  onProduce(events: Event[]): Action[];
  consume(event: Event): Delivery;
  onConsume(events: Event[]): Delivery[];
  onFailure(failure: Failure): Decision;
  readonly hooks: wit.Hooks;
}

/** Completes a definition into a plugin; export it as the module's default export. */
export declare function definePlugin(definition: PluginDefinition): Plugin;

/** The default failure decision. */
export declare function defaultOnFailure(failure: Failure): Decision;

/** The value at a JSON pointer (RFC 6901) inside `value`, or undefined. */
export declare function pointer(value: unknown, path: string): Json | undefined;

/** Log levels. */
export type Level = wit.Level;

/** Functions the gateway offers plugins. */
export declare const host: {
  log(level: Level, message: string, fields?: Record<string, unknown>): void;
  counterAdd(name: string, delta?: number): void;
  config(key: string): string | undefined;
  config(key: string, fallback: string): string;
};

/** UTF-8 bytes of a string. */
export declare function utf8(text: string): Uint8Array;
/** The string UTF-8 bytes hold. */
export declare function text(bytes: Uint8Array): string;
/** JSON text (as bytes) of a value; bytes are returned as they are. */
export declare function jsonBytes(value: Json | Uint8Array): Uint8Array;
/** Headers from either form. */
export declare function headersOf(headers: HeadersInit | null | undefined): Header[];

/** @internal The test double's state. */
export declare class HostDouble {
  config: Map<string, string>;
  logs: Array<{ level: Level; message: string; fields: Record<string, string> }>;
  counters: Map<string, number>;
}
/** @internal */
export declare function setHostBackend<T>(backend: T): T;
/** @internal */
export declare function hostBackend(): unknown;
