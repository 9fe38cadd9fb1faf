import type { Hono } from "hono";
import { z } from "zod";
import { MAX_TOKEN_EXCHANGE_BODY_BYTES, PULSE_HEADERS, TOKEN_EXCHANGE_PATH, TOKEN_EXCHANGE_SIGNING_PREFIX } from "@waitstate/protocol";
import { ApiError } from "../errors.js";
import { validate } from "../lib/body.js";
import { openTo } from "../middleware/access.js";
import { issueSdkToken } from "../lib/jwt.js";
import { encryptionSecret } from "../lib/secrets.js";
import { verifySigned } from "../lib/signed.js";
import type { AppEnv } from "../env.js";

/** The exchange carries nothing today; a body, if any, is an empty JSON object. */
const TokenRequest = z.strictObject({});

const HOW_TO_SIGN =
  `sign it like a pulse instead: headers ${PULSE_HEADERS.publishKey} (publish key), ${PULSE_HEADERS.timestamp} (epoch ms) and ` +
  `${PULSE_HEADERS.signature} = hex HMAC-SHA256 with the secret key over "POST\\n${TOKEN_EXCHANGE_PATH}\\n" + body + "." + timestamp, with an empty body`;

/**
 * Refuses the old body form `{publishKey, secretKey}` before anything else:
 * the secret key must never travel, so a request carrying one is refused even
 * when it is also signed, with a message that says what to do.
 */
function refuseSecretInBody(body: Uint8Array): void {
  if (body.byteLength === 0) return;
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(body));
  } catch {
    throw new ApiError("INVALID_JSON", "The token exchange body must be empty or a JSON object");
  }
  if (typeof json === "object" && json !== null && ("secretKey" in json || "publishKey" in json)) {
    throw new ApiError(
      "UNSIGNED_TOKEN_EXCHANGE",
      `The token exchange no longer accepts the key pair in the body (the secret key must never be sent): upgrade the WaitState SDK, or ${HOW_TO_SIGN}. ` +
        ("secretKey" in json ? "This request sent a secret key: if it crossed an untrusted network, rotate the key." : ""),
    );
  }
}

/**
 * `POST /v1/auth/token`: a request signed with the SDK's key pair (docs/protocol.md,
 * "Pulses and auth") → a short-lived JWT for `GET /v1/policy/:orgId`, scoped
 * to the key's org (and site, when the key has one).
 */
export function registerAuthToken(app: Hono<AppEnv>) {
  app.post(TOKEN_EXCHANGE_PATH, openTo("sdk-key"), async (c) => {
    const encryption = encryptionSecret(c.env);
    const { key, body } = await verifySigned(c, {
      what: "token exchange",
      maxBytes: MAX_TOKEN_EXCHANGE_BODY_BYTES,
      prefix: TOKEN_EXCHANGE_SIGNING_PREFIX,
      precheck: refuseSecretInBody,
    });
    if (body.byteLength > 0) validate(TokenRequest, JSON.parse(new TextDecoder().decode(body)));
    const { token, expiresAt } = await issueSdkToken(encryption, key.keyId, key.orgId);
    return c.json({ token, expiresAt, orgId: key.orgId, siteId: key.siteId, environment: key.environment });
  });
}
