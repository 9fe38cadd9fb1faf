/**
 * SDK JWTs (jose, HS256): `POST /v1/auth/token` issues them, `GET /v1/policy/:orgId`
 * accepts them. The signing key is derived from ENCRYPTION_KEY with HKDF, so a
 * self-hoster manages one secret, not two; claims are validated with zod.
 */
import { SignJWT, jwtVerify, errors as joseErrors } from "jose";
import { z } from "zod";
import { ApiError } from "../errors.js";
import { fromBase64 } from "./crypto.js";

export const JWT_ISSUER = "waitstate";
export const JWT_AUDIENCE = "waitstate-sdk";
export const JWT_TTL_SECONDS = 15 * 60;

export const SdkClaims = z.object({
  iss: z.literal(JWT_ISSUER),
  aud: z.literal(JWT_AUDIENCE),
  sub: z.string().min(1), // the API key id
  org: z.string().min(1),
  scope: z.literal("policy:read"),
  iat: z.int(),
  exp: z.int(),
});
export type SdkClaims = z.infer<typeof SdkClaims>;

async function signingKey(encryptionKey: string): Promise<Uint8Array<ArrayBuffer>> {
  const base = await crypto.subtle.importKey("raw", fromBase64(encryptionKey), "HKDF", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: new TextEncoder().encode("waitstate jwt hs256 v1") },
    base,
    256,
  );
  return new Uint8Array(bits);
}

export async function issueSdkToken(encryptionKey: string, keyId: string, orgId: string, now = Date.now()) {
  const iat = Math.floor(now / 1000);
  const exp = iat + JWT_TTL_SECONDS;
  const token = await new SignJWT({ org: orgId, scope: "policy:read" })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuer(JWT_ISSUER)
    .setAudience(JWT_AUDIENCE)
    .setSubject(keyId)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .sign(await signingKey(encryptionKey));
  return { token, expiresAt: exp * 1000 };
}

/** Verifies signature (HS256 only: `alg: none` and others are refused), expiry and claims. */
export async function verifySdkToken(encryptionKey: string, token: string): Promise<SdkClaims> {
  try {
    const { payload } = await jwtVerify(token, await signingKey(encryptionKey), {
      algorithms: ["HS256"],
      issuer: JWT_ISSUER,
      audience: JWT_AUDIENCE,
    });
    const claims = SdkClaims.safeParse(payload);
    if (!claims.success) throw new ApiError("INVALID_TOKEN", "The token's claims are not a WaitState SDK token's");
    return claims.data;
  } catch (e) {
    if (e instanceof ApiError) throw e;
    if (e instanceof joseErrors.JWTExpired)
      throw new ApiError("TOKEN_EXPIRED", "The token has expired: exchange the key pair again at POST /v1/auth/token");
    throw new ApiError("INVALID_TOKEN", "The token is malformed or its signature is wrong");
  }
}
