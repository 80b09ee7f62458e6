"""Drives a schema registry with Confluent's own Python SchemaRegistryClient: register, look up,
fetch by id, set a subject's compatibility level, test compatibility, and delete; then a Protobuf
schema that imports another subject's file through a reference. Each step
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
MONEY = 'syntax = "proto3";\npackage shop;\n\nmessage Money {\n  string currency = 1;\n  int64 units = 2;\n}\n'
PAYMENT = (
    'syntax = "proto3";\npackage shop.v1;\n\nimport "shop/money.proto";\n'
    'import "google/protobuf/timestamp.proto";\n\n'
    'message PaymentConfirmed {\n  string payment_id = 1;\n  shop.Money amount = 2;\n'
    '  google.protobuf.Timestamp confirmed_at = 3;\n}\n'
)
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

    protobuf(url, client, subject)
    print("ok")


def protobuf(url, client, subject):
    from confluent_kafka.schema_registry import SchemaReference

    step("protobuf: register a file, and one that imports it through a reference")
    money_id = client.register_schema("shop/money.proto", Schema(MONEY, "PROTOBUF"))
    reference = SchemaReference("shop/money.proto", "shop/money.proto", 1)
    payment = Schema(PAYMENT, "PROTOBUF", [reference])
    payment_id = client.register_schema(subject + "-pb", payment)
    assert payment_id != money_id
    assert client.register_schema(subject + "-pb", payment) == payment_id

    step("protobuf: read both back as registered, with the reference")
    fetched = SchemaRegistryClient({"url": url}).get_schema(payment_id)
    assert (fetched.schema_str, fetched.schema_type) == (PAYMENT, "PROTOBUF"), fetched
    assert [(r.name, r.subject, r.version) for r in fetched.references] == [("shop/money.proto", "shop/money.proto", 1)]
    latest = client.get_latest_version(subject + "-pb")
    assert (latest.schema_id, latest.version, latest.schema.schema_str) == (payment_id, 1, PAYMENT), latest
    assert client.lookup_schema(subject + "-pb", payment).schema_id == payment_id
    assert client.get_schema(money_id).schema_str == MONEY

    step("protobuf: compatibility by Confluent's rules")
    added = PAYMENT.replace("confirmed_at = 3;", "confirmed_at = 3;\n  string note = 4;")
    retyped = PAYMENT.replace("string payment_id = 1;", "int64 payment_id = 1;")
    assert client.test_compatibility(subject + "-pb", Schema(added, "PROTOBUF", [reference])) is True
    assert client.test_compatibility(subject + "-pb", Schema(retyped, "PROTOBUF", [reference])) is False
    try:
        client.register_schema(subject + "-pb", Schema(retyped, "PROTOBUF", [reference]))
        raise AssertionError("registered an incompatible Protobuf schema")
    except SchemaRegistryError as error:
        assert error.http_status_code == 409 and "FIELD_SCALAR_KIND_CHANGED" in error.error_message, error

    step("protobuf: a file that does not compile is 42201 with the compiler's message")
    try:
        client.register_schema(subject + "-bad", Schema('syntax = "proto3";\nmessage A {\n  strin x = 1;\n}\n', "PROTOBUF"))
        raise AssertionError("registered a broken .proto")
    except SchemaRegistryError as error:
        assert error.http_status_code == 422 and error.error_code == 42201, error
        assert "strin" in error.error_message and ":3:" in error.error_message, error.error_message

    step("protobuf: the referenced version cannot go while it is referenced")
    try:
        client.delete_version("shop/money.proto", 1)
        raise AssertionError("deleted a referenced version")
    except SchemaRegistryError as error:
        assert error.error_code == 42206, error


if __name__ == "__main__":
    main()
