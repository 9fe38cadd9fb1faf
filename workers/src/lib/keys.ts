/**
 * SDK key lookups for the routes an SDK calls: the pulse and the token
 * exchange find a key by its publish key (and need its HMAC key), a policy
 * read finds it by the id in its JWT (and needs only its status and scope).
 *
 * Decrypting a secret key per pulse would cost a D1 read and an AES-GCM
 * decryption each time, so each isolate keeps what it read for at most
 * KEY_CACHE_TTL_MS. That is the revocation bound (docs/protocol.md, "Pulses and
 * auth"): a revoked or rotated key is refused by every route within
 * KEY_CACHE_TTL_MS (plus one D1 read) in every isolate, and at once in the
 * isolate that served the revocation. A grace period's end is checked against
 * the clock on every request, so it is exact.
 */
import { eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { apiKeys } from "../db/schema.js";
import { ApiError } from "../errors.js";
import { decryptSecret } from "./crypto.js";
import { encryptionKey } from "./secrets.js";
import type { Env } from "../env.js";

export const KEY_CACHE_TTL_MS = 5_000;
const MAX_CACHED_KEYS = 10_000;

type KeyRow = typeof apiKeys.$inferSelect;

/** What a route needs to know about a key to accept or refuse it. */
export interface KeyStatus {
  keyId: string;
  orgId: string;
  publishKey: string;
  environment: "live" | "test";
  /** The one site the key may use; null: every site of the org. */
  siteId: string | null;
  revokedAt: number | null;
  /** End of a rotation's grace period; null: none. */
  expiresAt: number | null;
}

export interface PulseKey extends KeyStatus {
  /** HMAC-SHA256 key made from the secret key; verify() compares in constant time. */
  hmac: CryptoKey;
}

type Entry<T> = { value: T | null; fetchedAt: number; refreshing?: boolean };

/**
 * A per-isolate map whose entries are read again once older than the TTL.
 * One request refreshes an expired entry; requests arriving meanwhile use it
 * as it was (at most one D1 read longer) instead of all reading D1 at once.
 * No promise is shared between requests: workerd ties I/O to the request that started it.
 */
class TtlCache<T> {
  private readonly entries = new Map<string, Entry<T>>();

  delete(id: string): void {
    this.entries.delete(id);
  }

  async get(id: string, now: number, load: () => Promise<T | null>): Promise<T | null> {
    let entry = this.entries.get(id);
    if (entry === undefined) {
      entry = { value: await load(), fetchedAt: now };
      if (this.entries.size >= MAX_CACHED_KEYS) this.entries.clear();
      this.entries.set(id, entry);
    } else if (now - entry.fetchedAt > KEY_CACHE_TTL_MS && !entry.refreshing) {
      const stale = entry;
      stale.refreshing = true;
      try {
        entry = { value: await load(), fetchedAt: now };
        this.entries.set(id, entry);
      } finally {
        stale.refreshing = false;
      }
    }
    return entry.value;
  }
}

// Unknown keys are cached too (as null), so a stream of bad pulses costs no D1 read each.
const byPublishKey = new TtlCache<PulseKey>();
const byId = new TtlCache<KeyStatus>();

/** Drops a key from this isolate's caches (after revoke or rotate). */
export function forgetKey(key: { id: string; publishKey: string }): void {
  byPublishKey.delete(key.publishKey);
  byId.delete(key.id);
}

function status(row: KeyRow): KeyStatus {
  return {
    keyId: row.id,
    orgId: row.orgId,
    publishKey: row.publishKey,
    environment: row.environment,
    siteId: row.siteId,
    revokedAt: row.revokedAt,
    expiresAt: row.expiresAt,
  };
}

/** KEY_REVOKED when the key was revoked, or rotated and its grace period is over. */
export function assertUsable(key: KeyStatus, now: number): void {
  if (key.revokedAt !== null && key.revokedAt <= now) throw new ApiError("KEY_REVOKED", "This API key was revoked");
  if (key.expiresAt !== null && key.expiresAt <= now) {
    throw new ApiError(
      "KEY_REVOKED",
      `This API key was rotated and its grace period ended at ${new Date(key.expiresAt).toISOString()}: use the new key`,
    );
  }
}

/** FORBIDDEN when a site-scoped key asks for another site. */
export function assertSite(key: KeyStatus, siteId: string): void {
  if (key.siteId !== null && key.siteId !== siteId) {
    throw new ApiError("FORBIDDEN", `This API key is scoped to site "${key.siteId}" and cannot be used for site "${siteId}"`);
  }
}

/** The site a request means: the one it names, else the key's own site, else the org's default site (its id). */
export function siteFor(key: KeyStatus, requested: string | undefined): string {
  const siteId = requested ?? key.siteId ?? key.orgId;
  assertSite(key, siteId);
  return siteId;
}

/** The usable key behind `publishKey` with its HMAC key, or UNKNOWN_KEY / KEY_REVOKED. */
export async function pulseKey(env: Env, publishKey: string, now = Date.now()): Promise<PulseKey> {
  const key = await byPublishKey.get(publishKey, now, async () => {
    const [row] = await drizzle(env.DB).select().from(apiKeys).where(eq(apiKeys.publishKey, publishKey)).limit(1);
    if (!row) return null;
    const secret = await decryptSecret(await encryptionKey(env), { ciphertext: row.secretKeyCiphertext, iv: row.secretKeyIv });
    const hmac = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
      "verify",
    ]);
    return { ...status(row), hmac };
  });
  if (key === null) throw new ApiError("UNKNOWN_KEY", "No API key has this publishKey");
  assertUsable(key, now);
  return key;
}

/** The usable key with this id (a JWT's subject), or KEY_REVOKED (a deleted key counts as revoked). */
export async function keyStatus(env: Env, keyId: string, now = Date.now()): Promise<KeyStatus> {
  const key = await byId.get(keyId, now, async () => {
    const [row] = await drizzle(env.DB).select().from(apiKeys).where(eq(apiKeys.id, keyId)).limit(1);
    return row ? status(row) : null;
  });
  if (key === null) throw new ApiError("KEY_REVOKED", "The API key this token was issued for no longer exists");
  assertUsable(key, now);
  return key;
}
