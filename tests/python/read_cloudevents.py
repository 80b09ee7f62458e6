"""Reads a topic with Confluent's Python consumer and turns each record into a CloudEvent with the
CloudEvents SDK's Kafka protocol binding (binary content mode, `from_binary`), its data
deserialized with Confluent's AvroDeserializer through the registry. Prints one JSON line per
event: {"attributes": {...}, "data": {...}}.

usage: read_cloudevents.py BOOTSTRAP TOPIC REGISTRY_URL COUNT [TIMEOUT_SECONDS]
"""

import json
import sys

from cloudevents.kafka import KafkaMessage, from_binary
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from decode import plain, records


def main():
    bootstrap, topic, registry, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 30.0
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": registry}))
    context = SerializationContext(topic, MessageField.VALUE)
    for msg in records(bootstrap, topic, count, timeout):
        message = KafkaMessage(headers=dict(msg.headers() or []), key=msg.key(), value=msg.value())
        event = from_binary(message, data_unmarshaller=lambda raw: deserializer(raw, context))
        attributes = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in event.get_attributes().items()}
        print(json.dumps({"attributes": attributes, "data": event.get_data()}, default=plain), flush=True)


if __name__ == "__main__":
    main()
