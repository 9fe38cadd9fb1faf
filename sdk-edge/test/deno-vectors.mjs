// Runs under Deno (spawned by edge.deno.test.ts): loads @waitstate/edge through its
// `deno` entry — the wasm read from beside the module — and checks the shared gate
// HMAC, histogram and policy vectors, and that init() with no argument is a no-op here.
// Prints one JSON line: {passed, failed, failures}.
// With the argument `--broken`, one policy vector is flipped on purpose: the run must fail.
import { EdgeGate, EdgeHistogram, init, sign_pulse, validatePolicy } from "../dist/sdk-edge/src/deno.js";

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
// The histogram through the wasm ABI: encoding and quantiles (decoding is the control plane's).
const close = (a, b) => (a === null || b === null ? a === b : a === b || Math.abs(a - b) <= 1e-9 * Math.abs(b));
for (const c of read("histogram.json").cases) {
  if (c.kind !== "record" && c.kind !== "merge" && c.kind !== "index") continue;
  const h = new EdgeHistogram();
  const values = c.kind === "index" ? [c.value] : c.kind === "record" ? c.values : [...c.a, ...c.b];
  for (const v of values) h.record(number(v));
  const got = h.encode();
  const ok =
    c.kind === "index"
      ? got.b[0] === c.expectIndex
      : JSON.stringify(got.b) === JSON.stringify(c.expect.b) &&
        got.n === c.expect.n &&
        got.lo === c.expect.lo &&
        got.hi === c.expect.hi &&
        close(got.s, c.expect.s) &&
        c.quantiles.every(([q, want]) => close(h.quantile(q), want));
  if (ok) passed++;
  else failures.push(`histogram ${c.name}: got ${JSON.stringify(got)}`);
}
try {
  await init(); // the deno entry loaded the module: a no-op
  passed++;
} catch (e) {
  failures.push(`init() with no argument threw: ${e}`);
}
const policyCases = read("policy.json").cases;
if (Deno.args.includes("--broken")) policyCases[0] = { ...policyCases[0], valid: !policyCases[0].valid };
for (const c of policyCases) {
  const problem = validatePolicy(c.input);
  const path = problem === null ? null : problem.slice(0, problem.indexOf(": "));
  const ok = c.valid ? problem === null : path === c.path;
  if (ok) passed++;
  else failures.push(`policy ${c.name}: expected ${c.valid ? "valid" : `invalid at ${c.path}`}, got ${problem ?? "valid"}`);
  if (!c.valid && c.input?.killSignal === true) {
    const errors = [];
    const gate = new EdgeGate({ onError: (e) => errors.push(e) });
    const result = gate.update(JSON.stringify(c.input), 1740000000000) && gate.gate("free", 1, 1740000000001);
    if (result?.reason === "kill_signal" && errors.length === 1 && errors[0].code === "INVALID_POLICY") passed++;
    else failures.push(`policy ${c.name}: the kill switch was not honoured (${JSON.stringify(result)})`);
  }
}
console.log(JSON.stringify({ runtime: `deno ${Deno.version.deno}`, passed, failed: failures.length, failures }));
