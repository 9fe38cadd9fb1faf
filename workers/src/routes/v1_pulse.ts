import type { Hono } from "hono";
import { MAX_PULSE_BODY_BYTES, MAX_TIMESTAMP_SKEW_MS, PULSE_ANSWER_HEADERS, PULSE_HEADERS, PulseSchema } from "@waitstate/protocol";
import { ApiError } from "../errors.js";
import { validate } from "../lib/body.js";
import { aggregator } from "../lib/aggregators.js";
import { openTo } from "../middleware/access.js";
import { siteFor } from "../lib/keys.js";
import { verifySigned } from "../lib/signed.js";
import type { AppEnv } from "../env.js";

/**
 * `POST /v1/pulse` (docs/protocol.md#what-the-control-plane-checks): the body is refused past
 * 64 KiB while it streams in; the timestamp must be within 5 minutes; the
 * signature is HMAC-SHA256 over `body + "." + timestamp`, checked before the
 * body is parsed; then the schema. A site-scoped key pulses its own site only
 * (its site is the default). The SiteAggregator for `orgId:siteId` merges it
 * and answers with the policy.
 */
export function registerPulse(app: Hono<AppEnv>) {
  app.post("/v1/pulse", openTo("sdk-key"), async (c) => {
    const { key, body, now, timestamp } = await verifySigned(c, { what: "pulse", maxBytes: MAX_PULSE_BODY_BYTES, prefix: "" });
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
    if (pulse.ts > timestamp + MAX_TIMESTAMP_SKEW_MS) {
      throw new ApiError(
        "PULSE_TS_SKEW",
        `ts is ${pulse.ts - timestamp} ms ahead of ${PULSE_HEADERS.timestamp}; a pulse's ts may lead its signed timestamp by at most ${MAX_TIMESTAMP_SKEW_MS / 60_000} minutes`,
      );
    }
    const siteId = siteFor(key, pulse.siteId);

    const result = await aggregator(c.env, key.orgId, siteId).ingest({
      orgId: key.orgId,
      siteId,
      pulse: JSON.stringify(pulse),
      receivedAt: now,
    });
    if (!result.ok) throw new ApiError(result.code, result.message);
    c.header("etag", result.etag);
    c.header(PULSE_ANSWER_HEADERS.counted, result.counted ? "true" : "false");
    if (result.duplicate) c.header(PULSE_ANSWER_HEADERS.duplicateInstance, "true");
    return c.json(result.policy);
  });
}
