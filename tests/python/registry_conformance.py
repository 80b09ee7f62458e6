"""Confluent Schema Registry conformance of a registry at REGISTRY_URL: every endpoint and error
case README's conformance table lists as supported, through Confluent's own Python
SchemaRegistryClient wherever it has the call and through plain HTTP elsewhere. Each check
asserts the status, error_code and message Confluent's registry answers (texts from its
Errors.java). All checks run; the script lists every failure and exits non-zero if any failed.

The registry must be empty (a fresh embedded registry): the IMPORT checks switch global modes.

usage: registry_conformance.py REGISTRY_URL
"""

import json
import sys
import urllib.error
import urllib.request
import uuid

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

URL = sys.argv[1].rstrip("/")
FAILURES = []


def fresh():
    """A client without caches: Confluent's client answers repeated reads from memory."""
    return SchemaRegistryClient({"url": URL})


def subject(name):
    return f"{name}-{uuid.uuid4().hex[:8]}"


def check(name):
    def wrap(body):
        try:
            body()
            print(f"ok   {name}", flush=True)
        except Exception as error:  # noqa: BLE001 - every failure is reported, then the next check runs
            FAILURES.append(f"{name}: {error!r}")
            print(f"FAIL {name}: {error!r}", flush=True)
        return body
    return wrap


def http(method, path, body=None, headers=None, raw=False):
    """(status, content type, parsed JSON, or the text with `raw`)."""
    data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(URL + path, data=data, method=method, headers=headers or {})
    if data is not None and "Content-Type" not in (headers or {}):
        request.add_header("Content-Type", "application/vnd.schemaregistry.v1+json")
    try:
        with urllib.request.urlopen(request) as response:
            status, content_type, text = response.status, response.headers.get("Content-Type"), response.read()
    except urllib.error.HTTPError as error:
        status, content_type, text = error.code, error.headers.get("Content-Type"), error.read()
    if raw:
        return status, content_type, text.decode()
    try:
        return status, content_type, json.loads(text)
    except ValueError:
        return status, content_type, text.decode()


def refused(call, status, code, message=None, contains=None):
    """`call` fails with exactly this status, error_code and message (or a message containing)."""
    try:
        result = call()
    except SchemaRegistryError as error:
        got = (error.http_status_code, error.error_code, error.error_message)
    else:
        if not (isinstance(result, tuple) and len(result) == 3):
            raise AssertionError(f"expected {status}/{code}, got success {result!r}")
        got = (result[0], result[2].get("error_code") if isinstance(result[2], dict) else None,
               result[2].get("message") if isinstance(result[2], dict) else result[2])
    assert got[0] == status and got[1] == code, f"expected {status}/{code}, got {got}"
    if message is not None:
        assert got[2] == message, f"message {got[2]!r} is not {message!r}"
    if contains is not None:
        assert contains in got[2], f"message {got[2]!r} lacks {contains!r}"


def avro(fields, name="Order"):
    return {"type": "record", "name": name, "namespace": "dev.sluice.conformance", "fields": fields}


V1 = avro([{"name": "id", "type": "string"}])
V2 = avro([{"name": "id", "type": "string"}, {"name": "note", "type": "string", "default": ""}])
BREAKS = avro([{"name": "id", "type": "long"}])
client = SchemaRegistryClient({"url": URL})


@check("GET / answers {}; GET /contexts the default context; GET /schemas/types the formats")
def _():
    assert http("GET", "")[2] == {}, http("GET", "")
    assert client.get_contexts() == ["."], client.get_contexts()
    assert sorted(client.get_schema_types()) == ["AVRO", "JSON", "PROTOBUF"], client.get_schema_types()


@check("a schema comes back byte for byte as registered, through every read")
def _():
    s = subject("verbatim")
    text = '{  "fields" :[{"type":"string","name":"id"}],\n  "type": "record",   "name":"Verbatim" }'
    schema_id = client.register_schema(s, Schema(text, "AVRO"))
    assert fresh().get_schema(schema_id).schema_str == text, fresh().get_schema(schema_id).schema_str
    assert fresh().get_version(s, 1).schema.schema_str == text
    assert http("GET", f"/schemas/ids/{schema_id}/schema", raw=True)[2] == text
    assert http("GET", f"/subjects/{s}/versions/1/schema", raw=True)[2] == text
    assert http("GET", f"/subjects/{s}/versions/latest")[2]["schema"] == text
    found = fresh().lookup_schema(s, Schema(json.dumps(json.loads(text)), "AVRO"))
    assert found.schema_id == schema_id, "another spelling of the same schema is found"


@check("normalize=true registers the canonical text")
def _():
    s = subject("normalized")
    text = '{ "type": "record", "name": "N", "fields": [] }'
    status, _, body = http("POST", f"/subjects/{s}/versions?normalize=true", {"schema": text})
    assert status == 200, body
    stored = http("GET", f"/schemas/ids/{body['id']}/schema", raw=True)[2]
    assert stored == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":")), stored


@check("register, lookup, versions, latest, by id, subjects and versions of an id")
def _():
    a, b = subject("orders"), subject("orders-copy")
    v1 = client.register_schema(a, Schema(json.dumps(V1), "AVRO"))
    assert client.register_schema(a, Schema(json.dumps(V1), "AVRO")) == v1, "registering twice gives one id"
    v2 = client.register_schema(a, Schema(json.dumps(V2), "AVRO"))
    assert client.register_schema(b, Schema(json.dumps(V1), "AVRO")) == v1, "one id across subjects"
    found = client.lookup_schema(a, Schema(json.dumps(V2), "AVRO"))
    assert (found.schema_id, found.version, found.subject) == (v2, 2, a)
    assert client.get_versions(a) == [1, 2]
    assert client.get_latest_version(a).schema_id == v2
    assert client.get_version(a, 1).schema_id == v1
    assert a in client.get_subjects() and b in client.get_subjects()
    assert sorted(client.get_subjects_by_schema_id(v1)) == sorted([a, b])
    pairs = sorted((v.subject, v.version) for v in client.get_schema_versions(v1))
    assert pairs == sorted([(a, 1), (b, 1)]), pairs
    assert http("GET", f"/schemas/ids/{v1}/subjects?subject={a}")[2] == [a]
    status, _, body = http("GET", f"/schemas/ids/{v2}?fetchMaxId=true")
    assert status == 200 and body["maxId"] >= v2, body


@check("GET /schemas filters by subjectPrefix, latestOnly, offset and limit")
def _():
    prefix = subject("listing")
    for i in range(3):
        client.register_schema(f"{prefix}-a", Schema(json.dumps(avro([{"name": f"f{j}", "type": "int", "default": 0} for j in range(i)], "L")), "AVRO"))
    client.register_schema(f"{prefix}-b", Schema(json.dumps(V1), "AVRO"))
    every = http("GET", f"/schemas?subjectPrefix={prefix}")[2]
    assert [(s["subject"], s["version"]) for s in every] == [(f"{prefix}-a", 1), (f"{prefix}-a", 2), (f"{prefix}-a", 3), (f"{prefix}-b", 1)], every
    latest = http("GET", f"/schemas?subjectPrefix={prefix}&latestOnly=true")[2]
    assert [(s["subject"], s["version"]) for s in latest] == [(f"{prefix}-a", 3), (f"{prefix}-b", 1)], latest
    window = http("GET", f"/schemas?subjectPrefix={prefix}&offset=1&limit=2")[2]
    assert [(s["subject"], s["version"]) for s in window] == [(f"{prefix}-a", 2), (f"{prefix}-a", 3)], window
    assert http("GET", f"/subjects?subjectPrefix={prefix}-b")[2] == [f"{prefix}-b"]


@check("compatibility: levels per subject and global, defaultToGlobal, DELETE /config")
def _():
    s = subject("levels")
    client.register_schema(s, Schema(json.dumps(V1), "AVRO"))
    refused(lambda: fresh().get_compatibility(s), 404, 40408, f"Subject '{s}' does not have subject-level compatibility configured")
    assert http("GET", f"/config/{s}?defaultToGlobal=true")[2] == {"compatibilityLevel": "BACKWARD"}
    assert client.set_compatibility(subject_name=s, level="FULL") == {"compatibility": "FULL"}
    assert client.get_compatibility(s) == "FULL"
    assert http("DELETE", f"/config/{s}")[2] == {"compatibilityLevel": "FULL"}
    refused(lambda: http("DELETE", f"/config/{s}"), 404, 40401, f"Subject '{s}' not found.")
    refused(lambda: http("PUT", f"/config/{s}", {"compatibility": "SIDEWAYS"}), 422, 42203,
            "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")


@check("compatibility checks answer with Confluent's reasons, a JSON pointer in each")
def _():
    s = subject("reasons")
    client.register_schema(s, Schema(json.dumps(V1), "AVRO"))
    assert client.test_compatibility(s, Schema(json.dumps(V2), "AVRO")) is True
    assert client.test_compatibility(s, Schema(json.dumps(BREAKS), "AVRO")) is False
    assert client.test_compatibility_all_versions(s, Schema(json.dumps(BREAKS), "AVRO")) is False
    status, _, body = http("POST", f"/compatibility/subjects/{s}/versions/latest?verbose=true", {"schema": json.dumps(BREAKS)})
    assert status == 200 and body["is_compatible"] is False, body
    assert any("errorType:'TYPE_MISMATCH'" in m and "/fields/0" in m for m in body["messages"]), body
    assert "{oldSchemaVersion: 1}" in body["messages"] and body["messages"][-1] == "{validateFields: 'false', compatibility: 'BACKWARD'}", body
    assert http("POST", f"/compatibility/subjects/{s}/versions/1?verbose=true", {"schema": json.dumps(V2)})[2] == {"is_compatible": True, "messages": []}
    refused(lambda: http("POST", f"/compatibility/subjects/{s}/versions/9", {"schema": json.dumps(V2)}), 404, 40402, "Version 9 not found.")
    refused(lambda: http("POST", f"/compatibility/subjects/{subject('nobody')}/versions/1", {"schema": json.dumps(V2)}), 404, 40402)
    assert http("POST", f"/compatibility/subjects/{subject('empty')}/versions/latest", {"schema": json.dumps(V2)})[2]["is_compatible"] is True


@check("an incompatible registration is refused with 409 and its reasons")
def _():
    s = subject("conflict")
    client.register_schema(s, Schema(json.dumps(V1), "AVRO"))
    refused(lambda: client.register_schema(s, Schema(json.dumps(BREAKS), "AVRO")), 409, 409,
            contains=f'Schema being registered is incompatible with an earlier schema for subject "{s}", details: [{{errorType:\'TYPE_MISMATCH\'')
    status, _, body = http("POST", f"/subjects/{s}/versions", {"schema": json.dumps(BREAKS)})
    assert status == 409 and "{oldSchemaVersion: 1}" in body["messages"], body


@check("deletes: soft and permanent, with each of Confluent's refusals")
def _():
    s = subject("deletes")
    client.register_schema(s, Schema(json.dumps(V1), "AVRO"))
    client.register_schema(s, Schema(json.dumps(V2), "AVRO"))
    refused(lambda: client.delete_version(s, 2, permanent=True), 404, 40407,
            f"Subject '{s}' Version 2 was not deleted first before being permanently deleted")
    assert client.delete_version(s, 2) == 2
    refused(lambda: client.delete_version(s, 2), 404, 40406,
            f"Subject '{s}' Version 2 was soft deleted.Set permanent=true to delete permanently")
    assert client.get_versions(s) == [1] and client.get_versions(s, deleted=True) == [1, 2]
    assert http("GET", f"/subjects/{s}/versions?deletedOnly=true")[2] == [2]
    assert http("GET", f"/subjects/{s}/versions/2?deleted=true")[2]["version"] == 2
    refused(lambda: client.delete_subject(s, permanent=True), 404, 40405,
            f"Subject '{s}' was not deleted first before being permanently deleted")
    assert client.delete_subject(s) == [1]
    refused(lambda: client.delete_subject(s), 404, 40404,
            f"Subject '{s}' was soft deleted.Set permanent=true to delete permanently")
    assert s in http("GET", "/subjects?deletedOnly=true")[2]
    assert client.delete_subject(s, permanent=True) == [1, 2]
    refused(lambda: fresh().get_versions(s), 404, 40401, f"Subject '{s}' not found.")


@check("references: referencedby, and a referenced version cannot be deleted")
def _():
    base, user = subject("ref-base"), subject("ref-user")
    client.register_schema(base, Schema(json.dumps({"type": "enum", "name": "Currency", "namespace": "dev.sluice.conformance", "symbols": ["EUR", "USD"]}), "AVRO"))
    from confluent_kafka.schema_registry import SchemaReference
    user_id = client.register_schema(user, Schema(json.dumps(avro([{"name": "currency", "type": "dev.sluice.conformance.Currency"}], "Priced")), "AVRO",
                                                  [SchemaReference("dev.sluice.conformance.Currency", base, 1)]))
    assert client.get_referenced_by(base, 1) == [user_id]
    widened = Schema(json.dumps(avro([{"name": "currency", "type": "dev.sluice.conformance.Currency"},
                                      {"name": "note", "type": "string", "default": ""}], "Priced")), "AVRO",
                     [SchemaReference("dev.sluice.conformance.Currency", base, 1)])
    assert client.test_compatibility(user, widened) is True, "references are resolved when checking"
    status, _, body = http("POST", f"/compatibility/subjects/{user}/versions?verbose=true", widened.to_dict())
    assert body == {"is_compatible": True, "messages": []}, body
    assert client.register_schema(user, widened) > user_id
    renamed = Schema(json.dumps(avro([{"name": "currency", "type": "string"}], "Priced")), "AVRO")
    assert client.test_compatibility(user, renamed) is False, "an enum read as a string is not compatible"
    refused(lambda: client.delete_version(base, 1), 422, 42206,
            f"One or more references exist to the schema {{magic=1,keytype=SCHEMA,subject={base},version=1}}.")


@check("lookups and reads: Confluent's not-found answers")
def _():
    s = subject("lookups")
    client.register_schema(s, Schema(json.dumps(V1), "AVRO"))
    refused(lambda: fresh().get_schema(987654), 404, 40403, "Schema 987654 not found")
    refused(lambda: fresh().get_subjects_by_schema_id(987654), 404, 40403, "Schema not found")
    refused(lambda: fresh().get_schema_versions(987654), 404, 40403, "Schema not found")
    refused(lambda: fresh().lookup_schema(subject("nobody"), Schema(json.dumps(V1), "AVRO")), 404, 40401)
    refused(lambda: fresh().lookup_schema(s, Schema(json.dumps(V2), "AVRO")), 404, 40403, "Schema not found")
    refused(lambda: http("POST", f"/subjects/{s}", {"schema": '{"type": "invalid_type"}'}), 422, 42201,
            f"Error while looking up schema under subject {s}")
    refused(lambda: fresh().get_version(s, 15), 404, 40402, "Version 15 not found.")
    for bad in ["0", "-2", "abc"]:
        refused(lambda: http("GET", f"/subjects/{s}/versions/{bad}"), 422, 42202,
                f"The specified version '{bad}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")
    refused(lambda: http("GET", "/schemas/ids/abc"), 404, 404, "HTTP 404 Not Found")


@check("request bodies: missing or empty schema, unknown type, malformed JSON")
def _():
    s = subject("bodies")
    refused(lambda: http("POST", f"/subjects/{s}/versions", {}), 422, 422)
    refused(lambda: http("POST", f"/subjects/{s}/versions", {"schema": ""}), 422, 42201, "Empty schema")
    refused(lambda: http("POST", f"/subjects/{s}/versions", {"schema": '"int"', "schemaType": "AVROO"}), 422, 422, "Invalid schema type AVROO")
    refused(lambda: http("POST", f"/compatibility/subjects/{s}/versions/latest", {"schema": '"int"', "schemaType": "AVROO"}), 422, 422)
    refused(lambda: http("POST", f"/subjects/{s}/versions", b"{"), 400, 400)
    refused(lambda: client.register_schema(s, Schema('{"type": "record", "name": "R"}', "AVRO")), 422, 42201)


@check("content negotiation: Confluent's type by default, application/json when asked, 406 otherwise")
def _():
    assert http("GET", "/subjects")[1] == "application/vnd.schemaregistry.v1+json"
    assert http("GET", "/subjects", headers={"Accept": "application/json"})[1] == "application/json"
    assert http("GET", "/subjects", headers={"Accept": "application/vnd.schemaregistry+json"})[1] == "application/vnd.schemaregistry+json"
    refused(lambda: http("GET", "/subjects", headers={"Accept": "text/html"}), 406, 406, "HTTP 406 Not Acceptable")
    assert http("POST", f"/subjects/{subject('plain-json')}/versions", {"schema": '"int"'}, {"Content-Type": "application/json"})[0] == 200


@check("JSON Schema: tuple items, prefixItems and boolean subschemas register and evolve")
def _():
    s = subject("json-shapes")
    tuple_v1 = {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}
    assert client.register_schema(s, Schema(json.dumps(tuple_v1), "JSON")) > 0
    widened = {"type": "array", "items": [{"type": "string"}, {"type": "number"}]}
    assert client.register_schema(s, Schema(json.dumps(widened), "JSON")) > 0, "widening a position reads old data"
    narrowed = {"type": "array", "items": [{"type": "string"}, {"type": "integer"}, {"type": "boolean"}]}
    refused(lambda: client.register_schema(s, Schema(json.dumps(narrowed), "JSON")), 409, 409, contains="ITEM_ADDED_TO_OPEN_CONTENT_MODEL")
    p = subject("json-prefix")
    prefix = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "array", "prefixItems": [{"type": "string"}], "items": False}
    assert client.register_schema(p, Schema(json.dumps(prefix), "JSON")) > 0
    b = subject("json-booleans")
    assert client.register_schema(b, Schema(json.dumps({"type": "object", "properties": {"any": True, "none": False}}), "JSON")) > 0
    assert client.register_schema(subject("json-true"), Schema("true", "JSON")) > 0


@check("modes: READONLY refuses writes, subject modes, defaultToGlobal, DELETE /mode")
def _():
    s = subject("readonly")
    client.register_schema(s, Schema(json.dumps(V1), "AVRO"))
    assert client.get_global_mode() == "READWRITE"
    refused(lambda: fresh().get_mode(s), 404, 40409, f"Subject '{s}' does not have subject-level mode configured")
    assert http("GET", f"/mode/{s}?defaultToGlobal=true")[2] == {"mode": "READWRITE"}
    assert client.update_mode(s, "READONLY") == "READONLY"
    assert client.get_mode(s) == "READONLY"
    assert client.register_schema(s, Schema(json.dumps(V1), "AVRO")) > 0, "a schema already there is still found"
    refused(lambda: client.register_schema(s, Schema(json.dumps(V2), "AVRO")), 422, 42205, f"Subject {s} is in read-only mode")
    refused(lambda: client.delete_version(s, 1), 422, 42205, f"Subject {s} is in read-only mode")
    refused(lambda: http("PUT", f"/mode/{s}", {"mode": "SIDEWAYS"}), 422, 42204, "Invalid mode. Valid values are READWRITE, READONLY, and IMPORT.")
    assert client.delete_mode(s) == "READONLY"
    refused(lambda: http("DELETE", f"/mode/{s}"), 404, 40401, f"Subject '{s}' not found.")
    assert client.register_schema(s, Schema(json.dumps(V2), "AVRO")) > 0


@check("IMPORT: registering with a given id and version, and its refusals")
def _():
    s = subject("imported")
    refused(lambda: http("POST", f"/subjects/{s}/versions", {"schema": json.dumps(V1), "id": 5000}), 422, 42205, f"Subject {s} is not in import mode")
    taken = subject("taken")
    client.register_schema(taken, Schema(json.dumps(V2), "AVRO"))
    refused(lambda: client.update_global_mode("IMPORT"), 422, 42205, "Cannot import since found existing subjects")
    assert client.update_mode(s, "IMPORT") == "IMPORT", "a subject without versions may import"
    status, _, body = http("POST", f"/subjects/{s}/versions", {"schema": json.dumps(V1), "id": 5000, "version": 7})
    assert (status, body) == (200, {"id": 5000}), body
    assert fresh().get_version(s, 7).schema_id == 5000
    assert json.loads(fresh().get_schema(5000).schema_str) == V1
    refused(lambda: http("POST", f"/subjects/{s}/versions", {"schema": json.dumps(BREAKS), "id": 5000, "version": 8}), 422, 42205,
            "Overwrite new schema with id 5000 is not permitted.")
    refused(lambda: http("POST", f"/subjects/{s}/versions", {"schema": json.dumps(BREAKS)}), 422, 42205, f"Subject {s} is not in read-write mode")
    assert http("POST", f"/subjects/{s}/versions", {"schema": json.dumps(BREAKS), "id": 5001, "version": 8})[0] == 200, "no compatibility check on import"
    assert client.delete_mode(s) == "IMPORT"
    fresh_id = client.register_schema(subject("after-import"), Schema(json.dumps(avro([], "Fresh")), "AVRO"))
    assert fresh_id > 5001, f"ids handed out after an import skip the imported ones ({fresh_id})"
    assert client.update_global_mode("IMPORT", force=True) == "IMPORT"
    assert http("DELETE", "/mode")[2] == {"mode": "IMPORT"}
    assert client.get_global_mode() == "READWRITE"


@check("global compatibility: GET, PUT and DELETE /config; POST /; paging of subjects and versions")
def _():
    assert http("POST", "", {})[2] == {}
    assert client.get_compatibility() == "BACKWARD"
    assert client.set_compatibility(level="FORWARD") == {"compatibility": "FORWARD"}
    s = subject("global-level")
    client.register_schema(s, Schema(json.dumps(V2), "AVRO"))
    assert client.test_compatibility(s, Schema(json.dumps(V1), "AVRO")) is True, "FORWARD: the old schema reads the new"
    assert http("GET", f"/config/{s}?defaultToGlobal=true")[2] == {"compatibilityLevel": "FORWARD"}
    assert http("DELETE", "/config")[2] == {"compatibilityLevel": "FORWARD"}
    assert fresh().get_compatibility() == "BACKWARD", "DELETE /config restores the default"
    for version in range(2):
        client.register_schema(s, Schema(json.dumps(avro([{"name": "id", "type": "string"}] + [{"name": f"n{i}", "type": "int", "default": 0} for i in range(version + 1)])), "AVRO"))
    assert client.get_versions(s) == [1, 2, 3]
    assert client.get_versions(s, offset=1, limit=1) == [2]
    everything = client.get_subjects()
    assert client.get_subjects(offset=1, limit=2) == everything[1:3]
    assert s in http("GET", "/subjects?deleted=true")[2]


if FAILURES:
    print(f"\n{len(FAILURES)} check(s) failed:\n" + "\n".join(FAILURES))
    sys.exit(1)
print("ok")
