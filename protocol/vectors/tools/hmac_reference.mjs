// Produces hmac.json's expected values with Node's own createHmac: the reference
// every implementation of pulse signing (TypeScript, Rust, wasm) must match.
// Run: node protocol/vectors/tools/hmac_reference.mjs > protocol/vectors/hmac.json
import { createHmac } from "node:crypto";

const pulse = JSON.stringify({
  instanceId: "web-01",
  siteId: "site-prod",
  usageDelta: 967,
  bouncedUnits: 47,
  metrics: { latency: 142, errors: 0 },
  tagMetrics: [
    { tag: "free", latency: 0, count: 847 },
    { tag: "pro", latency: 0, count: 120 },
  ],
  ts: 1740000060000,
});
const inputs = [
  { name: "documented pulse", body: pulse, timestamp: "1740000060000", secretKey: "ws_sec_test_0123456789abcdef" },
  { name: "empty body", body: "", timestamp: "0", secretKey: "k" },
  { name: "empty key", body: "{}", timestamp: "1740000000000", secretKey: "" },
  { name: "unicode body and key", body: '{"tag":"café-日本-🚀"}', timestamp: "1740000000001", secretKey: "clé-秘密-🔑" },
  { name: "key longer than the SHA-256 block (64 bytes)", body: '{"a":1}', timestamp: "1", secretKey: "x".repeat(100) },
  { name: "key exactly one block", body: '{"a":1}', timestamp: "2", secretKey: "y".repeat(64) },
  {
    name: "body spanning several blocks",
    body: JSON.stringify({ pad: "z".repeat(1000) }),
    timestamp: "1740000099999",
    secretKey: "ws_sec_long",
  },
  {
    name: "body of 55 bytes with separator and timestamp (padding edge)",
    body: "a".repeat(41),
    timestamp: "1234567890123",
    secretKey: "edge",
  },
];
const cases = inputs.map((c) => ({
  ...c,
  expect: createHmac("sha256", c.secretKey).update(`${c.body}.${c.timestamp}`, "utf8").digest("hex"),
}));
process.stdout.write(`${JSON.stringify({ version: 1, cases }, null, 2)}\n`);
