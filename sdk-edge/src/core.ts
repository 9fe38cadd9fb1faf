/**
 * @waitstate/edge: the Rust gate compiled to WebAssembly, driven through its
 * small C ABI (rust/README.md) without wasm-bindgen. Runtime-neutral: the
 * entry files (workerd, node, deno, default) only decide how the
 * `WebAssembly.Module` is obtained. Zero runtime dependencies.
 */

import {
  DEFAULT_SAFE_MODE_MAX_RPS,
  DEFAULT_TAG,
  GATE_REASONS,
  MAX_PULSE_BODY_BYTES,
  MAX_TAGS_PER_PULSE,
  MAX_TAGS_PER_POLICY,
  MAX_TAG_NAME_LENGTH,
  OVERFLOW_TAG,
  PULSE_HEADERS,
  type GateReason,
  type PolicyStatus,
  type SafeModeStrategy,
} from "../../protocol/src/constants.js";
import { killSwitchPolicy, parsePolicy, validatePolicy as validateWirePolicy, type WirePolicy } from "../../protocol/src/policy.js";

export { DEFAULT_TAG, OVERFLOW_TAG };
export type { GateReason, PolicyStatus, SafeModeStrategy };

/** The outcome of a gate call; shared frozen objects, compare fields. */
export interface GateResult {
  readonly allowed: boolean;
  readonly reason: GateReason;
}

/** The wire policy (docs/protocol.md#the-policy); absent fields take their defaults. */
export interface EdgePolicy {
  version?: number;
  globalMaxWeight?: number | null;
  tagMaxWeights?: Record<string, number | null>;
  killSignal?: boolean;
  status?: PolicyStatus;
  pulseInterval?: number;
  leaseDurationSeconds?: number;
  issuedAt?: number;
  retryAfterSeconds?: number;
}

export type EdgeErrorCode =
  | "NOT_INITIALIZED"
  | "INVALID_POLICY"
  | "INVALID_ARGUMENT"
  | "WASM_ERROR"
  /** The wasm module is not the one this version of the package was built for (stale or foreign `.wasm`). */
  | "ABI_MISMATCH"
  /** A pulse was not delivered (network error, timeout, 401, 429, 5xx, …); it is kept and re-sent by the next `sendPulse`. */
  | "PULSE_FAILED"
  /** The control plane refused a pulse for good (400, 413, 422): it was dropped, its calls are not counted. */
  | "PULSE_REJECTED";

/** The one error type of @waitstate/edge. `code` is stable; `message` says what to fix. */
export class EdgeError extends Error {
  readonly code: EdgeErrorCode;
  constructor(code: EdgeErrorCode, message: string) {
    super(message);
    this.name = "EdgeError";
    this.code = code;
  }
}

/**
 * The version of the wasm module's C ABI this code drives (`ws_abi_version`,
 * rust/wasm/src/lib.rs). A module reporting another version, or none, is refused.
 */
export const ABI_VERSION = 2;

/** What the wasm module exports (rust/wasm/src/lib.rs). */
interface CoreExports {
  memory: WebAssembly.Memory;
  ws_abi_version(): number;
  ws_configure(strategy: number, safeModeMaxRps: number): number;
  ws_policy_begin(globalMaxWeight: number, killSignal: number, status: number, leaseDurationSeconds: number): number;
  ws_policy_tag(tagId: number, limit: number): number;
  ws_policy_commit(syncedAt: number): number;
  ws_mark_synced(syncedAt: number): number;
  ws_reset(): void;
  ws_gate(tagId: number, weight: number, now: number): number;
  ws_max_tags(): number;
  ws_calls_ptr(): number;
  ws_bounced_ptr(): number;
  ws_reset_counts(count: number): void;
  ws_io_ptr(): number;
  ws_io_capacity(): number;
  ws_hmac_begin(keyLength: number): number;
  ws_hmac_update(length: number): number;
  ws_hmac_finish(): number;
  ws_hist_slots(): number;
  ws_hist_reset(slot: number): number;
  ws_hist_record(slot: number, valueMs: number, times: number): number;
  ws_hist_quantile(slot: number, q: number): number;
  ws_hist_encode(slot: number): number;
  ws_hist_counts_ptr(slot: number): number;
  ws_hist_merge(into: number, from: number): number;
}

/** `ws_gate`'s reason codes are indexes into the protocol's reason list (wasm-core/src/gate.rs keeps the same order). */
const REASONS: readonly GateReason[] = GATE_REASONS;
const STATUS_CODES: Readonly<Record<PolicyStatus, number>> = { ok: 0, over_limit: 1, cap_exceeded: 2, suspended: 3 };
const STRATEGY_CODES: Readonly<Record<SafeModeStrategy, number>> = { open: 0, fixed_rps: 1, last_policy: 2 };

/** `ws_gate` returns `reason | allowed << 4`: one frozen result per code, so a call allocates nothing. */
const RESULT_BY_CODE: readonly GateResult[] = Array.from({ length: 32 }, (_, code) =>
  Object.freeze({ allowed: (code & 16) !== 0, reason: REASONS[code & 15] ?? "allowed" }),
);
const ALLOWED = RESULT_BY_CODE[16]!;
const KILLED = RESULT_BY_CODE[GATE_REASONS.indexOf("kill_signal")]!;

let loadedModule: WebAssembly.Module | null = null;
/** The instance that checked the module's ABI version, handed to the first user rather than wasted. */
let probe: CoreExports | null = null;
const encoder = new TextEncoder();

/** Checks a module's ABI version by instantiating it; returns the instance, or throws a typed error. */
function checkedInstance(module: WebAssembly.Module): CoreExports {
  let exports: CoreExports;
  try {
    exports = new WebAssembly.Instance(module, {}).exports as unknown as CoreExports;
  } catch (e) {
    throw new EdgeError(
      "ABI_MISMATCH",
      `the wasm module cannot be instantiated with no imports, so it is not @waitstate/edge's (expected ABI version ${ABI_VERSION}): ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  const found = typeof exports.ws_abi_version === "function" ? exports.ws_abi_version() : null;
  if (found !== ABI_VERSION) {
    const what = found === null ? "a module without ws_abi_version (ABI version 1, or not WaitState's module)" : `ABI version ${found}`;
    throw new EdgeError(
      "ABI_MISMATCH",
      `@waitstate/edge expects a wasm module with ABI version ${ABI_VERSION}, found ${what}: use the waitstate.wasm shipped with this version of the package (@waitstate/edge/waitstate.wasm)`,
    );
  }
  return exports;
}

/**
 * Supplies the wasm module for runtimes that import wasm their own way
 * (Vercel Edge, bundlers): a `WebAssembly.Module`, or the bytes of
 * `@waitstate/edge/waitstate.wasm`. workerd, Node and Deno load it by
 * themselves; there `init()` with no argument does nothing. Rejects with an
 * {@link EdgeError}: `NOT_INITIALIZED` when called with nothing where no module
 * was loaded, `WASM_ERROR` for bytes that are not wasm, `ABI_MISMATCH` for a
 * module of another version.
 *
 * @example
 * import wasm from "@waitstate/edge/waitstate.wasm?module";
 * await init(wasm);
 */
export async function init(moduleOrBytes?: WebAssembly.Module | ArrayBuffer | ArrayBufferView): Promise<void> {
  if (moduleOrBytes === undefined || moduleOrBytes === null) {
    if (loadedModule !== null) return;
    throw new EdgeError(
      "NOT_INITIALIZED",
      "init() needs the wasm module in this runtime: pass the WebAssembly.Module or the bytes of @waitstate/edge/waitstate.wasm (the workerd, node and deno entries load it by themselves)",
    );
  }
  if (moduleOrBytes instanceof WebAssembly.Module) {
    initSync(moduleOrBytes);
    return;
  }
  if (!(moduleOrBytes instanceof ArrayBuffer) && !ArrayBuffer.isView(moduleOrBytes)) {
    throw new EdgeError(
      "INVALID_ARGUMENT",
      `init() takes a WebAssembly.Module, an ArrayBuffer or a typed array (got ${typeof moduleOrBytes})`,
    );
  }
  // A copy into a plain ArrayBuffer: the view may sit on a SharedArrayBuffer or a larger buffer.
  const bytes = ArrayBuffer.isView(moduleOrBytes)
    ? new Uint8Array(moduleOrBytes.buffer, moduleOrBytes.byteOffset, moduleOrBytes.byteLength).slice()
    : new Uint8Array(moduleOrBytes);
  let module: WebAssembly.Module;
  try {
    module = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  } catch (e) {
    throw new EdgeError(
      "WASM_ERROR",
      `init(): the bytes are not a wasm module (${bytes.length} bytes): ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  initSync(module);
}

/**
 * Installs an already compiled module synchronously (used by the runtime entry
 * files). Throws {@link EdgeError} `ABI_MISMATCH` for a module of another
 * ABI version; the module in use stays as it was.
 */
export function initSync(module: WebAssembly.Module): void {
  if (!(module instanceof WebAssembly.Module)) {
    throw new EdgeError("INVALID_ARGUMENT", "initSync() takes a compiled WebAssembly.Module");
  }
  const instance = checkedInstance(module);
  loadedModule = module;
  probe = instance;
}

export function isInitialized(): boolean {
  return loadedModule !== null;
}

function instantiate(): CoreExports {
  if (loadedModule === null) {
    throw new EdgeError(
      "NOT_INITIALIZED",
      "@waitstate/edge has no wasm module yet: call `await init(moduleOrBytes)` first (workerd, Node and Deno load it automatically)",
    );
  }
  if (probe !== null) {
    const ready = probe;
    probe = null;
    return ready;
  }
  return new WebAssembly.Instance(loadedModule, {}).exports as unknown as CoreExports;
}

export interface EdgeGateOptions {
  /** What the gate does once the policy's lease expired. @default "open" */
  safeModeStrategy?: SafeModeStrategy;
  /** Requests per second per instance under `fixed_rps`. @default 50 */
  safeModeMaxRps?: number;
  /** Receives every problem instead of a throw (bad policy JSON, full tag table). @default console.warn */
  onError?: (error: EdgeError) => void;
}

export interface EdgeTagCount {
  tag: string;
  count: number;
  bounced: number;
}

export interface EdgeCounts {
  usageDelta: number;
  bouncedUnits: number;
  tags: EdgeTagCount[];
}

/** What {@link EdgeGate.pulse} needs to build and sign a pulse (docs/protocol.md#the-pulse). */
export interface PulseOptions {
  /** This instance (isolate, process): stable for its lifetime. */
  instanceId: string;
  siteId?: string;
  /** Sent as `x-waitstate-id`. */
  publishKey: string;
  /** Signs the body; never sent. */
  secretKey: string;
  /**
   * Epoch ms for the timestamp header and the `ts` of a pulse built now (made
   * larger than every `ts` this gate built before, so none is taken for a replay). @default Date.now()
   */
  now?: number;
  /** Mean latency in ms over the interval, if the caller measures it (not a finite number ≥ 0: ignored). @default 0 */
  latency?: number;
  /** Errors over the interval (not a number ≥ 0: ignored). @default 0 */
  errors?: number;
}

/** {@link EdgeGate.sendPulse}'s options: a pulse's, and how long the call may take. */
export interface SendPulseOptions extends PulseOptions {
  /**
   * The whole call gives up after this many ms (`AbortSignal.timeout`), so a hung
   * control plane cannot hold a `waitUntil`: a timeout is a failure, the pulse is kept.
   * @default 10000
   */
  timeoutMs?: number;
}

/** A signed pulse, ready for `fetch(endpoint + "/v1/pulse", { method: "POST", headers, body })`. */
export interface SignedPulse {
  body: string;
  timestamp: string;
  signature: string;
  headers: Record<string, string>;
}

/** The control plane refuses pulse bodies over MAX_PULSE_BODY_BYTES; a body stays 1 KiB under (the headers' share). */
const PULSE_BODY_BUDGET = MAX_PULSE_BODY_BYTES - 1024;
/** {@link SendPulseOptions.timeoutMs}'s default. */
const DEFAULT_PULSE_TIMEOUT_MS = 10_000;
/** Set by the control plane on every pulse it processed (`true`, or `false` for a replay). */
const COUNTED_HEADER = "x-waitstate-counted";

/** A built pulse not yet acknowledged: re-sent unchanged (same body, same `ts`) with a fresh signature. */
interface PendingPulse {
  readonly body: string;
  readonly ts: number;
  readonly usageDelta: number;
}

type PostOutcome = "installed" | "delivered" | "rejected" | "failed" | "abandoned";

/** A finite number ≥ 0, else 0 (integers only for counts): the schema refuses anything else, and with it the whole pulse. */
function metric(value: unknown, integer: boolean): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) return 0;
  return integer ? Math.floor(value) : value;
}

/**
 * The protocol's policy validation (protocol/src/policy.ts: the one the Node
 * SDK and the control plane run, checked by protocol/vectors/policy.json).
 * Returns the first fault as `path: why`, or null when valid; `maxTags`
 * bounds `tagMaxWeights` further (an {@link EdgeGate}'s tag table).
 */
export function validatePolicy(input: unknown, maxTags: number = MAX_TAGS_PER_POLICY): string | null {
  const problem = validateWirePolicy(input);
  if (problem !== null) return problem;
  const tags = (input as EdgePolicy).tagMaxWeights;
  return tags !== undefined && Object.keys(tags).length > maxTags ? `tagMaxWeights: at most ${maxTags} tag entries` : null;
}

/**
 * The tags of a pulse that would name more than 512 tags or take more than
 * `budget` bytes: the most called first, the rest summed into {@link OVERFLOW_TAG}.
 */
function fitTags(tags: EdgeTagCount[], budget: number): EdgeTagCount[] {
  const folded: EdgeTagCount = { tag: OVERFLOW_TAG, count: 0, bounced: 0 };
  const kept: EdgeTagCount[] = [];
  let bytes = 0;
  for (const t of [...tags].sort((a, b) => b.count - a.count)) {
    if (t.tag !== OVERFLOW_TAG && kept.length < MAX_TAGS_PER_PULSE - 1) {
      const size = encoder.encode(JSON.stringify({ tag: t.tag, count: t.count, bounced: t.bounced })).length + 1;
      if (bytes + size <= budget) {
        kept.push(t);
        bytes += size;
        continue;
      }
    }
    folded.count += t.count;
    folded.bounced += t.bounced;
  }
  return folded.count > 0 ? [...kept, folded] : kept;
}

/**
 * A gate whose policy lives in wasm memory. Tags are interned once into
 * integer ids (cached in a JS Map), so a call passes only numbers to wasm.
 * Counts calls and denials per tag for pulses. `gate()` and `update()` never throw.
 *
 * @example
 * const gate = new EdgeGate({ safeModeStrategy: "fixed_rps" });
 * gate.update(await (await fetch(policyUrl, { headers })).text());
 * if (!gate.gate("free", 1).allowed) return new Response("busy", { status: 429 });
 */
export class EdgeGate {
  private readonly core: CoreExports;
  /** `ws_gate`, held directly: a property read on the exports object per call costs more than the call. */
  private readonly wsGate: CoreExports["ws_gate"];
  private readonly ids = new Map<string, number>();
  private readonly tags: string[] = [];
  private readonly maxTags: number;
  private readonly calls: Uint32Array;
  private readonly bounced: Uint32Array;
  private readonly onError: (error: EdgeError) => void;
  private overflowCalls = 0;
  private overflowBounced = 0;
  private current: EdgePolicy | null = null;
  private currentEtag: string | null = null;
  /** The built pulse {@link sendPulse} has not got acknowledged yet (at most one). */
  private pending: PendingPulse | null = null;
  /** The largest `ts` built so far: each pulse gets a larger one. */
  private lastTs = 0;
  /** The running {@link sendPulse}: its token, and when it stops blocking later calls (a second past its deadline). */
  private sending: { token: object; staleAt: number } | null = null;
  /** Latency and errors of sendPulse calls that built no pulse, for the next one built. */
  private carriedErrors = 0;
  private carriedLatencySum = 0;
  private carriedLatencyCount = 0;

  constructor(options: EdgeGateOptions = {}) {
    this.core = instantiate();
    this.wsGate = this.core.ws_gate;
    const report = options.onError ?? ((e: EdgeError) => console.warn(`[waitstate] ${e.code}: ${e.message}`));
    this.onError = (e) => {
      try {
        report(e);
      } catch {
        // A throwing onError must not make gate() or update() throw.
      }
    };
    this.maxTags = this.core.ws_max_tags();
    this.calls = new Uint32Array(this.core.memory.buffer, this.core.ws_calls_ptr(), this.maxTags);
    this.bounced = new Uint32Array(this.core.memory.buffer, this.core.ws_bounced_ptr(), this.maxTags);
    const strategy = options.safeModeStrategy ?? "open";
    const rps = options.safeModeMaxRps ?? DEFAULT_SAFE_MODE_MAX_RPS;
    if (
      typeof strategy !== "string" ||
      !Object.hasOwn(STRATEGY_CODES, strategy) ||
      typeof rps !== "number" ||
      this.core.ws_configure(STRATEGY_CODES[strategy], rps) !== 0
    ) {
      throw new EdgeError(
        "INVALID_ARGUMENT",
        `safeModeStrategy must be open, fixed_rps or last_policy and safeModeMaxRps a non-negative number (got ${String(strategy)}, ${String(rps)})`,
      );
    }
  }

  /** The last policy accepted by {@link update}, or null before the first. */
  get policy(): EdgePolicy | null {
    return this.current;
  }

  /**
   * The control plane's ETag of the policy in force, for `If-None-Match` on
   * `GET /v1/policy/:orgId` (a 304 then means {@link markSynced}). Set by
   * {@link sendPulse} from the pulse answer's `etag` header, and by {@link update}'s
   * `etag` argument; null when unknown (then the next policy read is a full 200).
   */
  get etag(): string | null {
    return this.currentEtag;
  }

  /** Built pulses not yet acknowledged by the control plane (0 or 1): the next {@link sendPulse} re-sends it first. */
  get pendingPulses(): number {
    return this.pending === null ? 0 : 1;
  }

  /**
   * Installs a policy (an object or its JSON text) received at `syncedAt`, with
   * the `etag` the control plane sent with it (see {@link etag}; omitted or null:
   * unknown). A bad policy is reported to `onError` (`INVALID_POLICY`) and the
   * last good one, and its ETag, stay: returns false. Except the kill switch: a
   * policy that cannot be installed but carries `killSignal: true` installs a
   * kill-only policy instead (every call denied, `kill_signal`), reported as
   * such: returns true.
   *
   * @example
   * const res = await fetch(policyUrl, { headers: gate.etag ? { ...auth, "if-none-match": gate.etag } : auth });
   * if (res.status === 304) gate.markSynced();
   * else if (res.ok) gate.update(await res.text(), Date.now(), res.headers.get("etag"));
   */
  update(policy: EdgePolicy | string, syncedAt: number = Date.now(), etag: string | null = null): boolean {
    let raw: unknown = policy;
    if (typeof policy === "string") {
      try {
        raw = JSON.parse(policy);
      } catch (e) {
        return this.reject(`policy is not JSON: ${(e as Error).message}`);
      }
    }
    if (typeof syncedAt !== "number" || !Number.isFinite(syncedAt)) return this.reject("syncedAt must be epoch milliseconds");
    const parsed = parsePolicy(raw);
    const problem = parsed.ok ? this.install(parsed.policy, syncedAt, etag) : parsed.message;
    if (problem === null) return true;
    // A policy this gate cannot install may still carry the kill switch: that one is obeyed (policy.json, README).
    const kill = killSwitchPolicy(raw);
    if (kill === null || this.install(kill, syncedAt, etag) !== null) return this.reject(problem);
    this.onError(
      new EdgeError(
        "INVALID_POLICY",
        `${problem}; the policy carries the kill switch, which is honoured: every call is denied (kill_signal) until a valid policy arrives`,
      ),
    );
    return true;
  }

  /**
   * The client's install ({@link WaitState}): a policy the protocol's parser
   * already accepted, under the lease the lifecycle rules set (longer than the
   * policy's own under `cap_exceeded` and `suspended`, so not re-validated).
   * Returns the problem, or null once it is in force. @internal
   */
  installParsed(policy: WirePolicy, leaseSeconds: number, syncedAt: number, etag: string | null): string | null {
    return this.install(
      leaseSeconds === policy.leaseDurationSeconds ? policy : { ...policy, leaseDurationSeconds: leaseSeconds },
      syncedAt,
      etag,
    );
  }

  /** Puts a valid policy into the wasm core; the problem, or null once it is in force. */
  private install(p: WirePolicy, syncedAt: number, etag: string | null): string | null {
    const core = this.core;
    if (core.ws_policy_begin(p.globalMaxWeight ?? Infinity, p.killSignal ? 1 : 0, STATUS_CODES[p.status], p.leaseDurationSeconds) !== 0) {
      return "the wasm core refused the policy";
    }
    const entries = p.tagMaxWeights;
    for (const tag of Object.keys(entries)) {
      const id = this.idOf(tag);
      if (id >= this.maxTags) return `tag table full (${this.maxTags} tags): cannot apply tagMaxWeights.${tag}`;
      if (core.ws_policy_tag(id, entries[tag] ?? Infinity) !== 0) return `the wasm core refused tagMaxWeights.${tag}`;
    }
    core.ws_policy_commit(syncedAt);
    this.current = p;
    this.currentEtag = typeof etag === "string" && etag.length > 0 ? etag : null;
    return null;
  }

  /** A sync that confirmed the current policy (for example a 304 Not Modified): the lease restarts. */
  markSynced(syncedAt: number = Date.now()): boolean {
    // 0 when done; refused before any policy, or for a syncedAt that is not a finite number.
    return typeof syncedAt === "number" && this.core.ws_mark_synced(syncedAt) === 0;
  }

  /**
   * The gate: synchronous, no I/O, never throws. `now` defaults to `Date.now()`;
   * in workerd time only moves between I/O, so passing the request's time is free.
   */
  gate(tag: string = DEFAULT_TAG, weight: number = 1, now: number = Date.now()): GateResult {
    const id = this.ids.get(tag);
    if (id === undefined) return this.gateNewTag(tag, weight, now);
    // ws_gate answers 0..31 (reason | allowed << 4): every code has a result.
    // Non-numbers (a BigInt would make the wasm call throw) weigh 1 / mean "now".
    return RESULT_BY_CODE[this.wsGate(id, typeof weight === "number" ? weight : 1, typeof now === "number" ? now : Date.now())]!;
  }

  /**
   * gate() for the client ({@link WaitState}), which passes its own clock: no
   * default parameters to fill, one branch to a known tag. An absent or
   * non-string tag goes the slow way (normalised as `__default__`). @internal
   */
  gateAt(tag: string | undefined, weight: number | undefined, now: number): GateResult {
    const id = tag === undefined ? undefined : this.ids.get(tag);
    if (id === undefined) return this.gateNewTag(tag ?? DEFAULT_TAG, weight ?? 1, now);
    return RESULT_BY_CODE[this.wsGate(id, typeof weight === "number" ? weight : 1, now)]!;
  }

  /** First sight of a tag, or a tag beyond the table's capacity (counted here, not in wasm). */
  private gateNewTag(tag: string, weight: number, now: number): GateResult {
    const id = this.idOf(tag);
    const code = this.wsGate(id, typeof weight === "number" ? weight : 1, typeof now === "number" ? now : Date.now());
    if (id >= this.maxTags) {
      this.overflowCalls++;
      if ((code & 16) === 0) this.overflowBounced++;
    }
    return RESULT_BY_CODE[code] ?? ALLOWED;
  }

  /**
   * The calls and denials since the last take, per tag, for a pulse; resets them.
   * Tags beyond the table's capacity and names longer than 128 characters are
   * summed into one {@link OVERFLOW_TAG} entry (last), as the control plane takes them.
   */
  takeCounts(): EdgeCounts {
    const tags: EdgeTagCount[] = [];
    let usageDelta = 0;
    let bouncedUnits = 0;
    let otherCalls = this.overflowCalls;
    let otherBounced = this.overflowBounced;
    const n = Math.min(this.tags.length, this.maxTags);
    for (let id = 0; id < n; id++) {
      const count = this.calls[id]!;
      if (count === 0) continue;
      const bounced = this.bounced[id]!;
      const tag = this.tags[id]!;
      usageDelta += count;
      bouncedUnits += bounced;
      // Decided on its own entry like any tag (gate() stays as it is); only its count goes to the overflow tag.
      if (tag.length > MAX_TAG_NAME_LENGTH || tag === OVERFLOW_TAG) {
        otherCalls += count;
        otherBounced += bounced;
      } else {
        tags.push({ tag, count, bounced });
      }
    }
    this.core.ws_reset_counts(n);
    if (otherCalls > 0) {
      tags.push({ tag: OVERFLOW_TAG, count: otherCalls, bounced: otherBounced });
      usageDelta += this.overflowCalls;
      bouncedUnits += this.overflowBounced;
    }
    this.overflowCalls = 0;
    this.overflowBounced = 0;
    return { usageDelta, bouncedUnits, tags };
  }

  /**
   * Takes the counts (resetting them) and builds a signed pulse body with its
   * headers: `x-waitstate-id`, `x-waitstate-timestamp`, `x-waitstate-signature`
   * (hex HMAC-SHA256 over `body + "." + timestamp`). Its `ts` is larger than
   * every one this gate built before. For callers that send pulses themselves;
   * {@link sendPulse} does it all, and keeps what it could not deliver (do not mix the two).
   */
  pulse(options: PulseOptions): SignedPulse {
    const now = options.now ?? Date.now();
    const built = this.build(options, now, metric(options.latency, false), metric(options.errors, true));
    return this.sign(built.body, now, options);
  }

  /**
   * Sends a pulse to `endpoint` (`https://…`, without `/v1/pulse`) and installs
   * the policy of the response (and its {@link etag}). Meant for
   * `ctx.waitUntil(gate.sendPulse(...))`. Never rejects; problems go to `onError`.
   *
   * Loses no calls: a built pulse stays pending until the control plane
   * acknowledges it (a 2xx with a valid policy, or the `x-waitstate-counted`
   * header), and the next call re-sends it first — the same body and `ts`, a
   * fresh timestamp header and signature; the control plane counts an
   * (instanceId, ts) once. Only once it is acknowledged does a call build a new
   * pulse (what was counted meanwhile, with a larger `ts`) and send it too. A
   * 400, 413 or 422 can never succeed: that pulse is dropped (`PULSE_REJECTED`).
   * Any other failure — network, `timeoutMs`, 401, 429, 5xx — is `PULSE_FAILED`.
   *
   * Resolves true when a pulse of this call was acknowledged and its answer's
   * policy installed; false otherwise, or at once when another call of this gate
   * is still running (for at most its `timeoutMs`), which is left to finish.
   * The `latency` and `errors` of a call that builds no pulse go into the next one.
   */
  async sendPulse(endpoint: string, options: SendPulseOptions): Promise<boolean> {
    const startedAt = Date.now();
    if (this.sending !== null && startedAt < this.sending.staleAt) {
      this.carry(options);
      return false;
    }
    let timeoutMs = options.timeoutMs ?? DEFAULT_PULSE_TIMEOUT_MS;
    if (typeof timeoutMs !== "number" || !(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
      this.onError(
        new EdgeError(
          "INVALID_ARGUMENT",
          `sendPulse: timeoutMs must be a positive number of ms (got ${String(timeoutMs)}); using ${DEFAULT_PULSE_TIMEOUT_MS}`,
        ),
      );
      timeoutMs = DEFAULT_PULSE_TIMEOUT_MS;
    }
    // A call whose context was cancelled (workerd) never ends: a second past its deadline, it no longer blocks.
    const token = {};
    this.sending = { token, staleAt: startedAt + timeoutMs + 1000 };
    try {
      const url = `${String(endpoint).replace(/\/+$/, "")}/v1/pulse`;
      const signal = AbortSignal.timeout(timeoutMs);
      let installed = false;
      const earlier = this.pending;
      if (earlier !== null) {
        const outcome = await this.post(url, earlier, options, signal, timeoutMs, token);
        if (outcome === "failed" || outcome === "abandoned") {
          this.carry(options);
          return false;
        }
        installed = outcome === "installed";
      }
      const now = options.now ?? Date.now();
      const errors = metric(options.errors, true) + this.carriedErrors;
      const latencyNow = metric(options.latency, false);
      const samples = this.carriedLatencyCount + (latencyNow > 0 ? 1 : 0);
      const latency = samples > 0 ? (this.carriedLatencySum + latencyNow) / samples : 0;
      this.carriedErrors = this.carriedLatencySum = this.carriedLatencyCount = 0;
      const fresh = this.build(options, now, latency, errors);
      this.pending = fresh;
      return (await this.post(url, fresh, options, signal, timeoutMs, token)) === "installed" || installed;
    } catch (e) {
      this.onError(new EdgeError("PULSE_FAILED", `pulse failed: ${e instanceof Error ? e.message : String(e)}`));
      return false;
    } finally {
      if (this.sending?.token === token) this.sending = null;
    }
  }

  /** Takes the counts into a pulse body (at most 512 tags and 64 KiB) with a `ts` larger than the last. */
  private build(options: PulseOptions, now: number, latency: number, errors: number): PendingPulse {
    const counts = this.takeCounts();
    const ts = Math.max(Math.floor(typeof now === "number" && Number.isFinite(now) ? now : Date.now()), this.lastTs + 1);
    this.lastTs = ts;
    const serialize = (tags: EdgeTagCount[]) =>
      JSON.stringify({
        instanceId: options.instanceId,
        ...(options.siteId === undefined ? {} : { siteId: options.siteId }),
        usageDelta: counts.usageDelta,
        bouncedUnits: counts.bouncedUnits,
        metrics: { latency, errors },
        tagMetrics: tags.map((t) => ({ tag: t.tag, count: t.count, bounced: t.bounced })),
        ts,
      });
    let body = serialize(counts.tags);
    // UTF-8 takes at most 3 bytes per UTF-16 unit: only a large body is measured.
    if (
      counts.tags.length > MAX_TAGS_PER_PULSE ||
      (body.length * 3 > PULSE_BODY_BUDGET && encoder.encode(body).length > PULSE_BODY_BUDGET)
    ) {
      body = serialize(
        fitTags(counts.tags, PULSE_BODY_BUDGET - encoder.encode(serialize([{ tag: OVERFLOW_TAG, count: 0, bounced: 0 }])).length),
      );
    }
    return { body, ts, usageDelta: counts.usageDelta };
  }

  private sign(body: string, now: number, options: PulseOptions): SignedPulse {
    const timestamp = String(now);
    const signature = sign_pulse(body, timestamp, options.secretKey);
    return {
      body,
      timestamp,
      signature,
      headers: {
        "content-type": "application/json",
        [PULSE_HEADERS.publishKey]: options.publishKey,
        [PULSE_HEADERS.timestamp]: timestamp,
        [PULSE_HEADERS.signature]: signature,
      },
    };
  }

  /** Posts a built pulse, freshly signed; settles {@link pending} as the answer says (docs/client.md#delivery-outcomes). */
  private async post(
    url: string,
    pulse: PendingPulse,
    options: PulseOptions,
    signal: AbortSignal,
    timeoutMs: number,
    token: object,
  ): Promise<PostOutcome> {
    const signed = this.sign(pulse.body, options.now ?? Date.now(), options);
    let status: number;
    let text: string;
    let etag: string | null;
    let counted: boolean;
    try {
      const response = await fetch(url, { method: "POST", headers: signed.headers, body: signed.body, signal });
      text = await response.text();
      status = response.status;
      etag = response.headers.get("etag");
      counted = response.headers.has(COUNTED_HEADER);
    } catch (e) {
      if (this.sending?.token !== token) return "abandoned";
      const why = signal.aborted ? `no answer within ${timeoutMs} ms` : e instanceof Error ? e.message : String(e);
      this.onError(
        new EdgeError("PULSE_FAILED", `pulse not delivered (${why}); its ${pulse.usageDelta} calls are kept for the next attempt`),
      );
      return "failed";
    }
    // A newer call took over (this one outlived its deadline): it owns the pending pulse now.
    if (this.sending?.token !== token) return "abandoned";
    if (status >= 200 && status < 300) {
      if (this.update(text, Date.now(), etag)) {
        this.settle(pulse);
        return "installed";
      }
      // The control plane marks every pulse it processed; a 2xx without the mark (a proxy's page) proves nothing.
      if (counted) {
        this.settle(pulse);
        return "delivered";
      }
      this.onError(
        new EdgeError(
          "PULSE_FAILED",
          `pulse answered ${status} without a policy or the ${COUNTED_HEADER} header; its ${pulse.usageDelta} calls are kept for the next attempt`,
        ),
      );
      return "failed";
    }
    if (status === 400 || status === 413 || status === 422) {
      this.settle(pulse);
      this.onError(
        new EdgeError(
          "PULSE_REJECTED",
          `the control plane refused a pulse (${status}: ${text.slice(0, 200)}); its ${pulse.usageDelta} calls cannot be delivered and were dropped`,
        ),
      );
      return "rejected";
    }
    this.onError(
      new EdgeError(
        "PULSE_FAILED",
        `pulse answered ${status}: ${text.slice(0, 200)}; its ${pulse.usageDelta} calls are kept for the next attempt`,
      ),
    );
    return "failed";
  }

  /** The pulse is settled (acknowledged or refused for good): no longer pending. */
  private settle(pulse: PendingPulse): void {
    if (this.pending === pulse) this.pending = null;
  }

  /** Keeps a call's metrics for the next pulse built. */
  private carry(options: PulseOptions): void {
    this.carriedErrors += metric(options.errors, true);
    const latency = metric(options.latency, false);
    if (latency > 0) {
      this.carriedLatencySum += latency;
      this.carriedLatencyCount++;
    }
  }

  /** Forgets the policy: back to bootstrap, where everything is allowed. */
  reset(): void {
    this.core.ws_reset();
    this.current = null;
    this.currentEtag = null;
  }

  /** The id of a tag, interning it on first sight; past the table's capacity, the overflow id. */
  private idOf(rawTag: string): number {
    const tag = typeof rawTag === "string" && rawTag.length > 0 ? rawTag : DEFAULT_TAG;
    let id = this.ids.get(tag);
    if (id === undefined) {
      if (this.tags.length >= this.maxTags) {
        if (this.tags.length === this.maxTags) {
          this.tags.push(OVERFLOW_TAG); // report once
          this.onError(
            new EdgeError(
              "INVALID_ARGUMENT",
              `more than ${this.maxTags} distinct tags: further tags are gated by the global limit and counted as ${OVERFLOW_TAG}`,
            ),
          );
        }
        return this.maxTags;
      }
      id = this.tags.length;
      this.tags.push(tag);
      this.ids.set(tag, id);
    }
    if (rawTag !== tag && typeof rawTag === "string") this.ids.set(rawTag, id);
    return id;
  }

  private reject(message: string): false {
    this.onError(new EdgeError("INVALID_POLICY", `${message}; keeping the last good policy`));
    return false;
  }
}

/** The pure gate's own instance: policies are staged into it per call, with fixed ids (no interning). */
let pureCore: CoreExports | null = null;
let warnedUninitialized = false;
const PURE_TAG_ID = 0;
const PURE_NO_ENTRY_ID = 1;

/**
 * The SDKs' pure check: `gate(policy, tag?, weight?)` against a policy the
 * caller holds, as if just synced (no lease, no safe mode, nothing counted).
 * A missing or invalid policy allows (fail open). Never throws.
 */
export function gate(policy: EdgePolicy | string | null | undefined, tag?: string, weight?: number): GateResult {
  if (policy === null || policy === undefined) return ALLOWED;
  let parsed: unknown = policy;
  if (typeof policy === "string") {
    try {
      parsed = JSON.parse(policy);
    } catch {
      return ALLOWED;
    }
  }
  const valid = parsePolicy(parsed);
  // Fail open on a bad policy, but never past its kill switch.
  if (!valid.ok) return killSwitchPolicy(parsed) === null ? ALLOWED : KILLED;
  if (pureCore === null) {
    if (loadedModule === null) {
      if (!warnedUninitialized) console.warn("[waitstate] gate(): no wasm module yet (call `await init(moduleOrBytes)`); allowing");
      warnedUninitialized = true;
      return ALLOWED;
    }
    pureCore = instantiate();
  }
  const core = pureCore;
  const p = valid.policy;
  const name = typeof tag === "string" && tag.length > 0 ? tag : DEFAULT_TAG;
  const entries = p.tagMaxWeights;
  const hasEntry = Object.hasOwn(entries, name);
  const now = Date.now();
  core.ws_policy_begin(p.globalMaxWeight ?? Infinity, p.killSignal ? 1 : 0, STATUS_CODES[p.status], p.leaseDurationSeconds);
  if (hasEntry) core.ws_policy_tag(PURE_TAG_ID, entries[name] ?? Infinity);
  core.ws_policy_commit(now);
  const code = core.ws_gate(hasEntry ? PURE_TAG_ID : PURE_NO_ENTRY_ID, typeof weight === "number" ? weight : 1, now);
  core.ws_reset_counts(2);
  return RESULT_BY_CODE[code] ?? ALLOWED;
}

let signer: CoreExports | null = null;

/**
 * Signs a pulse: lowercase hex HMAC-SHA256 over `body + "." + timestamp` with
 * the secret key — the `x-waitstate-signature` header (docs/protocol.md#signing-a-pulse).
 */
export function sign_pulse(body: string, timestamp: string | number, secretKey: string): string {
  signer ??= instantiate();
  const core = signer;
  const capacity = core.ws_io_capacity();
  const io = () => new Uint8Array(core.memory.buffer, core.ws_io_ptr(), capacity);
  const key = encoder.encode(secretKey);
  if (key.length > capacity) throw new EdgeError("INVALID_ARGUMENT", `secretKey longer than ${capacity} bytes`);
  io().set(key);
  if (core.ws_hmac_begin(key.length) !== 0) throw new EdgeError("WASM_ERROR", "hmac begin failed");
  const message = encoder.encode(`${body}.${timestamp}`);
  for (let offset = 0; offset < message.length; offset += capacity) {
    const chunk = message.subarray(offset, offset + capacity);
    io().set(chunk);
    if (core.ws_hmac_update(chunk.length) !== 0) throw new EdgeError("WASM_ERROR", "hmac update failed");
  }
  if (core.ws_hmac_finish() !== 0) throw new EdgeError("WASM_ERROR", "hmac finish failed");
  return new TextDecoder().decode(io().subarray(0, 64));
}

/** camelCase alias of {@link sign_pulse}. */
export const signPulse = sign_pulse;

/** The protocol's compact histogram encoding (protocol/vectors/README.md, "histogram.json"). */
export interface HistogramEncoding {
  /** Observations. */
  n: number;
  /** Their sum, ms. */
  s: number;
  /** Smallest and largest observation, ms (0 when empty). */
  lo: number;
  hi: number;
  /** Non-empty buckets as flattened `[index, count]` pairs, indexes increasing. */
  b: number[];
}

/** Bucket count of the protocol's histogram (165 bounded + overflow). */
const HISTOGRAM_BUCKETS = 166;

/** A wasm instance whose histogram slots {@link EdgeHistogram}s share. */
interface HistogramPool {
  readonly core: CoreExports;
  readonly free: number[];
}

const histogramPools: HistogramPool[] = [];
/** A collected EdgeHistogram gives its slot back. */
const slotRelease =
  typeof FinalizationRegistry === "function"
    ? new FinalizationRegistry<{ pool: HistogramPool; slot: number }>(({ pool, slot }) => pool.free.push(slot))
    : null;

/**
 * A mergeable latency histogram in wasm memory: the same buckets, quantiles and
 * encoding as every WaitState SDK (the Rust core's histogram), for pulses that
 * carry real fleet quantiles. `record` never throws.
 *
 * @example
 * const h = new EdgeHistogram();
 * h.record(12.5);
 * JSON.stringify(h); // {"n":1,"s":12.5,"lo":12.5,"hi":12.5,"b":[51,1]}
 */
export class EdgeHistogram {
  private readonly pool: HistogramPool;
  private readonly slot: number;

  constructor() {
    let pool = histogramPools.find((p) => p.free.length > 0);
    if (pool === undefined) {
      const core = instantiate();
      pool = { core, free: Array.from({ length: core.ws_hist_slots() }, (_, i) => core.ws_hist_slots() - 1 - i) };
      histogramPools.push(pool);
    }
    this.pool = pool;
    this.slot = pool.free.pop()!;
    pool.core.ws_hist_reset(this.slot);
    slotRelease?.register(this, { pool, slot: this.slot });
  }

  /**
   * Records `times` observations of `valueMs`. Returns false, changing nothing,
   * for a value that is not a finite number ≥ 0 or a `times` that is not an
   * integer from 1 to 2^32 - 1.
   */
  record(valueMs: number, times = 1): boolean {
    if (typeof valueMs !== "number" || typeof times !== "number" || !Number.isInteger(times) || times < 1 || times > 0xffff_ffff)
      return false;
    return this.pool.core.ws_hist_record(this.slot, valueMs, times) === 0;
  }

  /** The q-quantile (0 ≤ q ≤ 1) in ms, or null when empty (or q is out of range). */
  quantile(q: number): number | null {
    if (typeof q !== "number") return null;
    const value = this.pool.core.ws_hist_quantile(this.slot, q);
    return Number.isNaN(value) ? null : value;
  }

  /** Observations recorded. */
  get count(): number {
    const { core } = this.pool;
    return new Float64Array(core.memory.buffer, core.ws_hist_encode(this.slot), 4)[0]!;
  }

  /** Empties the histogram. */
  reset(): void {
    this.pool.core.ws_hist_reset(this.slot);
  }

  /** The protocol's encoding, as a pulse carries it in `latencyHistogram`. */
  encode(): HistogramEncoding {
    const { core } = this.pool;
    const [n, s, lo, hi] = new Float64Array(core.memory.buffer, core.ws_hist_encode(this.slot), 4);
    const counts = new BigUint64Array(core.memory.buffer, core.ws_hist_counts_ptr(this.slot), HISTOGRAM_BUCKETS);
    const b: number[] = [];
    for (let i = 0; i < HISTOGRAM_BUCKETS; i++) {
      const c = counts[i]!;
      if (c !== BigInt(0)) b.push(i, Number(c));
    }
    return { n: n!, s: s!, lo: lo!, hi: hi!, b };
  }

  toJSON(): HistogramEncoding {
    return this.encode();
  }
}
