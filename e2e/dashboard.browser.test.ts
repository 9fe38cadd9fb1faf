/**
 * The dashboard in a real browser: Debian's headless Chromium (playwright-core)
 * against `wrangler dev`, with two real Node SDK instances sending pulses.
 * Log in, create a site and a rule through the forms, see the rule fire when
 * the SDKs' latency breaches it, flip the kill switch through its confirmation
 * and watch the SDKs obey, rotate a key and see the new secret exactly once,
 * the audit log, and every main page at phone width (390 px) without
 * horizontal scrolling. WRITE_SCREENSHOTS=1 also writes docs/screenshots/*.png
 * (and waits for a few minutes of charts first).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { WaitState, createTokenExchangeHeaders, type GateResult } from "../sdk-node/src/index.js";
import { startLocalControlPlane, type LocalControlPlane, type Tenant } from "../scripts/local-control-plane.mjs";
import { WRITE_SCREENSHOTS, horizontalOverflow, launchChromium, screenshot } from "./support/browser.js";
import { until } from "./support/wait.js";

const SITE = "shop";

let cp: LocalControlPlane;
let tenant: Tenant;
let browser: Browser;
let traffic: Traffic | null = null;

/** Two SDK instances on the site, gating free/pro/enterprise calls every 20 ms and reporting their latency. */
interface Traffic {
  /** When true, pro's calls take ~900 ms (the breach). */
  slow: boolean;
  last: Record<string, GateResult>;
  stop(): Promise<void>;
}

function startTraffic(): Traffic {
  const clients = ["web-1", "web-2"].map(
    (instanceId) =>
      new WaitState({ publishKey: tenant.publishKey, secretKey: tenant.secretKey, baseUrl: cp.url, siteId: SITE, instanceId }),
  );
  const tiers: Array<[string, number, number]> = [
    ["free", 1, 140],
    ["pro", 2, 90],
    ["enterprise", 5, 60],
  ];
  const t: Traffic = {
    slow: false,
    last: {},
    async stop() {
      clearInterval(timer);
      await Promise.all(clients.map((c) => c.shutdown()));
    },
  };
  const timer = setInterval(() => {
    for (const ws of clients) {
      for (const [tag, weight, typicalMs] of tiers) {
        const decision = ws.gate(tag, weight);
        t.last[tag] = decision;
        if (!decision.allowed) continue;
        const ms = tag === "pro" && t.slow ? 850 + Math.random() * 150 : typicalMs * (0.6 + Math.random() * 0.8);
        ws.reportLatency(ms, tag);
        if (Math.random() < 0.01) ws.reportError(tag);
      }
    }
  }, 20);
  return t;
}

/** Rolled-up minutes of the site with traffic (WRITE_SCREENSHOTS waits for a few, so the charts have lines). */
async function rolledUpMinutes(): Promise<number> {
  const { rollups } = await cp.api<{ rollups: Array<{ tag: string }> }>(
    "GET",
    `/v1/telemetry?siteId=${SITE}&tag=__site__`,
    tenant.managementToken,
  );
  return rollups.length;
}

async function logIn(context: BrowserContext): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${cp.url}/dashboard/login`);
  await page.fill("#f-token", tenant.managementToken);
  await Promise.all([page.waitForURL(/\/dashboard\/sites$/), page.click("button:has-text('Log in')")]);
  return page;
}

beforeAll(async () => {
  [cp, browser] = await Promise.all([startLocalControlPlane(), launchChromium()]);
  tenant = await cp.tenant("Acme Shop", "enterprise");
}, 120_000);

afterAll(async () => {
  await traffic?.stop();
  await browser?.close();
  await cp?.dispose();
});

describe("dashboard in Chromium against wrangler dev", () => {
  it(
    "logs in, creates a rule that fires on real pulses, flips the kill switch, rotates a key",
    async () => {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      const page = await context.newPage();

      // ---------------------------------------------------------------- log in
      await page.goto(`${cp.url}/dashboard`);
      expect(new URL(page.url()).pathname).toBe("/dashboard/login");
      await screenshot(page, "login", { fullPage: false });
      await page.fill("#f-token", "ws_mgmt_this-is-not-a-token");
      await page.click("button:has-text('Log in')");
      await expect.poll(() => page.textContent("[data-field-error='token']")).toBe("That token is unknown or revoked.");
      expect((await context.cookies()).some((c) => c.name === "ws_session")).toBe(false);

      await page.fill("#f-token", tenant.managementToken);
      await Promise.all([page.waitForURL(/\/dashboard\/sites$/), page.click("button:has-text('Log in')")]);
      const session = (await context.cookies()).find((c) => c.name === "ws_session");
      expect(session).toMatchObject({ httpOnly: true, sameSite: "Strict", path: "/dashboard" });
      expect(await page.evaluate(() => document.cookie)).not.toContain("ws_session");
      // the empty state says how to send a first pulse, with this org's publish key
      expect(await page.textContent("main")).toContain("Send your first pulse");
      expect(await page.textContent("main")).toContain(tenant.publishKey);

      // ---------------------------------------------------------------- a site with a short window, then real traffic
      await page.fill("#f-siteId", SITE);
      await page.fill("#f-windowSeconds", "5");
      await Promise.all([
        page.waitForURL(new RegExp(`/dashboard/sites/${SITE}\\?done=site.created$`)),
        page.click("button:has-text('Create site')"),
      ]);
      traffic = startTraffic();
      await until(
        async () =>
          (await cp.api<{ window: { instances: number } }>("GET", `/v1/sites/${SITE}/status`, tenant.managementToken)).window.instances ===
          2,
        20_000,
        "two instances live",
      );
      if (WRITE_SCREENSHOTS) await until(async () => (await rolledUpMinutes()) >= 2, 200_000, "two minutes of rollups", 2000);

      // ---------------------------------------------------------------- a rule, with a validation message first
      await page.goto(`${cp.url}/dashboard/rules`);
      expect(await page.textContent("main")).toContain("No rules yet.");
      await page.fill("#f-metric", "p95_latency");
      await page.fill("#f-metricTag", "pro");
      await page.selectOption("#f-operator", "gt");
      await page.fill("#f-threshold", "500");
      await page.selectOption("#f-action", "throttle"); // without its value: refused
      await page.fill("#f-tagName", "free");
      await page.fill("#f-siteId", SITE);
      await page.fill("#f-priority", "1");
      await page.click("button:has-text('Create rule')");
      await expect.poll(() => page.textContent("[data-field-error='actionValue']")).toContain("throttle rules need an actionValue");
      expect(await page.inputValue("#f-metricTag")).toBe("pro"); // what was typed is kept
      await page.selectOption("#f-action", "block");
      await Promise.all([page.waitForURL(/done=rule.created/), page.click("button:has-text('Create rule')")]);
      const [rule] = (await cp.api<{ reflexRules: Array<{ id: string }> }>("GET", "/v1/reflex-rules", tenant.managementToken)).reflexRules;
      expect(rule).toBeDefined();
      expect(await page.textContent(`[data-rule='${rule!.id}']`)).toContain("p95_latency of pro > 500");
      await screenshot(page, "rules");

      // ---------------------------------------------------------------- the breach: pro slows down, free is shed
      // The page is open before the breach and is never reloaded: the fire arrives over its live stream.
      await page.goto(`${cp.url}/dashboard/sites/${SITE}`);
      await expect.poll(() => page.getAttribute("#live-state", "data-state"), { timeout: 20_000 }).toBe("live");
      expect(await page.textContent(`[data-rule-states] [data-rule='${rule!.id}']`)).not.toContain("fired");
      await page.evaluate(() => {
        (window as unknown as { notReloaded: boolean }).notReloaded = true;
      });
      traffic.slow = true;
      await until(
        async () => ((await page.textContent(`[data-rule-states] [data-rule='${rule!.id}']`)) ?? "").includes("fired · applied"),
        20_000,
        "the rule fired on the site page",
        250,
      );
      expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
      const freeRow = (await page.textContent("[data-policy-tag='free']")) ?? "";
      expect(freeRow).toContain("0 · blocked");
      expect(freeRow).toContain(`${rule!.id} (priority 1): p95_latency of pro > 500 → block free`);
      expect(await page.textContent("[data-policy-tag='enterprise']")).toContain("unlimited");
      expect(await page.textContent("[data-events]")).toContain(rule!.id);
      await until(() => traffic!.last.free?.reason === "tag_blocked", 10_000, "the SDKs blocking free");
      if (WRITE_SCREENSHOTS) {
        const before = await rolledUpMinutes();
        await until(async () => (await rolledUpMinutes()) >= before + 2, 200_000, "rollups of the breach", 2000);
        await page.reload();
      }
      await screenshot(page, "site");
      if (WRITE_SCREENSHOTS) {
        const phone = await browser.newContext({
          viewport: { width: 390, height: 844 },
          deviceScaleFactor: 2,
          isMobile: true,
          hasTouch: true,
        });
        await phone.addCookies(await context.cookies());
        const phonePage = await phone.newPage();
        await phonePage.goto(`${cp.url}/dashboard/sites/${SITE}`);
        await screenshot(phonePage, "phone", { fullPage: false });
        await phone.close();
      }

      // ---------------------------------------------------------------- the sites list
      await page.goto(`${cp.url}/dashboard/sites`);
      expect(await page.textContent(`[data-site='${SITE}']`)).toContain("1 rule applied");
      await screenshot(page, "sites");

      // ---------------------------------------------------------------- kill switch, through its confirmation
      await page.goto(`${cp.url}/dashboard/sites/${SITE}`);
      await Promise.all([page.waitForURL(/\/kill\?on=1$/), page.click("[data-action='kill']")]);
      expect(await page.textContent("h1")).toBe(`Turn the kill switch ON for ${SITE}?`);
      await page.fill("#f-confirm", `${SITE}-typo`); // not the site id: refused
      await page.click("button:has-text('Deny all traffic')");
      await expect.poll(() => page.textContent("[data-field-error='confirm']")).toContain(`Type “${SITE}” exactly`);
      expect((await cp.api<{ killSwitch: boolean }>("GET", `/v1/sites/${SITE}`, tenant.managementToken)).killSwitch).toBe(false);
      await page.fill("#f-confirm", SITE);
      await Promise.all([page.waitForURL(/done=kill.on$/), page.click("button:has-text('Deny all traffic')")]);
      expect(await page.textContent("#kill")).toContain("ON");
      expect(await page.textContent("main")).toContain("Kill switch ON: every gate() of this site denies with kill_signal");
      await until(
        () => traffic!.last.enterprise?.reason === "kill_signal" && traffic!.last.pro?.reason === "kill_signal",
        10_000,
        "the SDKs obeying the kill switch",
      );

      await Promise.all([page.waitForURL(/\/kill\?on=0$/), page.click("[data-action='kill']")]);
      await Promise.all([page.waitForURL(/done=kill.off$/), page.click("button:has-text('Turn kill switch off')")]);
      expect(await page.textContent("#kill")).toContain("off");
      await until(() => traffic!.last.enterprise?.allowed === true, 10_000, "traffic allowed again");
      await traffic.stop();
      traffic = null;

      // ---------------------------------------------------------------- rotate the SDK key: the new secret once
      const keyId = (tenant.key as { id: string }).id;
      await page.goto(`${cp.url}/dashboard/keys`);
      await Promise.all([page.waitForURL(/\/rotate$/), page.click(`[data-key='${keyId}'] [data-action='rotate']`)]);
      await page.click("button:has-text('Rotate key')");
      const secret = ((await page.textContent("[data-secret]")) ?? "").trim();
      expect(secret).toMatch(/^ws_sec_/);
      expect(await page.textContent("[data-new-secret]")).toContain("will not be shown again");
      const newPublishKey = ((await page.textContent("[data-new-secret] dd code")) ?? "").trim();
      // the pair works, the old one does not
      const exchange = (publishKey: string, secretKey: string) =>
        fetch(`${cp.url}/v1/auth/token`, { method: "POST", headers: createTokenExchangeHeaders(publishKey, secretKey) });
      expect((await exchange(newPublishKey, secret)).status).toBe(200);
      expect((await exchange(tenant.publishKey, tenant.secretKey)).status).toBe(401);
      await screenshot(page, "keys");
      await page.goto(`${cp.url}/dashboard/keys`);
      expect(await page.locator("[data-secret]").count()).toBe(0);
      expect(await page.content()).not.toContain(secret);

      // ---------------------------------------------------------------- the audit log names the session
      await page.goto(`${cp.url}/dashboard/audit`);
      const audit = (await page.textContent("[data-audit]")) ?? "";
      for (const kind of ["session.login", "site.created", "rule.created", "kill.on", "kill.off", "key.rotated"])
        expect(audit).toContain(kind);
      expect(await page.textContent("[data-audit-kind='kill.on']")).toContain("session");
      await screenshot(page, "audit");

      await context.close();
    },
    WRITE_SCREENSHOTS ? 600_000 : 75_000,
  );

  it("every main page fits a 390 px wide phone without horizontal scrolling", async () => {
    const context = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    const page = await logIn(context);
    const keyId = (tenant.key as { id: string }).id;
    for (const path of [
      "/dashboard/sites",
      `/dashboard/sites/${SITE}`,
      "/dashboard/rules",
      "/dashboard/tags",
      "/dashboard/keys",
      "/dashboard/usage",
      "/dashboard/audit",
      "/dashboard/webhooks",
      `/dashboard/sites/${SITE}/kill?on=1`,
      `/dashboard/keys/${keyId}/revoke`,
    ]) {
      await page.goto(`${cp.url}${path}`);
      expect(await page.locator("main h1").count(), path).toBe(1);
      expect(await horizontalOverflow(page), path).toBeLessThanOrEqual(0);
    }
    await context.close();
    const anonymous = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
    const login = await anonymous.newPage();
    await login.goto(`${cp.url}/dashboard/login`);
    expect(await horizontalOverflow(login)).toBeLessThanOrEqual(0);
    await anonymous.close();
  }, 30_000);
});
