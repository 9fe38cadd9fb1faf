// Runs under Deno (spawned by edge.deno.test.ts with the URL of a scripted control
// plane, ./fake-control-plane.ts, and --allow-net for it only): EdgeGate.sendPulse
// through the `deno` entry, over Deno's fetch. Prints one JSON line.
import { EdgeGate } from "../dist/sdk-edge/src/deno.js";

const url = Deno.args[0];
const errors = [];
const gate = new EdgeGate({ onError: (e) => errors.push({ code: e.code, message: e.message }) });
let calls = 0;
const results = [];
for (let round = 0; round < 5; round++) {
  for (let i = 0; i < 3 + round; i++, calls++) gate.gate(i % 2 ? "free" : "x".repeat(200));
  const started = Date.now();
  results.push({
    ok: await gate.sendPulse(url, { instanceId: "edge-deno", publishKey: "pk_fake", secretKey: "sk_fake", timeoutMs: 300 }),
    ms: Date.now() - started,
  });
}
console.log(JSON.stringify({ runtime: `deno ${Deno.version.deno}`, calls, results, errors, pending: gate.pendingPulses, etag: gate.etag }));
