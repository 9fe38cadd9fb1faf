/** How to call cargo here: Debian's toolchain with its crates, or the cargo on PATH. */
export interface Toolchain {
  name: string;
  cargo: string;
  config: string[];
  env: Record<string, string>;
}

/** The Rust workspace (`rust/`). */
export const RUST_DIR: string;
/** What installs everything the Rust suites need on Debian/Ubuntu. */
export const RUST_INSTALL_COMMAND: string;
/** A toolchain that can build the workspace (and wasm32 when `wasm`), or null. */
export function findToolchain(options?: { wasm?: boolean }): Toolchain | null;
/** Runs a cargo subcommand in the workspace; resolves its exit code and (with `capture`) its output. */
export function cargo(args: string[], options?: { tc?: Toolchain; capture?: boolean }): Promise<{ code: number; output: string }>;
