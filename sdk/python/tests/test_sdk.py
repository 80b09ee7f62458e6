"""The Python SDK's own tests (``python3 -m unittest discover -s sdk/python/tests``): JSON
pointers, hook inference, events, the test double and the JSON form of decisions."""

import pathlib
import sys
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from sluice_plugin import (  # noqa: E402
    Accept,
    DeadLetter,
    Deliver,
    Drop,
    Event,
    Failure,
    FanOut,
    Modify,
    Plugin,
    Reroute,
    RetryAfter,
    Skip,
    export,
    host,
    pointer,
    testing,
)


class Pointers(unittest.TestCase):
    def test_rfc_6901(self):
        doc = {"a": [{"b/c": 1, "d~e": 2}], "": 3, "n": None}
        self.assertEqual(pointer(doc, "/a/0/b~1c"), 1)
        self.assertEqual(pointer(doc, "/a/0/d~0e"), 2)
        self.assertEqual(pointer(doc, "/"), 3)
        self.assertIsNone(pointer(doc, "/n", "fallback"))
        self.assertEqual(pointer(doc, "/a/01", "none"), "none")
        self.assertEqual(pointer(doc, "/a/1", "none"), "none")
        self.assertEqual(pointer(doc, "a", "none"), "none")
        self.assertIs(pointer(doc, ""), doc)


class Hooks(unittest.TestCase):
    def test_a_plugin_implements_what_it_overrides(self):
        class ProduceOnly(Plugin):
            def produce(self, event):
                return Drop("x")

        class FailureOnly(Plugin):
            def on_failure(self, failure):
                return Drop("d")

        self.assertEqual(ProduceOnly().hooks(), {"produce"})
        self.assertEqual(FailureOnly().hooks(), {"failure"})
        plugin = ProduceOnly()
        self.assertEqual(plugin.on_consume([Event("t")]), [Deliver()])
        self.assertEqual(plugin.on_failure(Failure(Event("t"), 1, 503, "e")), RetryAfter(1000))
        self.assertEqual(plugin.on_failure(Failure(Event("t"), 5, None, "e")), DeadLetter("gave up after 5 attempts: e"))

    def test_export_takes_an_instance(self):
        with self.assertRaises(TypeError):
            export(Plugin)


class Events(unittest.TestCase):
    def test_values_keys_and_headers(self):
        event = Event("orders", {"a": "é"}, key="k", headers={"h": "v"}, timestamp_ms=5)
        self.assertEqual(event.value, '{"a":"é"}'.encode())
        self.assertEqual(event.json(), {"a": "é"})
        self.assertIs(event.json(), event.json(), "parsed once")
        self.assertEqual(event.key, b"k")
        self.assertEqual(event.header("h"), "v")
        self.assertIsNone(event.header("missing"))
        copy = event.with_value([1])
        self.assertEqual((copy.topic, copy.value, copy.key, copy.timestamp_ms), ("orders", b"[1]", b"k", 5))


class Double(unittest.TestCase):
    def test_configuration_logs_and_counters(self):
        testing.reset()
        testing.set_config("field", "/x")
        self.assertEqual(host.config("field"), "/x")
        self.assertEqual(host.config("missing", "fallback"), "fallback")
        host.counter_add("seen")
        host.counter_add("seen", 2)
        host.log("info", "hello", n=1)
        self.assertEqual(testing.counters(), {"seen": 3})
        self.assertEqual(testing.logs(), [("info", "hello", {"n": "1"})])
        with self.assertRaises(ValueError):
            host.log("loud", "x")


class DecisionJson(unittest.TestCase):
    def test_as_sluice_plugin_test_prints_them(self):
        self.assertEqual(testing.decision_json(Accept(), "produce"), {"action": "accept"})
        self.assertEqual(
            testing.decision_json(Modify(value={"a": 1}, key="k", headers={"h": b"v"}), "produce"),
            {"action": "modify", "value": {"a": 1}, "key": "k", "headers": {"h": "v"}},
        )
        self.assertEqual(testing.decision_json(Reroute("t"), "produce"), {"action": "reroute", "topic": "t"})
        self.assertEqual(
            testing.decision_json(FanOut([Event("a", {"n": 1})]), "produce"),
            {"action": "fan-out", "events": [{"topic": "a", "value": {"n": 1}}]},
        )
        self.assertEqual(testing.decision_json(Skip("r"), "consume"), {"delivery": "skip", "reason": "r"})
        self.assertEqual(testing.decision_json(RetryAfter(5), "failure"), {"decision": "retry-after", "ms": 5})
        with self.assertRaises(TypeError):
            testing.decision_json("accept", "produce")


if __name__ == "__main__":
    unittest.main()
