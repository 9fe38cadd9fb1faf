// The shop API: a small express service gated by @waitstate/sdk, used by the
// closed-loop test (e2e/closed-loop.test.ts) and `npm run demo`. Its backend
// is simulated: every request waits `backend.latencyMs` and fails with
// probability `backend.errorRate` (deterministically: exactly that share of
// requests, spread evenly), so a test or the demo can walk the backend
// through health and sickness and watch WaitState shed load.
//
// Requests carry their tier in `x-plan` (free | pro | enterprise) and their
// cost in `x-cost` (the gate weight). Allowed answers say why in
// `x-waitstate-reason` (for instance `lease_expired` in safe mode); denied
// ones are the middleware's 429 with the reason in the JSON body.
import express from "express";
import { WaitState } from "@waitstate/sdk";
import { createMiddleware } from "@waitstate/sdk/express";

/**
 * Starts one instance on 127.0.0.1 with its own WaitState client.
 * @param {import("./api.d.mts").ShopApiOptions} o
 * @returns {Promise<import("./api.d.mts").ShopApi>}
 */
export async function startShopApi(o) {
  const client = new WaitState({
    publishKey: o.publishKey,
    secretKey: o.secretKey,
    baseUrl: o.baseUrl,
    siteId: o.siteId,
    instanceId: o.instanceId,
    safeModeStrategy: o.safeModeStrategy ?? "open",
    ...(o.safeModeMaxRps === undefined ? {} : { safeModeMaxRps: o.safeModeMaxRps }),
    onError: o.onError ?? (() => {}),
  });
  const backend = { latencyMs: o.latencyMs ?? 80, errorRate: o.errorRate ?? 0 };
  const state = { gateCalls: 0, served: 0, errors: 0 };

  const app = express();
  app.disable("x-powered-by");
  // Every request reaching the gate is one gate() call: what the usage ledger must add up to.
  app.use((_req, _res, next) => {
    state.gateCalls++;
    next();
  });
  app.use(createMiddleware({ waitstate: client, tagFrom: "x-plan", weightFrom: "x-cost", retryAfter: 1 }));
  app.get("/api/orders", async (_req, res) => {
    const n = state.served++;
    const latency = backend.latencyMs;
    if (latency > 0) await new Promise((r) => setTimeout(r, latency));
    const fail = Math.floor((n + 1) * backend.errorRate) > Math.floor(n * backend.errorRate);
    res.setHeader("x-waitstate-reason", res.locals.waitstate?.reason ?? "none");
    if (fail) {
      state.errors++;
      res.status(500).json({ error: { code: "BACKEND_FAILED", message: "the simulated backend failed" } });
      return;
    }
    res.json({ instance: o.instanceId, orders: [] });
  });

  const server = await new Promise((resolve, reject) => {
    const s = app.listen(o.port ?? 0, "127.0.0.1", () => resolve(s));
    s.once("error", reject);
  });
  server.keepAliveTimeout = 30_000;
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    instanceId: o.instanceId,
    client,
    backend,
    get gateCalls() {
      return state.gateCalls;
    },
    get errors() {
      return state.errors;
    },
    async close() {
      server.closeAllConnections?.();
      await new Promise((r) => server.close(() => r(undefined)));
      await client.shutdown();
    },
  };
}
