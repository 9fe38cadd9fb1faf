// Produces token-exchange.json's expected values with Node's own createHmac: the
// reference for signing the token exchange in every SDK (docs/protocol.md#signing-a-pulse).
// Run: node protocol/vectors/tools/token_exchange_reference.mjs > protocol/vectors/token-exchange.json
import { createHmac } from "node:crypto";

const PREFIX = "POST\n/v1/auth/token\n";
const inputs = [
  { name: "empty body (what the SDKs send)", body: "", timestamp: "1740000060000", secretKey: "ws_sec_live_0123456789abcdef" },
  { name: "empty JSON object", body: "{}", timestamp: "1740000060000", secretKey: "ws_sec_live_0123456789abcdef" },
  { name: "a test key", body: "", timestamp: "1", secretKey: "ws_sec_test_abc" },
  { name: "unicode key", body: "", timestamp: "1740000000001", secretKey: "clé-秘密-🔑" },
];
const cases = inputs.map((c) => ({
  ...c,
  signed: `${PREFIX}${c.body}.${c.timestamp}`,
  expect: createHmac("sha256", c.secretKey).update(`${PREFIX}${c.body}.${c.timestamp}`, "utf8").digest("hex"),
}));
process.stdout.write(`${JSON.stringify({ version: 1, prefix: PREFIX, cases }, null, 2)}\n`);
