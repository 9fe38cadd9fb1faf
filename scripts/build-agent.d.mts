export const AGENT_BINARY: string;
/** Builds rust/agent; `skipped` says why there is no binary (no Rust toolchain). Rejects when cargo fails. */
export function buildAgent(options?: {
  quiet?: boolean;
}): Promise<{ binary: string; skipped?: undefined } | { binary?: undefined; skipped: string }>;
