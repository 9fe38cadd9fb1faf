/**
 * Push (docs/protocol.md#push): what the SiteAggregator keeps about each
 * WebSocket it accepted and the rules that close one. The sockets are accepted
 * with the Hibernation API, so everything here lives in the socket's
 * attachment (it survives the object's hibernation and restarts), never in
 * the object's memory alone.
 */
import type { Policy } from "@waitstate/protocol";

/**
 * The header the Worker sets on the upgrade it forwards to the aggregator,
 * after authenticating it: who subscribes and until when. The aggregator is
 * reachable only through the Worker, so it trusts the header.
 */
export const SUBSCRIBER_HEADER = "x-waitstate-subscriber";

/** The forwarded upgrade's URL paths: an SDK's policy subscription, an operator's event stream. */
export const SUBSCRIBE_PATH = "/subscribe";
export const EVENTS_PATH = "/events";

/** Tags of the accepted sockets: by kind, and an SDK socket by its key id. */
export const SDK_TAG = "sdk";
export const EVENTS_TAG = "events";
export function keyTag(keyId: string): string {
  return `key:${keyId}`;
}

/** What the Worker tells the aggregator about a subscriber (the header's JSON). */
export interface SubscriberGrant {
  kind: "sdk" | "events";
  orgId: string;
  siteId: string;
  /** The SDK key behind the JWT (null for an operator's stream). */
  keyId: string | null;
  /** The JWT's `exp`, epoch ms: past it the socket closes 4002 (null: no token expiry). */
  tokenExpiresAt: number | null;
  /** When the key stops being usable (a rotation's grace period), epoch ms: past it the socket closes 4001. */
  keyEndsAt: number | null;
}

/** A socket's attachment: its grant's deadlines and its flood accounting. */
export interface Subscriber {
  kind: "sdk" | "events";
  keyId: string | null;
  tokenExpiresAt: number | null;
  keyEndsAt: number | null;
  /** Start of the current flood window, epoch ms, and the messages counted in it. */
  windowStart: number;
  messages: number;
}

/** Close codes of the push contract. */
export const CLOSE = {
  KEY_REVOKED: 4001,
  TOKEN_EXPIRED: 4002,
  FLOODING: 1008,
  SERVER_ERROR: 1011,
  /** The site was deleted: the client reconnects and is told 404. */
  SITE_DELETED: 1000,
} as const;

/**
 * A client needs to send nothing (`ping` is answered without waking the
 * object), so more than FLOOD_LIMIT other messages in FLOOD_WINDOW_MS is a
 * misbehaving client: it is closed 1008 before it can cost the object more.
 */
export const FLOOD_LIMIT = 5;
export const FLOOD_WINDOW_MS = 10_000;

/**
 * Deadline sweeps (expired tokens, keys past their grace period) wake the
 * object at most this often: a socket closes at most this long after its
 * deadline, and a site with many subscribers is woken once a minute, not once
 * per socket. A broadcast never reaches a socket past its deadline.
 */
export const SWEEP_INTERVAL_MS = 60_000;

/** Counts one message against the flood limit; true when the socket must close. */
export function flooding(sub: Subscriber, now: number): boolean {
  if (now - sub.windowStart >= FLOOD_WINDOW_MS) {
    sub.windowStart = now;
    sub.messages = 0;
  }
  sub.messages++;
  return sub.messages > FLOOD_LIMIT;
}

/** Why a socket must close now, or null while its grant holds. The key's end wins: a new token would not help. */
export function deadlinePassed(sub: Subscriber, now: number): { code: number; reason: string } | null {
  if (sub.keyEndsAt !== null && sub.keyEndsAt <= now) return { code: CLOSE.KEY_REVOKED, reason: "KEY_REVOKED" };
  if (sub.tokenExpiresAt !== null && sub.tokenExpiresAt <= now) return { code: CLOSE.TOKEN_EXPIRED, reason: "TOKEN_EXPIRED" };
  return null;
}

/** The next deadline of a subscriber, or null. */
export function nextDeadline(sub: Subscriber): number | null {
  const times = [sub.keyEndsAt, sub.tokenExpiresAt].filter((t): t is number => t !== null);
  return times.length === 0 ? null : Math.min(...times);
}

/** The one server → client message of the push contract. */
export function policyMessage(policy: Policy, etag: string): string {
  return JSON.stringify({ type: "policy", version: policy.version, etag, policy });
}

/** Closes a socket, ignoring one already closed or closing. */
export function closeQuietly(ws: WebSocket, code: number, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    // already closed: nothing to do
  }
}
