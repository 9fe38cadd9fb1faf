/**
 * Webhook subscriptions in the Worker: what a URL and an event list may be,
 * the secret (created here, shown once, sealed at rest like SDK secret keys),
 * and the signing and matching the WebhookDispatcher uses, re-exported so
 * tests and docs have one recipe.
 */
import { z } from "zod";
import {
  ALLOW_PRIVATE_TARGETS_VAR,
  AUDIT_KINDS,
  allowsPrivateTargets,
  patternKnown,
  webhookTargetProblem,
} from "@waitstate/durable-objects";
import { ApiError } from "../errors.js";
import type { Env } from "../env.js";
import { randomToken } from "./crypto.js";

export {
  kindMatches,
  signWebhook,
  webhookBody,
  retryDelayMs,
  WEBHOOK_MAX_ATTEMPTS,
  DEFAULT_WEBHOOK_RETRY_BASE_MS,
} from "@waitstate/durable-objects";

export const MAX_WEBHOOKS_PER_ORG = 20;
export const MAX_EVENT_PATTERNS = 50;
const MAX_URL_LENGTH = 2048;

/**
 * An http(s) URL without credentials (a secret in a URL would be stored and
 * listed in clear): the signature, not the URL, authenticates deliveries.
 */
export const WebhookUrlSchema = z
  .string()
  .trim()
  .min(1, "url must not be empty")
  .max(MAX_URL_LENGTH, `url must be at most ${MAX_URL_LENGTH} characters`)
  .transform((text, ctx) => {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      ctx.addIssue({ code: "custom", message: "url must be an absolute http:// or https:// URL" });
      return z.NEVER;
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      ctx.addIssue({ code: "custom", message: `url must use http or https, not ${url.protocol.replace(/:$/, "")}` });
      return z.NEVER;
    }
    if (url.username !== "" || url.password !== "") {
      ctx.addIssue({ code: "custom", message: "url must not contain credentials (user:password@); verify the signature instead" });
      return z.NEVER;
    }
    if (url.hostname === "") {
      ctx.addIssue({ code: "custom", message: "url must name a host" });
      return z.NEVER;
    }
    return url.href;
  });

/** `*`, a kind (`rule.fired`), or a prefix ending in `.*` (`rule.*`); it must select at least one kind. */
export const EventPatternSchema = z
  .string()
  .max(64)
  .regex(/^(\*|[a-z_]+(\.[a-z_]+)*(\.\*)?)$/, "an event is a kind such as rule.fired, a prefix such as rule.*, or *")
  .refine(patternKnown, { message: `no such event; kinds are ${AUDIT_KINDS.join(", ")}` });

export const EventsSchema = z
  .array(EventPatternSchema)
  .min(1, "events must name at least one event (or *)")
  .max(MAX_EVENT_PATTERNS)
  .transform((events) => [...new Set(events)]);

/** A new signing secret: `whsec_` + 32 random bytes, base64url. */
export function newWebhookSecret(): string {
  return randomToken("whsec_", 32);
}

/**
 * A 400 naming why `url` may not receive webhooks here (a loopback, private,
 * link-local… host: targets.ts in @waitstate/durable-objects), unless the
 * operator opted in for a self-hosted network. The dispatcher checks again
 * before every delivery.
 */
export function assertPublicTarget(env: Env, url: string): void {
  const problem = webhookTargetProblem(url, allowsPrivateTargets(env.WEBHOOKS_ALLOW_PRIVATE_TARGETS));
  if (problem === null) return;
  throw new ApiError(
    "VALIDATION_FAILED",
    `url: the host is ${problem}; webhooks go to public addresses only (a self-hosted network can allow private ones with ${ALLOW_PRIVATE_TARGETS_VAR}=true)`,
  );
}
