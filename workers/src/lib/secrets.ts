import { ApiError } from "../errors.js";
import { importEncryptionKey } from "./crypto.js";
import type { Env } from "../env.js";

/** The `ENCRYPTION_KEY` secret, or a 503 saying how to set it. */
export function encryptionSecret(env: Env): string {
  if (!env.ENCRYPTION_KEY) {
    throw new ApiError(
      "NOT_CONFIGURED",
      "ENCRYPTION_KEY is not set: `npm start` writes one to .dev.vars, or run `wrangler secret put ENCRYPTION_KEY`",
    );
  }
  return env.ENCRYPTION_KEY;
}

/** The AES-GCM key for secret keys at rest; a malformed secret is a 503, not a 500. */
export async function encryptionKey(env: Env): Promise<CryptoKey> {
  try {
    return await importEncryptionKey(encryptionSecret(env));
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw new ApiError("NOT_CONFIGURED", "ENCRYPTION_KEY must be 32 bytes, base64-encoded");
  }
}
