"""Reads a whole topic as a `read_committed` consumer with Confluent's Python client and prints
each record's value (UTF-8 text) as one line. The independent reader of Sluice's exactly-once
tests: it stops at each partition's end (its last stable offset) and never sees a record of an
aborted or still open transaction.

usage: read_committed.py BOOTSTRAP TOPIC [TIMEOUT_SECONDS]
"""

import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition


def main():
    bootstrap, topic = sys.argv[1], sys.argv[2]
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"read-committed-{time.time()}",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "enable.partition.eof": True,
    })
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    open_partitions = set(partitions)
    deadline = time.time() + timeout
    while open_partitions and time.time() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF:
                open_partitions.discard(message.partition())
            else:
                print(f"consumer error: {message.error()}", file=sys.stderr)
            continue
        print(message.value().decode("utf-8", "replace"), flush=True)
    consumer.close()
    if open_partitions:
        print(f"partitions {sorted(open_partitions)} not read to their end in time", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
