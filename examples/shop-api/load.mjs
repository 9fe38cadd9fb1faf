// Open-loop load for the shop API: each (instance, tier, cost) stream sends at
// a fixed rate whether or not earlier requests have answered, as real users
// do. Every answer is recorded with the tier, the cost, the status and the
// gate's reason, so callers can say what the API actually did.
import http from "node:http";

/**
 * @param {import("./load.d.mts").LoadOptions} o
 * @returns {import("./load.d.mts").Load}
 */
export function startLoad(o) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 });
  /** @type {import("./load.d.mts").LoadRecord[]} */
  const records = [];
  const streams = [];
  const start = Date.now();
  for (let target = 0; target < o.targets.length; target++) {
    for (const m of o.mix) {
      const every = 1000 / m.rps;
      streams.push({ target, tier: m.tier, cost: m.cost, every, next: start + Math.random() * every });
    }
  }
  let inFlight = 0;
  let stopped = false;
  let drained = () => {};

  function send(s, sentAt) {
    inFlight++;
    const url = new URL("/api/orders", o.targets[s.target]);
    const req = http.request(url, { agent, headers: { "x-plan": s.tier, "x-cost": String(s.cost) } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => {
        let reason = res.headers["x-waitstate-reason"];
        if (res.statusCode === 429) {
          try {
            reason = JSON.parse(body).error.reason;
          } catch {
            reason = "unparsable_429";
          }
        }
        finish({
          target: s.target,
          tier: s.tier,
          cost: s.cost,
          sentAt,
          doneAt: Date.now(),
          status: res.statusCode ?? 0,
          reason: String(reason ?? "none"),
        });
      });
    });
    req.on("error", (e) =>
      finish({ target: s.target, tier: s.tier, cost: s.cost, sentAt, doneAt: Date.now(), status: 0, reason: e.code ?? "network_error" }),
    );
    req.end();
  }

  function finish(record) {
    records.push(record);
    o.onRecord?.(record);
    if (--inFlight === 0 && stopped) drained();
  }

  const timer = setInterval(() => {
    const now = Date.now();
    for (const s of streams) {
      while (s.next <= now) {
        send(s, now);
        s.next += s.every;
      }
    }
  }, 5);

  return {
    records,
    get inFlight() {
      return inFlight;
    },
    async stop() {
      clearInterval(timer);
      stopped = true;
      if (inFlight > 0) await new Promise((r) => (drained = r));
      agent.destroy();
    },
  };
}

/**
 * What each tier got among requests sent in [from, to): per tier and cost,
 * how many were allowed (2xx or a backend 500: the gate let them through),
 * denied (429), and the reasons seen.
 * @param {import("./load.d.mts").LoadRecord[]} records
 * @param {number} from
 * @param {number} [to]
 */
export function summarize(records, from, to = Infinity) {
  /** @type {Record<string, import("./load.d.mts").TierSummary>} */
  const out = {};
  for (const r of records) {
    if (r.sentAt < from || r.sentAt >= to) continue;
    const key = `${r.tier}:${r.cost}`;
    const s = (out[key] ??= { tier: r.tier, cost: r.cost, sent: 0, allowed: 0, denied: 0, failed: 0, reasons: {} });
    s.sent++;
    if (r.status === 429) s.denied++;
    else if (r.status >= 200 && r.status < 600) s.allowed++;
    else s.failed++;
    if (r.status >= 500) s.failed++;
    s.reasons[r.reason] = (s.reasons[r.reason] ?? 0) + 1;
  }
  return out;
}
