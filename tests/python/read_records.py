"""Reads whole records of a topic with Confluent's Python client and prints each as one JSON line:
{"partition", "offset", "key", "key_schema_id", "value", "headers", "timestamp"}.

Keys and values in Confluent's wire format (magic byte 0) are deserialized with AvroDeserializer,
which fetches the writer schema by id from the registry; other keys are printed as text, other
values as text or, when not UTF-8, {"base64": ...}. A tombstone's value is null. Headers are {name: text}, or {name: {"base64": ...}} when not UTF-8.

usage: read_records.py BOOTSTRAP TOPIC REGISTRY_URL COUNT [TIMEOUT_SECONDS]
"""

import base64
import json
import sys

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from decode import plain, records


def framed(raw):
    return raw is not None and len(raw) > 5 and raw[0] == 0


def header_value(value):
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(value).decode()}


def main():
    bootstrap, topic, registry, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 30.0
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": registry}))
    for msg in records(bootstrap, topic, count, timeout):
        key, key_schema_id = msg.key(), None
        if framed(key):
            key_schema_id = int.from_bytes(key[1:5], "big")
            key = deserializer(key, SerializationContext(topic, MessageField.KEY))
        elif key is not None:
            key = key.decode("utf-8")
        value = msg.value()
        if framed(value):
            value = deserializer(value, SerializationContext(topic, MessageField.VALUE))
        elif value is not None:
            value = header_value(value)
        headers = {k: header_value(v) for k, v in (msg.headers() or [])}
        print(json.dumps({"partition": msg.partition(), "offset": msg.offset(), "key": key,
                          "key_schema_id": key_schema_id, "value": value, "headers": headers,
                          "timestamp": msg.timestamp()[1]},
                         default=plain), flush=True)


if __name__ == "__main__":
    main()
