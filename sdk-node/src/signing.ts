import { createHmac } from "node:crypto";
import { PULSE_HEADERS, TOKEN_EXCHANGE_SIGNING_PREFIX } from "../../protocol/src/constants.js";

/**
 * The pulse signature: hex HMAC-SHA256 over `body + "." + timestamp` with the
 * secret key (docs/protocol.md#signing-a-pulse).
 *
 * @example
 * signPulse('{"instanceId":"web-01",...}', 1740000000000, process.env.WAITSTATE_SECRET_KEY!)
 */
export function signPulse(body: string, timestamp: number | string, secretKey: string): string {
  return createHmac("sha256", secretKey).update(`${body}.${timestamp}`).digest("hex");
}

export type SignedHeaders = {
  "content-type": "application/json";
  "x-waitstate-id": string;
  "x-waitstate-timestamp": string;
  "x-waitstate-signature": string;
};

/** The headers of a signed pulse, stamped with `timestamp` (default: now). */
export function createSignedHeaders(body: string, publishKey: string, secretKey: string, timestamp: number = Date.now()): SignedHeaders {
  const ts = String(Math.trunc(timestamp));
  return {
    "content-type": "application/json",
    [PULSE_HEADERS.publishKey]: publishKey,
    [PULSE_HEADERS.timestamp]: ts,
    [PULSE_HEADERS.signature]: signPulse(body, ts, secretKey),
  } as SignedHeaders;
}

/**
 * The token exchange's signature (docs/protocol.md#signing-a-pulse): the pulse's
 * HMAC over `"POST\n/v1/auth/token\n" + body + "." + timestamp`, so the secret
 * key never leaves the process. The SDK sends an empty body.
 */
export function signTokenExchange(timestamp: number | string, secretKey: string, body = ""): string {
  return signPulse(TOKEN_EXCHANGE_SIGNING_PREFIX + body, timestamp, secretKey);
}

export type TokenExchangeHeaders = Omit<SignedHeaders, "content-type">;

/** The headers of a signed token exchange with an empty body, stamped with `timestamp` (default: now). */
export function createTokenExchangeHeaders(publishKey: string, secretKey: string, timestamp: number = Date.now()): TokenExchangeHeaders {
  const ts = String(Math.trunc(timestamp));
  return {
    [PULSE_HEADERS.publishKey]: publishKey,
    [PULSE_HEADERS.timestamp]: ts,
    [PULSE_HEADERS.signature]: signTokenExchange(ts, secretKey),
  } as TokenExchangeHeaders;
}
