// The JS SDK's own tests: its UTF-8 code against node's, JSON pointers, hook inference, and the
// component glue's conversions (with a stand-in for the host interface).
import { test } from "node:test";
import assert from "node:assert/strict";

import { Action, Decision, Delivery, Event, definePlugin, host, pointer, text, utf8 } from "../index.js";
import { component } from "../component.js";
import { counters, decisionJson, logs, reset, setConfig } from "../testing.js";

test("utf8 and text agree with node's TextEncoder and TextDecoder", () => {
  const samples = ["", "plain", "émile", "日本語", "😀 and 🇫🇷", "\u0000\u007f\u0080\u07ff\u0800\uffff", "lone \ud800 surrogate", "\udc00x"];
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < 2000; i++) {
    samples.push(Array.from({ length: 1 + Math.floor(random() * 12) }, () => String.fromCharCode(Math.floor(random() * 0x10000))).join(""));
  }
  for (const sample of samples) {
    assert.deepEqual(utf8(sample), new TextEncoder().encode(sample), JSON.stringify(sample));
    assert.equal(text(new TextEncoder().encode(sample)), new TextDecoder().decode(new TextEncoder().encode(sample)));
  }
  // Arbitrary bytes, invalid sequences included, decode as TextDecoder does (U+FFFD each).
  for (let i = 0; i < 2000; i++) {
    const bytes = Uint8Array.from({ length: Math.floor(random() * 10) }, () => Math.floor(random() * 256));
    assert.equal(text(bytes), new TextDecoder().decode(bytes), `${bytes}`);
  }
});

test("long texts decode in slices, characters across slice boundaries included", () => {
  const long = "é😀a".repeat(5000);
  assert.equal(text(new TextEncoder().encode(long)), long);
  const broken = new Uint8Array([...new TextEncoder().encode("x".repeat(9000)), 0xff, 0x41]);
  assert.equal(text(broken), new TextDecoder().decode(broken));
});

test("JSON pointers follow RFC 6901", () => {
  const doc = { a: [{ "b/c": 1, "d~e": 2 }], "": 3, n: null };
  assert.equal(pointer(doc, "/a/0/b~1c"), 1);
  assert.equal(pointer(doc, "/a/0/d~0e"), 2);
  assert.equal(pointer(doc, "/"), 3);
  assert.equal(pointer(doc, "/n"), null);
  assert.equal(pointer(doc, "/a/01"), undefined);
  assert.equal(pointer(doc, "/a/1"), undefined);
  assert.equal(pointer(doc, "a"), undefined);
  assert.equal(pointer(doc, "/toString"), undefined);
  assert.deepEqual(pointer(doc, ""), doc);
});

test("a plugin implements the hooks it defines, the others keep their defaults", () => {
  const plugin = definePlugin({ produce: () => Action.drop("x") });
  assert.deepEqual(plugin.hooks, { produce: true, consume: false, failure: false });
  assert.deepEqual(plugin.onConsume([new Event("t")]), [Delivery.deliver()]);
  assert.deepEqual(plugin.onFailure({ attempt: 1, error: "e" }), Decision.retryAfter(1000));
  assert.deepEqual(plugin.onFailure({ attempt: 5, error: "e" }), Decision.deadLetter("gave up after 5 attempts: e"));
  assert.deepEqual(definePlugin({ onFailure: () => Decision.drop("d") }).hooks, { produce: false, consume: false, failure: true });
});

test("the test double records logs and counters and serves configuration", () => {
  reset();
  setConfig("field", "/x");
  assert.equal(host.config("field"), "/x");
  assert.equal(host.config("missing", "fallback"), "fallback");
  host.counterAdd("seen");
  host.counterAdd("seen", 2);
  host.log("info", "hello", { n: 1 });
  assert.deepEqual(counters(), { seen: 3 });
  assert.deepEqual(logs(), [{ level: "info", message: "hello", fields: { n: "1" } }]);
  assert.throws(() => host.log("loud", "x"), /unknown log level/);
});

test("the component glue converts decisions to the WIT's shapes and calls the host", () => {
  const calls = [];
  const witHost = {
    log: (...args) => calls.push(["log", ...args]),
    counterAdd: (...args) => calls.push(["counterAdd", ...args]),
    configGet: (key) => (key === "who" ? "world" : null),
  };
  const plugin = definePlugin({
    name: "glue",
    produce(event) {
      host.counterAdd("calls");
      const n = event.json().n;
      if (n === 1) return Action.modify({ value: { greeting: host.config("who") }, key: "k", headers: { h: "v" } });
      if (n === 2) return Action.reroute("other", { value: { moved: true } });
      if (n === 3) return Action.fanOut([event.with({ topic: "a", value: { copy: 1 } })]);
      if (n === 4) return { tag: "nonsense" };
      return Action.accept();
    },
  });
  const exports = component(plugin, witHost);
  assert.deepEqual(exports.describe(), { name: "glue", version: "0.1.0", hooks: { produce: true, consume: false, failure: false } });
  const wit = (n) => ({ topic: "t", key: null, value: utf8(JSON.stringify({ n })), headers: [], timestampMs: 5 });
  const [modify, reroute, fanOut, wrong, accept] = exports.onProduce([1, 2, 3, 4, 5].map(wit));
  assert.equal(modify.tag, "modify");
  assert.equal(text(modify.val.value), '{"greeting":"world"}');
  assert.deepEqual(modify.val.key, utf8("k"));
  assert.deepEqual(modify.val.headers, [{ key: "h", value: utf8("v") }]);
  assert.equal(reroute.val.topic, "other");
  assert.equal(text(reroute.val.changes.value), '{"moved":true}');
  assert.equal(fanOut.val[0].topic, "a");
  assert.equal(fanOut.val[0].timestampMs, 5);
  assert.match(wrong.val, /plugin bug/);
  assert.deepEqual(accept, { tag: "accept" });
  assert.deepEqual(calls.filter((c) => c[0] === "counterAdd").length, 5);
  reset();
});

test("decisions print as sluice plugin test prints them", () => {
  assert.deepEqual(decisionJson(Action.reroute("t"), "produce"), { action: "reroute", topic: "t" });
  assert.deepEqual(decisionJson(Delivery.skip("r"), "consume"), { delivery: "skip", reason: "r" });
  assert.deepEqual(decisionJson(Decision.retryAfter(5), "failure"), { decision: "retry-after", ms: 5 });
});
