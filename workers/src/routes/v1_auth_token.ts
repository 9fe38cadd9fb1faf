import type { Hono } from "hono";
import { z } from "zod";
import { ApiError } from "../errors.js";
import { readJson } from "../lib/body.js";
import { openTo } from "../middleware/access.js";
import { timingSafeEqual } from "../lib/crypto.js";
import { readKeyPair } from "../lib/keys.js";
import { encryptionSecret } from "../lib/secrets.js";
import { issueSdkToken } from "../lib/jwt.js";
import type { AppEnv } from "../env.js";

const TokenRequest = z.object({
  publishKey: z.string().min(1).max(200),
  secretKey: z.string().min(1).max(200),
});

/** `POST /v1/auth/token`: the SDK's key pair → a short-lived JWT scoped to its org. */
export function registerAuthToken(app: Hono<AppEnv>) {
  app.post("/v1/auth/token", openTo("sdk-key"), async (c) => {
    const body = await readJson(c, TokenRequest);
    const encryption = encryptionSecret(c.env);
    const key = await readKeyPair(c.env, body.publishKey);
    if (!timingSafeEqual(key.secret, body.secretKey)) throw new ApiError("INVALID_SIGNATURE", "The secretKey does not match this publishKey");
    const { token, expiresAt } = await issueSdkToken(encryption, key.keyId, key.orgId);
    return c.json({ token, expiresAt, orgId: key.orgId });
  });
}
