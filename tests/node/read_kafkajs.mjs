// Reads a topic Sluice wrote with kafkajs and @kafkajs/confluent-schema-registry, as a Node.js
// service would, and prints each record as one JSON line: {partition, offset, key, value, headers}.
// kafkajs has no zstd codec of its own (Sluice's default compression); it is registered here
// with zstd-codec's Streaming API (frames written by librdkafka do not always carry their
// content size, which zstd-codec's Simple API needs).
//
// usage: node read_kafkajs.mjs BOOTSTRAP TOPIC REGISTRY_URL COUNT

import kafkajs from "kafkajs";
import registryPackage from "@kafkajs/confluent-schema-registry";
import zstdCodec from "zstd-codec";

const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = kafkajs;
const { SchemaRegistry } = registryPackage;
const [bootstrap, topic, registryUrl, countText] = process.argv.slice(2);
const count = Number(countText);

const zstd = await new Promise((resolve) => zstdCodec.ZstdCodec.run(resolve));
const streaming = new zstd.Streaming();
CompressionCodecs[CompressionTypes.ZSTD] = () => ({
  async compress(encoder) {
    return Buffer.from(streaming.compress(encoder.buffer));
  },
  async decompress(buffer) {
    return Buffer.from(streaming.decompress(buffer));
  },
});

const registry = new SchemaRegistry({ host: registryUrl });
const kafka = new Kafka({ brokers: [bootstrap], clientId: "kafkajs-reader", logLevel: logLevel.NOTHING });
const consumer = kafka.consumer({ groupId: `kafkajs-reader-${Date.now()}` });
await consumer.connect();
await consumer.subscribe({ topic, fromBeginning: true });
let seen = 0;
const timeout = setTimeout(() => {
  console.error(`read ${seen} of ${count} records from ${topic}`);
  process.exit(1);
}, 60_000);
await new Promise((resolve, reject) => {
  consumer
    .run({
      eachMessage: async ({ partition, message }) => {
        const value = message.value === null ? null : await registry.decode(message.value);
        const headers = Object.fromEntries(
          Object.entries(message.headers ?? {}).map(([name, v]) => [name, v?.toString()]),
        );
        const key = message.key === null ? null : message.key.toString();
        console.log(JSON.stringify({ partition, offset: Number(message.offset), key, value, headers }));
        seen += 1;
        if (seen >= count) resolve();
      },
    })
    .catch(reject);
});
clearTimeout(timeout);
await consumer.disconnect();
