/**
 * The edge client's engine for runtimes without WebAssembly (Fastly Compute):
 * the protocol's TypeScript gate and histogram — the Node SDK's, checked
 * against the same vectors as the wasm core — and the HMAC of Web Crypto.
 */
import { MAX_TAGS_PER_POLICY } from "../../protocol/src/constants.js";
import { LocalGate } from "../../protocol/src/gate.js";
import { LatencyHistogram } from "../../protocol/src/histogram.js";
import type { WirePolicy } from "../../protocol/src/policy.js";
import type { ClientEngine, EngineGate, EngineGateOptions } from "./engine.js";
import type { EdgeCounts, GateResult } from "./core.js";

class TypeScriptGate implements EngineGate {
  // As many tags as the wasm core's table: later ones are counted under `__other__`.
  private readonly local: LocalGate;

  constructor(options: EngineGateOptions) {
    this.local = new LocalGate({
      safeModeStrategy: options.safeModeStrategy,
      safeModeMaxRps: options.safeModeMaxRps,
      maxTags: MAX_TAGS_PER_POLICY,
    });
  }

  gateAt(tag: string | undefined, weight: number | undefined, now: number): GateResult {
    return this.local.gate(tag, weight, now);
  }

  takeCounts(): EdgeCounts {
    return this.local.takeCounts();
  }

  installParsed(policy: WirePolicy, leaseSeconds: number, syncedAt: number): string | null {
    this.local.update(leaseSeconds === policy.leaseDurationSeconds ? policy : { ...policy, leaseDurationSeconds: leaseSeconds }, syncedAt);
    return null;
  }

  markSynced(syncedAt: number): void {
    this.local.markSynced(syncedAt);
  }
}

const encoder = new TextEncoder();
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
/** The imported key of the last secret: a client signs with one secret, so one import per isolate. */
let cachedKey: { secret: string; key: Promise<CryptoKey> } | null = null;

async function sign(body: string, timestamp: string, secretKey: string): Promise<string> {
  if (cachedKey === null || cachedKey.secret !== secretKey) {
    // Web Crypto refuses an empty key; HMAC pads every key with zeros to the block size, so one zero byte signs the same.
    const raw = secretKey.length === 0 ? new Uint8Array(1) : encoder.encode(secretKey);
    const key = crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    cachedKey = { secret: secretKey, key };
  }
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", await cachedKey.key, encoder.encode(`${body}.${timestamp}`)));
  let hex = "";
  for (const byte of mac) hex += HEX[byte];
  return hex;
}

export const typescriptEngine: ClientEngine = {
  notReady: () => null,
  gate: (options) => new TypeScriptGate(options),
  histogram: () => new LatencyHistogram(),
  sign,
};
