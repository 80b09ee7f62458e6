"""Drives a schema registry with Confluent's own Python SchemaRegistryClient: register, look up,
fetch by id, set a subject's compatibility level, test compatibility, and delete. Each step
asserts what Confluent's registry would answer; the script exits non-zero on the first
difference. Sluice's integration tests point it at the embedded registry.

usage: registry_client.py REGISTRY_URL SUBJECT
"""

import json
import sys

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

V1 = {
    "type": "record", "name": "OrderPlaced", "namespace": "dev.sluice.examples",
    "fields": [
        {"name": "order_id", "type": "string"},
        {"name": "customer_id", "type": "string"},
        {"name": "total_cents", "type": "long"},
        {"name": "currency", "type": "string"},
        {"name": "placed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}
V2 = dict(V1, fields=V1["fields"] + [
    {"name": "shipping_method", "type": "string", "default": "standard"},
    {"name": "items", "type": {"type": "array", "items": "string"}, "default": []},
])
BROKEN = dict(V1, fields=[f if f["name"] != "total_cents" else {"name": "total_cents", "type": "string"} for f in V1["fields"]])


def step(name):
    print(f"- {name}", flush=True)


def main():
    url, subject = sys.argv[1:3]
    client = SchemaRegistryClient({"url": url})

    step("register v1, twice: one id")
    v1_id = client.register_schema(subject, Schema(json.dumps(V1), "AVRO"))
    assert client.register_schema(subject, Schema(json.dumps(V1), "AVRO")) == v1_id

    step("look the schema up under its subject")
    found = client.lookup_schema(subject, Schema(json.dumps(V1), "AVRO"))
    assert (found.schema_id, found.version, found.subject) == (v1_id, 1, subject), found

    step("fetch it by id")
    fetched = client.get_schema(v1_id)
    assert json.loads(fetched.schema_str) == V1, fetched.schema_str
    assert fetched.schema_type == "AVRO"

    step("set and read the subject's compatibility level")
    # The client returns the registry's answer body here, despite its docstring.
    assert client.set_compatibility(subject_name=subject, level="FULL") == {"compatibility": "FULL"}
    assert client.get_compatibility(subject_name=subject) == "FULL"

    step("test compatibility both ways")
    assert client.test_compatibility(subject, Schema(json.dumps(V2), "AVRO")) is True
    assert client.test_compatibility(subject, Schema(json.dumps(BROKEN), "AVRO")) is False

    step("an incompatible registration is refused with 409")
    try:
        client.register_schema(subject, Schema(json.dumps(BROKEN), "AVRO"))
        raise AssertionError("registered an incompatible schema")
    except SchemaRegistryError as error:
        assert error.http_status_code == 409 and error.error_code == 409, error

    step("register v2 and read versions")
    v2_id = client.register_schema(subject, Schema(json.dumps(V2), "AVRO"))
    assert v2_id != v1_id
    latest = client.get_latest_version(subject)
    assert (latest.version, latest.schema_id) == (2, v2_id), latest
    assert client.get_versions(subject) == [1, 2]

    step("delete: soft, then permanent")
    assert client.delete_version(subject, 2) == 2
    assert client.get_versions(subject) == [1]
    assert client.delete_subject(subject) == [1]
    assert client.delete_subject(subject, permanent=True) == [1, 2]
    try:
        # A new client: this one caches the latest version.
        SchemaRegistryClient({"url": url}).get_latest_version(subject)
        raise AssertionError("the subject survived its permanent delete")
    except SchemaRegistryError as error:
        assert error.error_code == 40401, error
    print("ok")


if __name__ == "__main__":
    main()
