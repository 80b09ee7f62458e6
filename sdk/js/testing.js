// The native test double behind `host`, and the runner for behaviour cases shared by the Rust,
// TypeScript and Python versions of a plugin (`cases.json`).

import { readFileSync } from "node:fs";
import { deepStrictEqual } from "node:assert/strict";

import { Event, HostDouble, headersOf, hostBackend, jsonBytes, setHostBackend, text } from "./index.js";

function double() {
  const current = hostBackend();
  return current instanceof HostDouble ? current : setHostBackend(new HostDouble());
}

/** Forgets configuration, logs and counters. */
export function reset() {
  setHostBackend(new HostDouble());
}

/** Sets a configuration value that `host.config` returns. */
export function setConfig(key, value) {
  double().config.set(key, value);
}

/** Log lines written so far: `{level, message, fields}`. */
export function logs() {
  return [...double().logs];
}

/** Counters added to so far, as an object. */
export function counters() {
  return Object.fromEntries(double().counters);
}

function jsonOrText(bytes) {
  const t = text(bytes);
  try {
    return JSON.parse(t);
  } catch {
    return t;
  }
}

function changesJson(out, changes) {
  if (changes.value !== undefined && changes.value !== null) out.value = jsonOrText(jsonBytes(changes.value));
  if (changes.key !== undefined && changes.key !== null) {
    out.key = changes.key instanceof Uint8Array ? text(changes.key) : String(changes.key);
  }
  if (changes.headers !== undefined && changes.headers !== null) {
    out.headers = Object.fromEntries(headersOf(changes.headers).map((h) => [h.key, text(h.value)]));
  }
  return out;
}

/** A decision as `sluice plugin test` prints it: `{action: "drop", reason: …}` and so on. */
export function decisionJson(decision, hook) {
  const field = { produce: "action", consume: "delivery", failure: "decision" }[hook];
  const { tag, val } = decision;
  switch (tag) {
    case "accept":
    case "deliver":
      return { [field]: tag };
    case "modify":
      return changesJson({ [field]: tag }, val);
    case "drop":
    case "reject":
    case "dead-letter":
    case "skip":
      return { [field]: tag, reason: val };
    case "reroute":
      return val.changes ? changesJson({ [field]: tag, topic: val.topic }, val.changes) : { [field]: tag, topic: val.topic };
    case "fan-out":
      return { [field]: tag, events: val.map((e) => ({ topic: e.topic, value: jsonOrText(jsonBytes(e.value)) })) };
    case "retry-after":
      return { [field]: tag, ms: val };
    default:
      throw new TypeError(`${JSON.stringify(decision)} is not a decision`);
  }
}

/** An event from a case's JSON description (`topic`, `value`, optional `key`, `headers`, `timestamp_ms`). */
export function caseEvent(spec) {
  return new Event(spec.topic ?? "events", spec.value ?? {}, {
    key: spec.key,
    headers: spec.headers,
    timestampMs: spec.timestamp_ms ?? 0,
  });
}

/** The cases of a `cases.json` file. */
export function loadCases(path) {
  return JSON.parse(readFileSync(path, "utf8")).cases;
}

/** Runs one case with a fresh test double: `{decisions, counters}`. */
export function runCase(plugin, testCase) {
  reset();
  for (const [key, value] of Object.entries(testCase.config ?? {})) setConfig(key, value);
  let decisions;
  if (testCase.hook === "produce") {
    decisions = plugin.onProduce(testCase.events.map(caseEvent)).map((d) => decisionJson(d, "produce"));
  } else if (testCase.hook === "consume") {
    decisions = plugin.onConsume(testCase.events.map(caseEvent)).map((d) => decisionJson(d, "consume"));
  } else {
    const f = testCase.failure;
    const failure = { event: caseEvent(f.event), attempt: f.attempt, status: f.status ?? null, error: f.error };
    decisions = [decisionJson(plugin.onFailure(failure), "failure")];
  }
  return { decisions, counters: counters() };
}

/** Asserts that `plugin` decides as `testCase` expects and adds the counters it lists. */
export function checkCase(plugin, testCase) {
  const { decisions, counters: added } = runCase(plugin, testCase);
  deepStrictEqual(decisions, testCase.expect, testCase.name);
  for (const [name, value] of Object.entries(testCase.counters ?? {})) {
    deepStrictEqual(added[name], value, `${testCase.name}: counter ${name}`);
  }
}
