// The component's side of the plugin world: converts between the WIT values componentize-qjs
// passes and the SDK's, and calls the plugin. `sluice plugin build` bundles an entry that does
//   import witHost from "sluice:plugin/host@0.1.0";
//   export const { describe, onProduce, onConsume, onFailure } = component(plugin, witHost);

import { Event, headersOf, jsonBytes, setHostBackend, utf8 } from "./index.js";

function bytesOf(value) {
  if (value === undefined || value === null) return null;
  return value instanceof Uint8Array ? value : utf8(String(value));
}

function changesOut(c) {
  return {
    value: c.value === undefined || c.value === null ? null : jsonBytes(c.value),
    key: bytesOf(c.key),
    headers: c.headers === undefined || c.headers === null ? null : headersOf(c.headers),
  };
}

function eventOut(e) {
  return {
    topic: e.topic,
    key: bytesOf(e.key),
    value: jsonBytes(e.value),
    headers: headersOf(e.headers),
    timestampMs: Number(e.timestampMs ?? 0),
  };
}

function actionOut(a) {
  switch (a?.tag) {
    case "accept":
      return a;
    case "modify":
      return { tag: "modify", val: changesOut(a.val) };
    case "drop":
    case "reject":
    case "dead-letter":
      return { tag: a.tag, val: String(a.val) };
    case "reroute":
      return { tag: "reroute", val: { topic: a.val.topic, changes: a.val.changes ? changesOut(a.val.changes) : null } };
    case "fan-out":
      return { tag: "fan-out", val: a.val.map(eventOut) };
    default:
      // The host counts a wrong answer as a plugin failure; say which one it was.
      return { tag: "reject", val: `plugin bug: produce returned ${JSON.stringify(a)}, not an action` };
  }
}

function deliveryOut(d) {
  switch (d?.tag) {
    case "deliver":
      return d;
    case "modify":
      return { tag: "modify", val: changesOut(d.val) };
    case "skip":
    case "dead-letter":
      return { tag: d.tag, val: String(d.val) };
    default:
      return { tag: "dead-letter", val: `plugin bug: consume returned ${JSON.stringify(d)}, not a delivery decision` };
  }
}

function decisionOut(d) {
  switch (d?.tag) {
    case "retry-after":
      return { tag: "retry-after", val: Math.max(0, Math.min(0xffffffff, Math.floor(Number(d.val)))) };
    case "dead-letter":
    case "drop":
      return { tag: d.tag, val: String(d.val) };
    default:
      return { tag: "dead-letter", val: `plugin bug: onFailure returned ${JSON.stringify(d)}, not a decision` };
  }
}

/** The plugin world's exports for `plugin` (made with `definePlugin`), host calls going to `witHost`. */
export function component(plugin, witHost) {
  setHostBackend({
    log: (level, message, fields) => witHost.log(level, message, fields),
    counterAdd: (name, delta) => witHost.counterAdd(name, delta),
    configGet: (key) => witHost.configGet(key) ?? undefined,
  });
  return {
    describe: () => ({ name: plugin.name, version: plugin.version, hooks: plugin.hooks }),
    onProduce: (events) => plugin.onProduce(events.map(Event.fromWit)).map(actionOut),
    onConsume: (events) => plugin.onConsume(events.map(Event.fromWit)).map(deliveryOut),
    onFailure: (f) =>
      decisionOut(plugin.onFailure({ event: Event.fromWit(f.event), attempt: f.attempt, status: f.status ?? null, error: f.error })),
  };
}
