// Fastly Compute (and any runtime without WebAssembly): the same client, deciding
// with the protocol's TypeScript gate and histogram instead of the wasm core.
// Nothing to load: `new WaitState(options)` works at once, at module scope too.
import { WaitState as WasmWaitState } from "./client.js";
import type { ClientEngine } from "./engine.js";
import { typescriptEngine } from "./typescript-engine.js";

export class WaitState extends WasmWaitState {
  protected static override engine: ClientEngine = typescriptEngine;
}

export { DEFAULT_TAG, OVERFLOW_TAG } from "../../protocol/src/constants.js";
export { WaitStateError } from "./client.js";
export type { WaitStateErrorCode, WaitStateOptions, WaitStateStatus } from "./client.js";
export type { GateReason, GateResult, HistogramEncoding, PolicyStatus, SafeModeStrategy } from "./core.js";
