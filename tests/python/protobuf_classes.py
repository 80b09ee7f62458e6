"""Message classes from .proto text at run time, for the Protobuf tests.

Python's protobuf runtime has no .proto parser: grpcio-tools' bundled protoc compiles the files
(in process, into a descriptor set), and the classes are built in a private descriptor pool, so
files of the same name in different tests never clash.
"""

import importlib.resources
import os
import tempfile

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_tools import protoc

WELL_KNOWN = str(importlib.resources.files("grpc_tools") / "_proto")


def compile_files(files, main):
    """files: {import path: .proto text}; returns {full message name: class} for `main` and its imports."""
    with tempfile.TemporaryDirectory() as root:
        for name, text in files.items():
            path = os.path.join(root, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
        out = os.path.join(root, "set.pb")
        code = protoc.main(["protoc", f"-I{root}", f"-I{WELL_KNOWN}", f"--descriptor_set_out={out}",
                            "--include_imports", main])
        if code != 0:
            raise RuntimeError(f"protoc could not compile {main}")
        with open(out, "rb") as f:
            descriptors = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    return message_factory.GetMessages(list(descriptors.file), pool=descriptor_pool.DescriptorPool())


def registry_files(client, schema):
    """The .proto texts a registered schema needs, by import path (its references, recursively)."""
    files = {}
    pending = list(schema.references or [])
    while pending:
        reference = pending.pop()
        if reference.name in files:
            continue
        found = client.get_version(reference.subject, reference.version)
        files[reference.name] = found.schema.schema_str
        pending.extend(found.schema.references or [])
    return files


def classes_for_id(client, schema_id):
    """Compiles the schema registered under an id, with its references, from the registry's text."""
    schema = client.get_schema(schema_id)
    files = registry_files(client, schema)
    main = "registered_schema.proto"
    files[main] = schema.schema_str
    return compile_files(files, main)
