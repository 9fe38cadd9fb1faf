/**
 * SDK key lookup for the pulse route. Every pulse is signed with a secret key
 * that is stored encrypted in D1; decrypting it per pulse would cost a D1 read
 * and an AES-GCM decryption each time, so each isolate keeps the imported HMAC
 * key for a short while. Revocation and rotation clear the entry in the isolate
 * that served them at once, and every other isolate within KEY_CACHE_TTL_MS.
 */
import { eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { apiKeys } from "../db/schema.js";
import { ApiError } from "../errors.js";
import { decryptSecret } from "./crypto.js";
import { encryptionKey } from "./secrets.js";
import type { Env } from "../env.js";

export const KEY_CACHE_TTL_MS = 30_000;
const MAX_CACHED_KEYS = 10_000;

export interface PulseKey {
  keyId: string;
  orgId: string;
  /** HMAC-SHA256 key made from the secret key; verify() compares in constant time. */
  hmac: CryptoKey;
}

type Entry = { key: PulseKey | null; revoked: boolean; fetchedAt: number; refreshing?: boolean };
const cache = new Map<string, Entry>();

/** Drops a publish key from this isolate's cache (after revoke or rotate). */
export function forgetKey(publishKey: string): void {
  cache.delete(publishKey);
}

/** A live key pair with its secret decrypted (never cached in clear). */
export interface KeyPair {
  keyId: string;
  orgId: string;
  secret: string;
}

/**
 * The live key pair behind `publishKey`, read from D1 and decrypted, or
 * UNKNOWN_KEY / KEY_REVOKED. Both the token exchange and the pulse route use it.
 */
export async function readKeyPair(env: Env, publishKey: string): Promise<KeyPair> {
  const [row] = await drizzle(env.DB).select().from(apiKeys).where(eq(apiKeys.publishKey, publishKey)).limit(1);
  if (!row) throw new ApiError("UNKNOWN_KEY", "No API key has this publishKey");
  if (row.revokedAt !== null) throw new ApiError("KEY_REVOKED", "This API key was revoked");
  const secret = await decryptSecret(await encryptionKey(env), { ciphertext: row.secretKeyCiphertext, iv: row.secretKeyIv });
  return { keyId: row.id, orgId: row.orgId, secret };
}

/** The key pair behind `publishKey`, or UNKNOWN_KEY / KEY_REVOKED. */
export async function pulseKey(env: Env, publishKey: string, now = Date.now()): Promise<PulseKey> {
  let entry = cache.get(publishKey);
  if (entry === undefined) {
    entry = await fetchKey(env, publishKey, now);
    if (cache.size >= MAX_CACHED_KEYS) cache.clear();
    cache.set(publishKey, entry);
  } else if (now - entry.fetchedAt > KEY_CACHE_TTL_MS && !entry.refreshing) {
    // One request refreshes an expired entry; the pulses arriving meanwhile use
    // it as it was (at most one D1 read longer), instead of all reading D1 at once.
    // No promise is shared between requests: workerd ties I/O to the request that started it.
    const stale = entry;
    stale.refreshing = true;
    try {
      entry = await fetchKey(env, publishKey, now);
      cache.set(publishKey, entry);
    } finally {
      stale.refreshing = false;
    }
  }
  if (entry.revoked) throw new ApiError("KEY_REVOKED", "This API key was revoked");
  if (entry.key === null) throw new ApiError("UNKNOWN_KEY", "No API key has this publishKey");
  return entry.key;
}

/** Unknown and revoked keys are cached too, so a stream of bad pulses costs no D1 read each. */
async function fetchKey(env: Env, publishKey: string, now: number): Promise<Entry> {
  let pair: KeyPair;
  try {
    pair = await readKeyPair(env, publishKey);
  } catch (e) {
    if (e instanceof ApiError && (e.code === "UNKNOWN_KEY" || e.code === "KEY_REVOKED")) {
      return { key: null, revoked: e.code === "KEY_REVOKED", fetchedAt: now };
    }
    throw e;
  }
  const hmac = await crypto.subtle.importKey("raw", new TextEncoder().encode(pair.secret), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
  return { key: { keyId: pair.keyId, orgId: pair.orgId, hmac }, revoked: false, fetchedAt: now };
}
