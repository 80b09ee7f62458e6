"""Streams records to Confluent REST Proxy's v3 records API, as Confluent's own streaming example
does (one chunked request, records concatenated, one JSON delivery report per line back), and
prints each report as one JSON line.

Records are written from a thread while reports are read, so the stream is full duplex: a report
can come back before the last record is sent. Record n is the template with every "{n}" in it
replaced by n.

usage: v3_stream.py HOST:PORT PATH COUNT TEMPLATE_JSON
"""

import json
import socket
import sys
import threading


def send(sock, path, host, count, template):
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            "Accept: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    sock.sendall(head.encode())
    for n in range(count):
        record = template.replace("{n}", str(n)).encode()
        sock.sendall(b"%x\r\n%s\r\n" % (len(record), record))
    sock.sendall(b"0\r\n\r\n")


def chunks(reader):
    """The body of a chunked response, chunk by chunk."""
    while True:
        size = int(reader.readline().split(b";")[0].strip(), 16)
        if size == 0:
            reader.readline()
            return
        data = reader.read(size)
        reader.read(2)
        yield data


def main():
    address, path, count, template = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=60)
    writer = threading.Thread(target=send, args=(sock, path, address, count, template), daemon=True)
    writer.start()
    reader = sock.makefile("rb")
    status = reader.readline().decode().strip()
    headers = {}
    while (line := reader.readline().strip()):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    if not status.startswith("HTTP/1.1 200") or headers.get("transfer-encoding") != "chunked":
        sys.exit(f"unexpected answer: {status} {headers}")
    pending = b""
    for data in chunks(reader):
        pending += data
        while b"\r\n" in pending:
            line, pending = pending.split(b"\r\n", 1)
            if line.strip():
                print(json.dumps(json.loads(line)), flush=True)
    writer.join()


if __name__ == "__main__":
    main()
