/**
 * A site's timing: how often its SDKs pulse, how long they trust a policy
 * (the lease) and how much recent telemetry its reflex rules read (the
 * window). Each defaults to the plan's value; an operator may override it per
 * site within the bounds below (`PATCH /v1/sites/:id`). Pure: the Worker
 * validates with it and the SiteAggregator applies it.
 */
import { z } from "zod";
import { DEFAULT_WINDOW_SECONDS, PLAN_LIMITS, type Plan } from "./constants.js";

/** The absolute bounds of each override. */
export const SITE_TIMING_BOUNDS = Object.freeze({
  pulseIntervalMs: Object.freeze({ min: 250, max: 300_000 }),
  leaseDurationSeconds: Object.freeze({ min: 5, max: 86_400 }),
  windowSeconds: Object.freeze({ min: 0.25, max: 300 }),
});

/** A lease must outlast this many pulse intervals, or healthy SDKs would fall into safe mode between pulses. */
export const MIN_LEASE_INTERVALS = 3;

/** What an operator sends: each field optional; `null` returns it to the plan's value. */
export const SiteSettingsSchema = z.strictObject({
  pulseIntervalMs: z.int().min(SITE_TIMING_BOUNDS.pulseIntervalMs.min).max(SITE_TIMING_BOUNDS.pulseIntervalMs.max).nullable().optional(),
  leaseDurationSeconds: z
    .int()
    .min(SITE_TIMING_BOUNDS.leaseDurationSeconds.min)
    .max(SITE_TIMING_BOUNDS.leaseDurationSeconds.max)
    .nullable()
    .optional(),
  windowSeconds: z.number().min(SITE_TIMING_BOUNDS.windowSeconds.min).max(SITE_TIMING_BOUNDS.windowSeconds.max).nullable().optional(),
});
export type SiteSettings = z.output<typeof SiteSettingsSchema>;

/** The stored overrides (null: the plan's value). */
export interface SiteTimingOverrides {
  pulseIntervalMs: number | null;
  leaseDurationSeconds: number | null;
  windowSeconds: number | null;
}

/** The timing a site runs with. */
export interface SiteTiming {
  pulseIntervalMs: number;
  leaseDurationSeconds: number;
  windowSeconds: number;
}

export const NO_TIMING_OVERRIDES: Readonly<SiteTimingOverrides> = Object.freeze({
  pulseIntervalMs: null,
  leaseDurationSeconds: null,
  windowSeconds: null,
});

/** The fastest pulse interval a plan may set: enterprise down to the absolute minimum, the others their plan's interval. */
export function minPulseIntervalMs(plan: Plan): number {
  return plan === "enterprise" ? SITE_TIMING_BOUNDS.pulseIntervalMs.min : PLAN_LIMITS[plan].pulseIntervalMs;
}

/** The plan's defaults with the site's overrides applied. */
export function siteTiming(plan: Plan, overrides: SiteTimingOverrides = NO_TIMING_OVERRIDES): SiteTiming {
  const limits = PLAN_LIMITS[plan];
  return {
    pulseIntervalMs: overrides.pulseIntervalMs ?? limits.pulseIntervalMs,
    leaseDurationSeconds: overrides.leaseDurationSeconds ?? limits.leaseSeconds,
    windowSeconds: overrides.windowSeconds ?? DEFAULT_WINDOW_SECONDS,
  };
}

/**
 * Why a timing cannot work, or null when it can: the interval is within the
 * plan, the window covers at least one pulse interval (else rules would read
 * an instance's telemetry only now and then) and the lease at least
 * MIN_LEASE_INTERVALS of them.
 */
export function timingProblem(plan: Plan, timing: SiteTiming): string | null {
  const floor = minPulseIntervalMs(plan);
  if (timing.pulseIntervalMs < floor) {
    return `pulseIntervalMs: the ${plan} plan pulses at most every ${floor} ms (got ${timing.pulseIntervalMs})`;
  }
  if (timing.windowSeconds * 1000 < timing.pulseIntervalMs) {
    return `windowSeconds: ${timing.windowSeconds} s is shorter than the pulse interval (${timing.pulseIntervalMs} ms); the window must hold at least one pulse of every instance`;
  }
  if (timing.leaseDurationSeconds * 1000 < MIN_LEASE_INTERVALS * timing.pulseIntervalMs) {
    return `leaseDurationSeconds: ${timing.leaseDurationSeconds} s is shorter than ${MIN_LEASE_INTERVALS} pulse intervals (${(MIN_LEASE_INTERVALS * timing.pulseIntervalMs) / 1000} s); healthy instances would fall into safe mode`;
  }
  return null;
}

/**
 * The window's bucket width: a tenth of the window, between 25 ms and 1 s, so
 * a short window moves smoothly and a long one costs at most ~300 merges.
 */
export function windowBucketMs(windowSeconds: number): number {
  return Math.min(1000, Math.max(25, Math.round((windowSeconds * 1000) / 10)));
}
