import type { Hono } from "hono";
import { eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { z } from "zod";
import { apiKeys } from "../db/schema.js";
import { ApiError } from "../errors.js";
import { readJson } from "../lib/body.js";
import { decryptSecret, timingSafeEqual } from "../lib/crypto.js";
import { encryptionKey, encryptionSecret } from "../lib/secrets.js";
import { issueSdkToken } from "../lib/jwt.js";
import type { AppEnv } from "../env.js";

const TokenRequest = z.object({
  publishKey: z.string().min(1).max(200),
  secretKey: z.string().min(1).max(200),
});

/** `POST /v1/auth/token`: the SDK's key pair → a short-lived JWT scoped to its org. */
export function registerAuthToken(app: Hono<AppEnv>) {
  app.post("/v1/auth/token", async (c) => {
    const body = await readJson(c, TokenRequest);
    const encryption = encryptionSecret(c.env);
    const [key] = await drizzle(c.env.DB).select().from(apiKeys).where(eq(apiKeys.publishKey, body.publishKey)).limit(1);
    if (!key) throw new ApiError("UNKNOWN_KEY", "No API key has this publishKey");
    if (key.revokedAt !== null) throw new ApiError("KEY_REVOKED", "This API key was revoked");
    const secret = await decryptSecret(await encryptionKey(c.env), { ciphertext: key.secretKeyCiphertext, iv: key.secretKeyIv });
    if (!timingSafeEqual(secret, body.secretKey)) throw new ApiError("INVALID_SIGNATURE", "The secretKey does not match this publishKey");
    const { token, expiresAt } = await issueSdkToken(encryption, key.id, key.orgId);
    return c.json({ token, expiresAt, orgId: key.orgId });
  });
}
