import { env } from "cloudflare:workers";
import { exports } from "cloudflare:workers";
import { expect } from "vitest";
import { aggregatorName } from "@waitstate/durable-objects";
import { call, createOrg } from "./helpers.js";

export interface Keys {
  publishKey: string;
  secretKey: string;
  orgId: string;
  token: string;
}

/** An org (optionally on a plan) with one SDK key pair. */
export async function orgWithKey(name = "Pulse Co", plan?: string): Promise<Keys> {
  const { org, token } = await createOrg(name, plan);
  const res = await call("POST", "/v1/api-keys", { token, body: { name: "sdk" } });
  expect(res.status, res.text).toBe(201);
  return { publishKey: res.json.publishKey, secretKey: res.json.secretKey, orgId: org.id, token };
}

/** Hex HMAC-SHA256 over `body + "." + timestamp` (docs/protocol.md#signing-a-pulse), computed independently of the Worker's code. */
export async function sign(secretKey: string, body: string, timestamp: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secretKey), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${body}.${timestamp}`)));
  return [...mac].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export function seedPulse(overrides: Record<string, unknown> = {}) {
  return {
    instanceId: "web-01",
    usageDelta: 967,
    bouncedUnits: 47,
    metrics: { latency: 142, errors: 0 },
    tagMetrics: [
      { tag: "free", latency: 0, count: 847 },
      { tag: "pro", latency: 0, count: 120 },
    ],
    ts: Date.now(),
    ...overrides,
  };
}

export interface PulseOptions {
  timestamp?: string;
  signature?: string;
  /** Sign this body but send `body`. */
  signedBody?: string;
  publishKey?: string;
  headers?: Record<string, string>;
}

/** Sends a signed pulse through the Worker; `body` may be an object or raw text. */
export async function sendPulse(keys: Pick<Keys, "publishKey" | "secretKey">, body: unknown, options: PulseOptions = {}) {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  const timestamp = options.timestamp ?? String(Date.now());
  const signature = options.signature ?? (await sign(keys.secretKey, options.signedBody ?? text, timestamp));
  const res = await exports.default.fetch("http://waitstate.test/v1/pulse", {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-waitstate-id": options.publishKey ?? keys.publishKey,
      "x-waitstate-timestamp": timestamp,
      "x-waitstate-signature": signature,
      ...options.headers,
    },
    body: text,
  });
  return { ...(await answer(res)), headers: res.headers };
}

/** Status, text and JSON (undefined when not JSON: the caller's assertion will say so). */
async function answer(res: Response) {
  const text = await res.text();
  let json: Record<string, any> | undefined;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json: json as Record<string, any>, text };
}

export interface ExchangeOptions {
  body?: string;
  timestamp?: string;
  signature?: string;
  publishKey?: string;
  /** Omit the signature headers. */
  unsigned?: boolean;
}

/**
 * `POST /v1/auth/token` signed as docs/protocol.md says: hex HMAC-SHA256 over
 * `"POST\n/v1/auth/token\n" + body + "." + timestamp` (the same primitive as `sign`).
 */
export async function exchangeToken(keys: Pick<Keys, "publishKey" | "secretKey">, options: ExchangeOptions = {}) {
  const body = options.body ?? "";
  const timestamp = options.timestamp ?? String(Date.now());
  const signature = options.signature ?? (await sign(keys.secretKey, `POST\n/v1/auth/token\n${body}`, timestamp));
  const headers: Record<string, string> = options.unsigned
    ? {}
    : { "x-waitstate-id": options.publishKey ?? keys.publishKey, "x-waitstate-timestamp": timestamp, "x-waitstate-signature": signature };
  if (body !== "") headers["content-type"] = "application/json";
  const res = await exports.default.fetch("http://waitstate.test/v1/auth/token", {
    method: "POST",
    headers,
    body: body === "" ? undefined : body,
  });
  return answer(res);
}

/** A JWT for the key pair, through the signed exchange. */
export async function jwtFor(keys: Pick<Keys, "publishKey" | "secretKey">): Promise<string> {
  const res = await exchangeToken(keys);
  expect(res.status, res.text).toBe(200);
  return res.json.token as string;
}

export function stubFor(orgId: string, siteId: string) {
  return env.SITE_AGGREGATOR.get(env.SITE_AGGREGATOR.idFromName(aggregatorName(orgId, siteId)));
}

let ruleSeq = 0;
/** Inserts a reflex rule straight into D1 (the rules API has its own tests). */
export async function insertRule(orgId: string, rule: Record<string, unknown>, siteId: string | null = null): Promise<string> {
  const id = String(rule.id ?? `rule_${++ruleSeq}`);
  await env.DB.prepare(
    `INSERT INTO reflex_rules (id, org_id, site_id, tag_name, metric, metric_tag, operator, threshold, action, action_value, enabled, priority, cooldown_seconds)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  )
    .bind(
      id,
      orgId,
      siteId,
      (rule.tagName as string | null) ?? null,
      rule.metric,
      (rule.metricTag as string | null) ?? null,
      rule.operator,
      rule.threshold,
      rule.action,
      (rule.actionValue as number | null) ?? null,
      rule.enabled === false ? 0 : 1,
      rule.priority,
      (rule.cooldownSeconds as number | undefined) ?? 30,
    )
    .run();
  return id;
}
