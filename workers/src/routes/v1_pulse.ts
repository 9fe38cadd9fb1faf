import type { Hono } from "hono";
import { MAX_PULSE_BODY_BYTES, PulseSchema } from "@waitstate/protocol";
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
    const { key, body, now } = await verifySigned(c, { what: "pulse", maxBytes: MAX_PULSE_BODY_BYTES, prefix: "" });
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(body));
    } catch {
      throw new ApiError("INVALID_JSON", "The pulse body is not valid UTF-8 JSON");
    }
    const pulse = validate(PulseSchema, json);
    const siteId = siteFor(key, pulse.siteId);

    const result = await aggregator(c.env, key.orgId, siteId).ingest({ orgId: key.orgId, siteId, pulse: JSON.stringify(pulse), receivedAt: now });
    if (!result.ok) throw new ApiError(result.code, result.message);
    c.header("etag", result.etag);
    c.header("x-waitstate-counted", result.counted ? "true" : "false");
    return c.json(result.policy);
  });
}
