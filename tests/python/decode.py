"""Reads a topic with Confluent's own Python client and deserializers and prints each record as
one JSON line: {"partition", "offset", "key", "schema_id", "value"}.

It is the independent reader in Sluice's integration tests: if Confluent's AvroDeserializer or
JSONDeserializer, fetching the writer schema by id from the registry, turns our bytes back into
the event we sent, our wire format and registry API are right.

usage: decode.py BOOTSTRAP TOPIC REGISTRY_URL avro|json|protobuf:MESSAGE COUNT [TIMEOUT_SECONDS]

Protobuf records are read with ProtobufDeserializer and printed as canonical proto3 JSON
(MessageToDict's defaults). The message class is compiled from the registry's .proto text of the
record's schema id (and its references); when the registry also serves the schema in Confluent's
`serialized` format, the deserializer is given the registry too, and then checks the record's
message indexes against the writer schema it fetches ("registry_checked": true).
"""

import base64

import datetime
import decimal
import json
import struct
import sys
import time
import uuid

from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def plain(value):
    """Logical types come back as Python objects; turn them into the JSON Sluice accepts."""
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("latin-1")
    raise TypeError(f"cannot render {type(value)}")


class ProtobufReader:
    """A ProtobufDeserializer per schema id, for the message named on the command line."""

    def __init__(self, client, url, message):
        self.client, self.url, self.message, self.by_id = client, url, message, {}

    def __call__(self, raw, ctx, schema_id):
        from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
        from google.protobuf import json_format
        import protobuf_classes
        if schema_id not in self.by_id:
            cls = protobuf_classes.classes_for_id(self.client, schema_id)[self.message]
            try:
                # A client of its own: clients cache schemas by id, whatever the format.
                fresh = SchemaRegistryClient({"url": self.url})
                serialized = fresh.get_schema(schema_id, fmt="serialized").schema_str
                base64.b64decode(serialized, validate=True)
                checked = True
            except Exception:
                checked = False
            registry = fresh if checked else None
            self.by_id[schema_id] = (ProtobufDeserializer(cls, {}, registry), checked)
        deserializer, checked = self.by_id[schema_id]
        return json_format.MessageToDict(deserializer(raw, ctx)), checked


def records(bootstrap, topic, count, timeout, group=None):
    """Yields up to `count` records of every partition of `topic` from the beginning, then exits
    the script with an error if fewer arrived within `timeout` seconds. Shared by the readers."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group or f"sluice-test-{time.time()}",
                         "enable.auto.commit": False})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    seen = 0
    deadline = time.monotonic() + timeout
    while seen < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            raise RuntimeError(msg.error())
        yield msg
        seen += 1
    consumer.close()
    if seen < count:
        sys.exit(f"read {seen} of {count} records from {topic}")


def main():
    bootstrap, topic, registry, fmt, count = sys.argv[1:6]
    count = int(count)
    timeout = float(sys.argv[6]) if len(sys.argv) > 6 else 30.0
    client = SchemaRegistryClient({"url": registry})
    protobuf = None
    if fmt.startswith("protobuf:"):
        protobuf = ProtobufReader(client, registry, fmt.split(":", 1)[1])
        deserializer = None
    elif fmt == "avro":
        deserializer = AvroDeserializer(client)
    else:
        deserializer = JSONDeserializer(None, schema_registry_client=client)
    for msg in records(bootstrap, topic, count, timeout, "sluice-test-decoder"):
        raw = msg.value()
        magic, schema_id = struct.unpack(">bI", raw[:5])
        assert magic == 0, f"magic byte {magic}"
        ctx = SerializationContext(topic, MessageField.VALUE)
        line = {}
        if protobuf is not None:
            value, line["registry_checked"] = protobuf(raw, ctx, schema_id)
        else:
            value = deserializer(raw, ctx)
        key = msg.key().decode() if msg.key() is not None else None
        line.update({
            "partition": msg.partition(), "offset": msg.offset(), "key": key,
            "schema_id": schema_id, "value": value,
        })
        print(json.dumps(line, default=plain), flush=True)


if __name__ == "__main__":
    main()
