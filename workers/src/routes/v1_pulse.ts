import type { Hono } from "hono";
import { MAX_PULSE_BODY_BYTES, MAX_TIMESTAMP_SKEW_MS, PULSE_ANSWER_HEADERS, PULSE_HEADERS, PulseSchema } from "@waitstate/protocol";
import { ApiError } from "../errors.js";
import { validate } from "../lib/body.js";
import { aggregator } from "../lib/aggregators.js";
import { pulseKey } from "../lib/keys.js";
import { readCapped } from "../lib/stream.js";
import type { AppEnv } from "../env.js";

const HEX_SIGNATURE = /^[0-9a-f]{64}$/i;
const EPOCH_MS = /^\d{1,16}$/;
const encoder = new TextEncoder();

function hexToBytes(hex: string): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * `POST /v1/pulse` (DESIGN.md, "Pulses and auth"): the body is refused past
 * 64 KiB while it streams in; the timestamp must be within 5 minutes; the
 * signature is HMAC-SHA256 over `body + "." + timestamp`, checked by Web
 * Crypto's constant-time verify before the body is parsed; then the schema.
 * The SiteAggregator for `orgId:siteId` merges it and answers with the policy.
 */
export function registerPulse(app: Hono<AppEnv>) {
  app.post("/v1/pulse", async (c) => {
    const now = Date.now();
    const publishKey = c.req.header(PULSE_HEADERS.publishKey);
    const timestamp = c.req.header(PULSE_HEADERS.timestamp);
    const signature = c.req.header(PULSE_HEADERS.signature);
    if (!publishKey || !timestamp || !signature) {
      throw new ApiError("UNAUTHORIZED", `Sign the pulse: send ${PULSE_HEADERS.publishKey}, ${PULSE_HEADERS.timestamp} and ${PULSE_HEADERS.signature}`);
    }
    if (!EPOCH_MS.test(timestamp)) throw new ApiError("TIMESTAMP_SKEW", `${PULSE_HEADERS.timestamp} must be epoch milliseconds`);
    if (Math.abs(now - Number(timestamp)) > MAX_TIMESTAMP_SKEW_MS) {
      throw new ApiError("TIMESTAMP_SKEW", "The pulse timestamp is more than 5 minutes from the control plane's clock; check the instance's clock");
    }
    if (!HEX_SIGNATURE.test(signature)) throw new ApiError("INVALID_SIGNATURE", `${PULSE_HEADERS.signature} must be 64 hex characters (HMAC-SHA256)`);
    const body = await readCapped(c.req.raw, MAX_PULSE_BODY_BYTES);
    const key = await pulseKey(c.env, publishKey, now);

    const suffix = encoder.encode(`.${timestamp}`);
    const signed = new Uint8Array(body.byteLength + suffix.byteLength);
    signed.set(body);
    signed.set(suffix, body.byteLength);
    if (!(await crypto.subtle.verify("HMAC", key.hmac, hexToBytes(signature), signed))) {
      throw new ApiError("INVALID_SIGNATURE", "The signature does not match the body and timestamp for this key");
    }

    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(body));
    } catch {
      throw new ApiError("INVALID_JSON", "The pulse body is not valid UTF-8 JSON");
    }
    const pulse = validate(PulseSchema, json);
    // The body's ts is the instance's clock, signed with the body: it may lag the header (an SDK re-sends an
    // unanswered pulse unchanged, however long the outage) but not lead it, or one pulse could claim the future
    // and make the instance's next pulses look like re-sends.
    if (pulse.ts > Number(timestamp) + MAX_TIMESTAMP_SKEW_MS) {
      throw new ApiError(
        "PULSE_TS_SKEW",
        `ts is ${pulse.ts - Number(timestamp)} ms ahead of ${PULSE_HEADERS.timestamp}; a pulse's ts may lead its signed timestamp by at most ${MAX_TIMESTAMP_SKEW_MS / 60_000} minutes`,
      );
    }
    const siteId = pulse.siteId ?? key.orgId;

    const result = await aggregator(c.env, key.orgId, siteId).ingest({ orgId: key.orgId, siteId, pulse: JSON.stringify(pulse), receivedAt: now });
    if (!result.ok) throw new ApiError(result.code, result.message);
    c.header("etag", result.etag);
    c.header(PULSE_ANSWER_HEADERS.counted, result.counted ? "true" : "false");
    if (result.duplicate) c.header(PULSE_ANSWER_HEADERS.duplicateInstance, "true");
    return c.json(result.policy);
  });
}
