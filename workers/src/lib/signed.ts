/**
 * Requests an SDK signs with its secret key (docs/protocol.md#signing-a-pulse):
 * the pulse and the token exchange. Headers `x-waitstate-id` (publish key),
 * `x-waitstate-timestamp` (epoch ms, within 5 minutes of the control plane's
 * clock) and `x-waitstate-signature`: hex HMAC-SHA256 with the secret key over
 * `prefix + body + "." + timestamp` (the pulse's prefix is empty). The body is
 * capped while it streams in and the signature is checked by Web Crypto's
 * constant-time verify before anything parses the body.
 */
import type { Context } from "hono";
import { MAX_TIMESTAMP_SKEW_MS, PULSE_HEADERS } from "@waitstate/protocol";
import { ApiError } from "../errors.js";
import { pulseKey, type PulseKey } from "./keys.js";
import { readCapped } from "./stream.js";
import type { AppEnv } from "../env.js";

const HEX_SIGNATURE = /^[0-9a-f]{64}$/i;
const EPOCH_MS = /^\d{1,16}$/;
const encoder = new TextEncoder();

function hexToBytes(hex: string): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export interface SignedRequest {
  key: PulseKey;
  body: Uint8Array;
  /** When the request arrived (epoch ms). */
  now: number;
  /** The signed `x-waitstate-timestamp` (epoch ms). */
  timestamp: number;
}

export interface SignedRequestOptions {
  /** What the request is, in the messages: "pulse", "token exchange". */
  what: string;
  maxBytes: number;
  /** Signed before the body; "" for a pulse. */
  prefix: string;
  /** Checks the body before the key is looked up (a refusal that needs no key). */
  precheck?: (body: Uint8Array) => void;
}

export async function verifySigned(c: Context<AppEnv>, options: SignedRequestOptions): Promise<SignedRequest> {
  const now = Date.now();
  const publishKey = c.req.header(PULSE_HEADERS.publishKey);
  const timestamp = c.req.header(PULSE_HEADERS.timestamp);
  const signature = c.req.header(PULSE_HEADERS.signature);
  // The pulse reads its (larger) body only once the headers look right.
  let body = options.precheck ? await readCapped(c.req.raw, options.maxBytes) : null;
  if (body !== null) options.precheck?.(body);
  if (!publishKey || !timestamp || !signature) {
    throw new ApiError(
      "UNAUTHORIZED",
      `Sign the ${options.what}: send ${PULSE_HEADERS.publishKey}, ${PULSE_HEADERS.timestamp} and ${PULSE_HEADERS.signature}`,
    );
  }
  if (!EPOCH_MS.test(timestamp)) throw new ApiError("TIMESTAMP_SKEW", `${PULSE_HEADERS.timestamp} must be epoch milliseconds`);
  if (Math.abs(now - Number(timestamp)) > MAX_TIMESTAMP_SKEW_MS) {
    throw new ApiError(
      "TIMESTAMP_SKEW",
      `The ${options.what} timestamp is more than 5 minutes from the control plane's clock; check the instance's clock`,
    );
  }
  if (!HEX_SIGNATURE.test(signature))
    throw new ApiError("INVALID_SIGNATURE", `${PULSE_HEADERS.signature} must be 64 hex characters (HMAC-SHA256)`);
  body ??= await readCapped(c.req.raw, options.maxBytes);
  const key = await pulseKey(c.env, publishKey, now);

  const prefix = encoder.encode(options.prefix);
  const suffix = encoder.encode(`.${timestamp}`);
  const signed = new Uint8Array(prefix.byteLength + body.byteLength + suffix.byteLength);
  signed.set(prefix);
  signed.set(body, prefix.byteLength);
  signed.set(suffix, prefix.byteLength + body.byteLength);
  if (!(await crypto.subtle.verify("HMAC", key.hmac, hexToBytes(signature), signed))) {
    throw new ApiError("INVALID_SIGNATURE", `The signature does not match the ${options.what}'s body and timestamp for this key`);
  }
  return { key, body, now, timestamp: Number(timestamp) };
}
