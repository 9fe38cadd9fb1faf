/** Where each profile's binary lands: `agent` (optimized; the bench, the image), `dev` (the tests). */
export const AGENT_BINARIES: { agent: string; dev: string };
/** Builds rust/agent; `skipped` says why there is no binary (no Rust toolchain). Rejects when cargo fails. */
export function buildAgent(options?: {
  quiet?: boolean;
  profile?: "agent" | "dev";
}): Promise<{ binary: string; skipped?: undefined } | { binary?: undefined; skipped: string }>;
