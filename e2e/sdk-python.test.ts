/**
 * The Python SDK against the real control plane (wrangler dev): a FastAPI app
 * (sdk-python/tests/e2e_fastapi.py, run by Debian's python3) reports the
 * latency of its slow /search through the WaitState response hook; the rule
 * "latency of search > 100 ms → block search" fires on those pulses, and the
 * app answers 429 with Retry-After and the typed body. Skipped, saying why,
 * where Python or the Debian packages are missing (npm test's python suite
 * names the install command).
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildNative, missing, PYTHON, SDK_DIR } from "../scripts/build-python.mjs";
import { startLocalControlPlane, type LocalControlPlane, type Tenant } from "../scripts/local-control-plane.mjs";

const why = missing();
if (why !== null) console.warn(`[e2e] the Python SDK test is skipped: ${why}`);

const SITE = "py-e2e";
let cp: LocalControlPlane;
let tenant: Tenant;

function runPython(script: string, env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [script], { cwd: SDK_DIR, env: { ...process.env, ...env, PYTHONNOUSERSITE: "1" } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

describe.skipIf(why !== null)("the Python SDK against wrangler dev", () => {
  beforeAll(async () => {
    expect(await buildNative()).toBe(0);
    cp = await startLocalControlPlane();
    tenant = await cp.tenant("Python E2E", "enterprise");
  }, 600_000);
  afterAll(async () => {
    await cp?.dispose();
  });

  it("a rule fed by Python-reported latency blocks the tag, and the FastAPI app answers 429", async () => {
    const api = <T>(method: string, pathname: string, body?: unknown) => cp.api<T>(method, pathname, tenant.managementToken, body);
    await api("POST", "/v1/sites", { siteId: SITE, pulseIntervalMs: 1000, leaseDurationSeconds: 60, windowSeconds: 5 });
    await api("POST", "/v1/reflex-rules", {
      tagName: "search",
      metric: "latency",
      operator: "gt",
      threshold: 100,
      action: "block",
      priority: 1,
      cooldownSeconds: 0,
      siteId: SITE,
    });
    const { code, stdout, stderr } = await runPython(path.join(SDK_DIR, "tests", "e2e_fastapi.py"), {
      WAITSTATE_PUBLISH_KEY: tenant.publishKey,
      WAITSTATE_SECRET_KEY: tenant.secretKey,
      WAITSTATE_BASE_URL: cp.url,
      WAITSTATE_SITE_ID: SITE,
    });
    const line = stdout.trim().split("\n").pop() ?? "";
    expect(code, `python exited ${code}\n${stderr}\n${stdout}`).toBe(0);
    const seen = JSON.parse(line);
    expect(seen).toMatchObject({
      synced: true,
      firstStatus: 200,
      status: 429,
      retryAfter: "60",
      otherTagStatus: 200,
      errors: [],
      body: {
        error: {
          code: "RATE_LIMITED",
          reason: "tag_blocked",
          message: "Too many requests: traffic for this tag is blocked by policy (reason: tag_blocked).",
        },
      },
    });
    // the control plane saw the Python instance's latency for the tag
    const status = await api<{ policy: { tagMaxWeights: Record<string, number | null> } }>("GET", `/v1/sites/${SITE}/status`);
    expect(status.policy.tagMaxWeights.search).toBe(0);
  }, 120_000);
});
