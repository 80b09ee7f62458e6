"""Sluice's Avro codec against fastavro and Confluent's AvroSerializer (both Python).

Reads a JSON file of cases, each {"schema", "json", "ours"}: a schema, a value in Sluice's
natural JSON, and the hex of the Avro bytes Sluice's encoder wrote for it. For every case it:

1. reads Sluice's bytes with fastavro and checks it gets the same value;
2. writes the value with fastavro and checks the bytes are Sluice's (the same encoding);
3. with --registry and --topic: serializes the value with Confluent's AvroSerializer (schemas
   registered in that registry under {topic}-value, compatibility NONE) and produces it to the
   topic with key "<index>-confluent", and produces a Java-style copy (arrays and maps written in
   blocks with negative counts and byte sizes, as Java's BlockingBinaryEncoder does) with the
   same schema id and key "<index>-blocked". (Confluent's serializers write a bare `bytes`
   value raw after the header, without Avro's length prefix; so does Sluice.)

Prints one JSON line per disagreement and exits 1 if there was any.

usage: avro_differential.py CASES.json [--registry URL --bootstrap SERVERS --topic TOPIC]
"""

import argparse
import io
import json
import random
import struct
import sys

import fastavro
import fastavro.read

# Logical types read as their underlying values: Sluice's natural JSON is derived from those
# here, so that out-of-calendar timestamps and the like do not trip Python's datetime. (Writers
# take underlying values as they are.)
for name in list(fastavro.read.LOGICAL_READERS):
    fastavro.read.LOGICAL_READERS[name] = lambda value, *_args, **_kwargs: value


def named(schema, names):
    """Resolves a named-type reference (fastavro's parsed schemas keep the first definition)."""
    if isinstance(schema, str) and schema in names:
        return names[schema]
    return schema


def collect(schema, names):
    if isinstance(schema, dict):
        if schema.get("type") in ("record", "enum", "fixed") and "name" in schema:
            names[schema["name"]] = schema
        for field in schema.get("fields", []):
            collect(field["type"], names)
        for key in ("items", "values"):
            if key in schema:
                collect(schema[key], names)
    elif isinstance(schema, list):
        for branch in schema:
            collect(branch, names)


def kind(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def schema_kind(schema, names):
    schema = named(schema, names)
    t = schema if isinstance(schema, str) else schema.get("type")
    return {
        "null": "null", "boolean": "boolean", "int": "number", "long": "number", "float": "number",
        "double": "number", "bytes": "string", "string": "string", "enum": "string", "fixed": "string",
        "array": "array", "map": "object", "record": "object",
    }[t]


def natural_kind(schema, names):
    """The kind of a branch's values in Sluice's natural JSON (a date is a string there)."""
    schema = named(schema, names)
    if isinstance(schema, dict) and schema.get("logicalType") == "date":
        return "string"
    return schema_kind(schema, names)


def decimal_text(unscaled, scale):
    digits = str(abs(unscaled)).rjust(scale + 1, "0")
    whole, fraction = digits[: len(digits) - scale], digits[len(digits) - scale:]
    sign = "-" if unscaled < 0 else ""
    return f"{sign}{whole}.{fraction}" if scale else f"{sign}{whole}"


def natural(schema, value, names):
    """A fastavro value (logical types raw) in Sluice's natural JSON."""
    schema = named(schema, names)
    if isinstance(schema, list):
        branch = next(b for b in schema if matches(b, value, names))
        return natural(branch, value, names)
    t = schema if isinstance(schema, str) else schema["type"]
    logical = None if isinstance(schema, str) else schema.get("logicalType")
    if t in ("bytes", "fixed"):
        if logical == "decimal":
            return decimal_text(int.from_bytes(value, "big", signed=True), schema.get("scale", 0))
        return value.decode("latin-1")
    if t == "int" and logical == "date":
        import datetime
        return (datetime.date(1970, 1, 1) + datetime.timedelta(days=value)).isoformat()
    if t == "record":
        return {f["name"]: natural(f["type"], value[f["name"]], names) for f in schema["fields"]}
    if t == "array":
        return [natural(schema["items"], v, names) for v in value]
    if t == "map":
        return {k: natural(schema["values"], v, names) for k, v in value.items()}
    return value


def matches(schema, value, names):
    """Whether a raw fastavro value is of this union branch (branches differ in kind)."""
    schema = named(schema, names)
    raw_kind = {bytes: "string"}.get(type(value), kind(value))
    return schema_kind(schema, names) == raw_kind


def raw(schema, value, names):
    """Sluice's natural JSON as the raw values fastavro writes (logical types underlying)."""
    schema = named(schema, names)
    if isinstance(schema, list):
        branch = next(b for b in schema if natural_kind(b, names) == kind(value))
        return raw(branch, value, names)
    t = schema if isinstance(schema, str) else schema["type"]
    logical = None if isinstance(schema, str) else schema.get("logicalType")
    if t in ("bytes", "fixed"):
        if logical == "decimal":
            scale = schema.get("scale", 0)
            whole, _, fraction = value.lstrip("-").partition(".")
            unscaled = int(whole + fraction.ljust(scale, "0")) * (-1 if value.startswith("-") else 1)
            # Fewest bytes in `bytes`; a `fixed` holds it sign-extended to its size.
            length = schema["size"] if t == "fixed" else max(1, (unscaled.bit_length() + 8) // 8)
            return unscaled.to_bytes(length, "big", signed=True)
        return value.encode("latin-1")
    if t == "int" and logical == "date":
        import datetime
        return (datetime.date.fromisoformat(value) - datetime.date(1970, 1, 1)).days
    if t == "record":
        return {f["name"]: raw(f["type"], value[f["name"]], names) for f in schema["fields"]}
    if t == "array":
        return [raw(schema["items"], v, names) for v in value]
    if t == "map":
        return {k: raw(schema["values"], v, names) for k, v in value.items()}
    return value


def long(n):
    z = ((n << 1) ^ (n >> 63)) & 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def blocked(schema, value, names, rng):
    """Avro binary with arrays and maps in blocks of negative counts and byte sizes."""
    schema = named(schema, names)
    if isinstance(schema, list):
        index = next(i for i, b in enumerate(schema) if matches(b, value, names))
        return long(index) + blocked(schema[index], value, names, rng)
    t = schema if isinstance(schema, str) else schema["type"]
    if t == "null":
        return b""
    if t == "boolean":
        return b"\x01" if value else b"\x00"
    if t in ("int", "long"):
        return long(value)
    if t == "float":
        return struct.pack("<f", value)
    if t == "double":
        return struct.pack("<d", value)
    if t == "bytes":
        return long(len(value)) + value
    if t == "string":
        data = value.encode("utf-8")
        return long(len(data)) + data
    if t == "fixed":
        return value
    if t == "enum":
        return long(schema["symbols"].index(value))
    if t == "record":
        return b"".join(blocked(f["type"], value[f["name"]], names, rng) for f in schema["fields"])
    if t in ("array", "map"):
        if t == "array":
            items = [blocked(schema["items"], v, names, rng) for v in value]
        else:
            items = [blocked("string", k, names, rng) + blocked(schema["values"], v, names, rng)
                     for k, v in value.items()]
        out = b""
        while items:
            size = rng.randint(1, 3)
            block, items = items[:size], items[size:]
            body = b"".join(block)
            out += long(-len(block)) + long(len(body)) + body
        return out + long(0)
    raise ValueError(f"unknown type {t}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("cases")
    parser.add_argument("--registry")
    parser.add_argument("--bootstrap")
    parser.add_argument("--topic")
    args = parser.parse_args()
    cases = json.load(open(args.cases))
    problems = 0
    rng = random.Random(7)
    producer = serializer = None
    if args.registry:
        from confluent_kafka import Producer
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.avro import AvroSerializer
        from confluent_kafka.serialization import MessageField, SerializationContext
        registry = SchemaRegistryClient({"url": args.registry})
        registry.set_compatibility(subject_name=f"{args.topic}-value", level="NONE")
        producer = Producer({"bootstrap.servers": args.bootstrap})
        context = SerializationContext(args.topic, MessageField.VALUE)

    def report(index, what, **details):
        nonlocal problems
        problems += 1
        print(json.dumps({"case": index, "problem": what, **details}, default=repr))

    for index, case in enumerate(cases):
        schema = json.loads(case["schema"])
        names = {}
        collect(schema, names)
        parsed = fastavro.parse_schema(schema)
        ours = bytes.fromhex(case["ours"])
        expected = json.loads(case["json"])
        try:
            read = fastavro.schemaless_reader(io.BytesIO(ours), parsed, None)
            if natural(schema, read, names) != expected:
                report(index, "fastavro reads Sluice's bytes differently", got=natural(schema, read, names))
        except Exception as error:  # noqa: BLE001 - any failure is the finding
            report(index, "fastavro cannot read Sluice's bytes", error=str(error))
        try:
            out = io.BytesIO()
            fastavro.schemaless_writer(out, parsed, raw(schema, expected, names))
            if out.getvalue() != ours:
                report(index, "fastavro writes other bytes", fastavro=out.getvalue().hex(), sluice=case["ours"])
        except Exception as error:  # noqa: BLE001
            report(index, "fastavro cannot write the value", error=str(error))
        if producer is not None:
            serializer = AvroSerializer(registry, case["schema"], to_dict=lambda v, _: v,
                                        conf={"auto.register.schemas": True, "normalize.schemas": False})
            framed = serializer(raw(schema, expected, names), context)
            producer.produce(args.topic, key=f"{index}-confluent", value=framed)
            if schema == "bytes" or isinstance(schema, dict) and schema.get("type") == "bytes":
                # A bare bytes value goes raw after the header (Confluent's convention, Java too).
                java = framed
            else:
                java = framed[:5] + blocked(schema, raw(schema, expected, names), names, rng)
            producer.produce(args.topic, key=f"{index}-blocked", value=java)
    if producer is not None:
        left = producer.flush(30)
        if left:
            report(-1, f"{left} records not produced")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
