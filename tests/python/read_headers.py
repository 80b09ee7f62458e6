"""Reads a topic with Confluent's Python consumer and prints each record's key and headers as
one JSON line: {"key", "headers": {name: value}}. The independent reader of the dead-letter
headers in Sluice's tests.

usage: read_headers.py BOOTSTRAP TOPIC COUNT [TIMEOUT_SECONDS]
"""

import json
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition


def main():
    bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 30.0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-headers-{time.time()}",
                         "enable.auto.commit": False})
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = metadata.topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    deadline = time.time() + timeout
    seen = 0
    while seen < count and time.time() < deadline:
        message = consumer.poll(1.0)
        if message is None or message.error():
            continue
        headers = {k: (v.decode("utf-8", "replace") if v is not None else None) for k, v in (message.headers() or [])}
        key = message.key().decode("utf-8", "replace") if message.key() else None
        print(json.dumps({"key": key, "headers": headers}), flush=True)
        seen += 1
    consumer.close()
    sys.exit(0 if seen >= count else 1)


if __name__ == "__main__":
    main()
