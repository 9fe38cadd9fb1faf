// A Fastly Compute app gated by @waitstate/edge/fastly. Its top level runs at
// build time (Wizer, inside Fastly's runtime): it syncs once with an
// in-process stand-in for the control plane, whose policy blocks the tag
// "free", and logs what the gate then decides. bench/fastly-build.mjs builds
// it and checks those lines.
import { WaitState } from "@waitstate/edge/fastly";

const SECRET = "sk_fastly_build";
const signatures = [];
// An answer as the client reads it (status, headers.get/has, text()): at build time
// Wizer forbids host calls, which `new Response()` makes.
const answer = (body, headers = {}) => ({
  status: 200,
  headers: { get: (name) => headers[name.toLowerCase()] ?? null, has: (name) => name.toLowerCase() in headers },
  text: async () => JSON.stringify(body),
});
// The control plane's two answers of a first sync: the key exchange, and the pulse answer carrying the policy.
globalThis.fetch = async (url, init) => {
  signatures.push(`${init.headers["x-waitstate-timestamp"]} ${init.headers["x-waitstate-signature"]} ${init.body ?? ""}`);
  if (String(url).endsWith("/v1/auth/token")) {
    return answer({ token: "jwt_build", expiresAt: Date.now() + 3_600_000, orgId: "org_build" });
  }
  const policy = {
    version: 7,
    globalMaxWeight: null,
    tagMaxWeights: { free: 0 },
    killSignal: false,
    status: "ok",
    pulseInterval: 5000,
    leaseDurationSeconds: 60,
    issuedAt: Date.now(),
  };
  return answer(policy, { "content-type": "application/json", etag: '"7"', "x-waitstate-counted": "true" });
};

const errors = [];
const ws = new WaitState({
  publishKey: "pk_fastly_build",
  secretKey: SECRET,
  baseUrl: "https://control-plane.invalid",
  instanceId: "fastly-build",
  onError: (e) => errors.push(`${e.code}: ${e.message}`),
});
const before = ws.gate("free");
ws.reportLatency(12.5, "free");
await ws.sync();
const after = ws.gate("free");
const other = ws.gate("pro", 3);
console.log(`WAITSTATE-FASTLY typeofWebAssembly=${typeof WebAssembly}`);
console.log(`WAITSTATE-FASTLY before=${JSON.stringify(before)} after=${JSON.stringify(after)} other=${JSON.stringify(other)}`);
console.log(`WAITSTATE-FASTLY policyVersion=${ws.policy?.version ?? null} errors=${JSON.stringify(errors)}`);
for (const s of signatures) console.log(`WAITSTATE-FASTLY signed ${JSON.stringify(s)}`);

addEventListener("fetch", (event) => {
  const tag = new URL(event.request.url).searchParams.get("tier") ?? "free";
  const { allowed, reason } = ws.gate(tag);
  event.respondWith(allowed ? new Response("ok\n") : Response.json({ error: { code: "RATE_LIMITED", message: reason } }, { status: 429 }));
});
