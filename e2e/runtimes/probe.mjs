// The edge client as a user of Node, Deno or Bun runs it: `import { WaitState } from "@waitstate/edge"`
// (each runtime picks its own entry through the package's export conditions), against the real
// control plane whose URL and keys arrive as arguments. Spawned by runtimes.test.ts; prints one
// JSON line: whether the first sync brought a policy, what a tag blocked by a live rule got, and
// the client's status once every counted call was acknowledged.
import { WaitState } from "@waitstate/edge";

const args = typeof Deno !== "undefined" ? Deno.args : process.argv.slice(2);
const [baseUrl, publishKey, secretKey, siteId, runtime] = args;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const errors = [];
const ws = new WaitState({ publishKey, secretKey, baseUrl, siteId, instanceId: `probe-${runtime}`, onError: (e) => errors.push(e.code) });

const ready = await ws.ready(15_000);
// The org-wide rule blocking `blocked` is in the first policy already; sync until it is, in case the rule came later.
let gateCalls = 1;
let blocked = ws.gate("blocked");
for (let i = 0; i < 60 && blocked.allowed; i++, gateCalls++) {
  await sleep(250);
  await ws.sync();
  blocked = ws.gate("blocked");
}

// Traffic of this runtime's own tag: calls, latencies (a histogram per tag), an error, a custom metric.
const tag = `rt-${runtime}`;
const CALLS = 7;
let allowed = 0;
for (let i = 0; i < CALLS; i++) {
  gateCalls++;
  if (ws.gate(tag).allowed) allowed++;
  ws.reportLatency(40 + i * 10, tag);
}
ws.reportError(tag);
ws.report("queue_depth", 3, tag);

// Until a pulse sent after those calls is acknowledged: sync() does only what is due, as in a
// request loop. A pulse falls due every pulseInterval (1 s here): syncing for 2.5 s sends one.
const after = Date.now();
for (let i = 0; i < 80; i++) {
  await sleep(250);
  await ws.sync();
  if (Date.now() - after > 2500 && ws.status().pendingPulses === 0) break;
}
const version =
  typeof Deno !== "undefined"
    ? `deno ${Deno.version.deno}`
    : typeof Bun !== "undefined"
      ? `bun ${Bun.version}`
      : `node ${process.versions.node}`;
console.log(JSON.stringify({ runtime: version, ready, blocked, gateCalls, allowed, status: ws.status(), errors }));
