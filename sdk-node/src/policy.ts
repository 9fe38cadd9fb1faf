/**
 * The wire policy as the SDK accepts it: the protocol's zero-dependency
 * validator (protocol/src/policy.ts, compiled into this package's build), and
 * the in-memory {@link PolicyCache}.
 */
import type { WirePolicy } from "../../protocol/src/policy.js";

export { parsePolicy, type PolicyParseResult } from "../../protocol/src/policy.js";

/** A policy as the control plane sends it, defaults filled in (docs/protocol.md#the-policy). */
export type Policy = WirePolicy;

/**
 * The in-memory policy store: the last good policy and its ETag.
 *
 * @example
 * const cache = new PolicyCache();
 * cache.update({ ...policy }, '"k3-7"');
 * cache.get()?.version; // 7
 */
export class PolicyCache {
  private current: Policy | null = null;
  private currentEtag: string | null = null;

  /** The last good policy, or null before the first sync. */
  get(): Policy | null {
    return this.current;
  }

  /** The ETag the policy came with, for `If-None-Match`. */
  get etag(): string | null {
    return this.currentEtag;
  }

  update(policy: Policy, etag: string | null = null): void {
    this.current = policy;
    this.currentEtag = etag;
  }

  /** Back to never synced. */
  reset(): void {
    this.current = null;
    this.currentEtag = null;
  }
}
