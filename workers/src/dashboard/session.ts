/**
 * Dashboard sessions without a table: the cookie carries the management token
 * sealed with AES-256-GCM (a key derived from ENCRYPTION_KEY with HKDF) and an
 * absolute expiry. Every request re-checks the token against D1, so revoking
 * it ends every session made with it. CSRF tokens are HMACs of the session's
 * random id (or, before login, of a nonce cookie), so they need no storage either.
 */
import { z } from "zod";
import { base64url, fromBase64, randomToken, timingSafeEqual } from "../lib/crypto.js";

/** The session cookie; `Path=/dashboard`, so the API never receives it. */
export const SESSION_COOKIE = "ws_session";
/** The pre-login nonce the login form's CSRF token is bound to. */
export const LOGIN_COOKIE = "ws_login";
/** A session lasts this long after logging in, whatever happens meanwhile. @default 12 h */
export const SESSION_TTL_SECONDS = 12 * 60 * 60;
/** A login form stays valid this long. @default 1 h */
export const LOGIN_NONCE_TTL_SECONDS = 60 * 60;

const encoder = new TextEncoder();
const SEAL_VERSION = "v1";
// Binds the ciphertext to its purpose: a sealed value from elsewhere cannot pass as a session.
const SESSION_AAD = encoder.encode("waitstate dashboard session v1");

const SessionPayload = z.object({
  /** The management token, as the user typed it. */
  token: z.string().min(1).max(512),
  /** Random per login: what the CSRF token is derived from. */
  sid: z.string().min(16).max(64),
  /** The token's id and name, for the audit log's actor (looked up once, at login). */
  tokenId: z.string().max(128).nullable(),
  tokenName: z.string().max(256).nullable(),
  issuedAt: z.int(),
  expiresAt: z.int(),
});
export type Session = z.infer<typeof SessionPayload>;

/** The two keys the dashboard uses, both derived from ENCRYPTION_KEY (one secret for the self-hoster to manage). */
export interface SessionKeys {
  seal: CryptoKey;
  csrf: CryptoKey;
}

async function derive(encryptionKey: string, info: string): Promise<ArrayBuffer> {
  const base = await crypto.subtle.importKey("raw", fromBase64(encryptionKey), "HKDF", false, ["deriveBits"]);
  return crypto.subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: encoder.encode(info) }, base, 256);
}

/**
 * @example
 * const keys = await sessionKeys(encryptionSecret(env));
 * const cookie = await sealSession(keys, newSession(token));
 */
export async function sessionKeys(encryptionKey: string): Promise<SessionKeys> {
  const [sealBits, csrfBits] = await Promise.all([
    derive(encryptionKey, "waitstate dashboard session aes-gcm v1"),
    derive(encryptionKey, "waitstate dashboard csrf hmac v1"),
  ]);
  const [seal, csrf] = await Promise.all([
    crypto.subtle.importKey("raw", sealBits, "AES-GCM", false, ["encrypt", "decrypt"]),
    crypto.subtle.importKey("raw", csrfBits, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]),
  ]);
  return { seal, csrf };
}

/** A fresh session for `token`, valid for SESSION_TTL_SECONDS from `now`. */
export function newSession(token: string, identity: { id: string; name: string } | null, now = Date.now()): Session {
  return {
    token,
    sid: randomToken("", 18),
    tokenId: identity?.id ?? null,
    tokenName: identity?.name ?? null,
    issuedAt: now,
    expiresAt: now + SESSION_TTL_SECONDS * 1000,
  };
}

/** `v1.<iv>.<ciphertext>`, base64url: opaque to the browser, unreadable and unforgeable without ENCRYPTION_KEY. */
export async function sealSession(keys: SessionKeys, session: Session): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: SESSION_AAD },
    keys.seal,
    encoder.encode(JSON.stringify(session)),
  );
  return `${SEAL_VERSION}.${base64url(iv)}.${base64url(new Uint8Array(sealed))}`;
}

/** The session in a cookie value, or null when it is malformed, tampered with, sealed with another key, or expired. */
export async function openSession(keys: SessionKeys, value: string | undefined, now = Date.now()): Promise<Session | null> {
  if (!value || value.length > 2048) return null;
  const [version, iv, ciphertext, ...rest] = value.split(".");
  if (version !== SEAL_VERSION || !iv || !ciphertext || rest.length > 0) return null;
  let json: unknown;
  try {
    const plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: fromBase64(iv), additionalData: SESSION_AAD },
      keys.seal,
      fromBase64(ciphertext),
    );
    json = JSON.parse(new TextDecoder().decode(plain));
  } catch {
    return null;
  }
  const parsed = SessionPayload.safeParse(json);
  if (!parsed.success || parsed.data.expiresAt <= now) return null;
  return parsed.data;
}

async function hmac(keys: SessionKeys, message: string): Promise<string> {
  return base64url(new Uint8Array(await crypto.subtle.sign("HMAC", keys.csrf, encoder.encode(message))));
}

/** The CSRF token every form of a session carries. Purpose-prefixed so a login token is never a session token. */
export function csrfToken(keys: SessionKeys, session: Session): Promise<string> {
  return hmac(keys, `session:${session.sid}`);
}

/** The login form's CSRF token, bound to the nonce in the LOGIN_COOKIE. */
export function loginCsrfToken(keys: SessionKeys, nonce: string): Promise<string> {
  return hmac(keys, `login:${nonce}`);
}

export function newLoginNonce(): string {
  return randomToken("", 18);
}

/** Compares a submitted CSRF token with the expected one in constant time; a missing one never matches. */
export function csrfMatches(expected: string, submitted: string | undefined): boolean {
  return typeof submitted === "string" && submitted.length > 0 && timingSafeEqual(expected, submitted);
}
