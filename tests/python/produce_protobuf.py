"""Produces Protobuf records with Confluent's own Python ProtobufSerializer, as a team already on
Confluent's clients would, and prints each message's canonical proto3 JSON (MessageToDict).

usage: produce_protobuf.py BOOTSTRAP TOPIC REGISTRY_URL < spec.json
spec: {"files": {import path: .proto text}, "main": import path, "message": full name,
       "events": [{"key": str, "value": proto3 JSON}]}

The serializer runs with its defaults: it registers the file (as a base64 FileDescriptorProto)
under TOPIC-value and each imported file under its path, with references, except the
well-known google/protobuf types.
"""

import json
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import json_format

import protobuf_classes


def main():
    bootstrap, topic, registry = sys.argv[1:4]
    spec = json.load(sys.stdin)
    cls = protobuf_classes.compile_files(spec["files"], spec["main"])[spec["message"]]
    serializer = ProtobufSerializer(cls, SchemaRegistryClient({"url": registry}))
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    ctx = SerializationContext(topic, MessageField.VALUE)
    failures = []
    for event in spec["events"]:
        message = json_format.ParseDict(event["value"], cls())
        producer.produce(topic, key=event["key"].encode(), value=serializer(message, ctx),
                         on_delivery=lambda err, _msg: err and failures.append(str(err)))
        print(json.dumps(json_format.MessageToDict(message)), flush=True)
    producer.flush(30)
    if failures or len(producer):
        sys.exit(f"not delivered: {failures or len(producer)}")


if __name__ == "__main__":
    main()
