// Runs under Deno (spawned by edge.deno.test.ts): loads @waitstate/edge through its
// `deno` entry — the wasm read from beside the module — and checks the shared gate
// and HMAC vectors. Prints one JSON line: {passed, failed, failures}.
import { EdgeGate, sign_pulse } from "../dist/deno.js";

const read = (name) => JSON.parse(Deno.readTextFileSync(new URL(`../../protocol/vectors/${name}`, import.meta.url)));
const number = (v) => (v === "NaN" ? NaN : v === "Infinity" ? Infinity : v === "-Infinity" ? -Infinity : v === "-0" ? -0 : v);

let passed = 0;
const failures = [];
for (const c of read("gate.json").cases) {
  const gate = new EdgeGate({ ...c.config, onError: (e) => failures.push(`${c.name}: ${e.message}`) });
  if (c.policy !== null && c.lastSyncAt !== null) gate.update(c.policy, c.lastSyncAt);
  c.calls.forEach((call, i) => {
    const got = gate.gate(call.tag, call.weight === undefined ? undefined : number(call.weight), call.now);
    if (got.allowed === call.expect.allowed && got.reason === call.expect.reason) passed++;
    else failures.push(`${c.name} / call ${i}: expected ${JSON.stringify(call.expect)}, got ${JSON.stringify(got)}`);
  });
}
for (const c of read("hmac.json").cases) {
  if (sign_pulse(c.body, c.timestamp, c.secretKey) === c.expect) passed++;
  else failures.push(`hmac ${c.name}`);
}
console.log(JSON.stringify({ runtime: `deno ${Deno.version.deno}`, passed, failed: failures.length, failures }));
