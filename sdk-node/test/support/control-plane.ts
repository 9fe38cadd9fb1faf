/**
 * A stand-in control plane for SDK tests: a real node:http server on
 * 127.0.0.1 that speaks the wire protocol (token exchange, HMAC-verified
 * pulses with per-instance idempotency, JWT-scoped policy reads with ETags) and
 * misbehaves on command; the push channel (docs/protocol.md#push) too:
 * `GET /v1/policy/:orgId/subscribe` upgrades to a WebSocket that is sent the
 * policy at once and again at every {@link FakeControlPlane.setPolicy}. The real control plane runs under wrangler dev in the
 * e2e test; this one exists to inject the faults the real one can't be told to
 * have.
 */
import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { acceptHandshake, refuseUpgrade, ServerSocket } from "./ws-server.js";

export type Fault =
  /** Normal service. */
  | "none"
  /** Every request answers 500 with an error body. */
  | "error500"
  /** Every request answers 200 with a body that is not JSON. */
  | "garbage"
  /** Pulses are accepted and counted, but the policy in the answer fails the schema. */
  | "bad_policy"
  /** Requests are read and never answered. */
  | "hang"
  /** Pulses are accepted and counted, then the connection is dropped without an answer. */
  | "accept_then_drop";

export interface ReceivedPulse {
  body: Record<string, unknown> & { instanceId: string; usageDelta: number; bouncedUnits: number; ts: number };
  counted: boolean;
  receivedAt: number;
}

export interface WirePolicy {
  version: number;
  globalMaxWeight: number | null;
  tagMaxWeights: Record<string, number | null>;
  killSignal: boolean;
  status: "ok" | "over_limit" | "cap_exceeded" | "suspended";
  pulseInterval: number;
  leaseDurationSeconds: number;
  issuedAt: number;
  retryAfterSeconds?: number;
}

export interface ControlPlaneOptions {
  /** The policy's pulseInterval, ms. */
  pulseInterval?: number;
  leaseDurationSeconds?: number;
  /** JWT lifetime the token exchange grants, ms. */
  tokenTtlMs?: number;
}

export class FakeControlPlane {
  readonly publishKey = `pk_test_${randomUUID().slice(0, 8)}`;
  readonly secretKey = `sk_test_${randomUUID()}`;
  readonly orgId = "org_test";
  readonly pulses: ReceivedPulse[] = [];
  /** Answer pulses with `x-waitstate-duplicate-instance: true` (another process shares the instanceId). */
  duplicateInstance = false;
  /** Every request seen, as `METHOD path`. */
  readonly requests: string[] = [];
  readonly tokensIssued: string[] = [];
  fault: Fault = "none";
  /** Delay before each answer, ms. */
  delayMs = 0;
  /** Answer every pulse with this status instead (policy reads keep working). */
  pulseFailStatus: number | null = null;
  /** Status of every policy read answered, in order. */
  readonly policyReadStatuses: number[] = [];
  /** Answer to the token exchange with this status instead (e.g. 401). */
  tokenStatus = 200;
  tokenTtlMs: number;
  policy: WirePolicy;
  /** Push subscriptions accepted, in order (closed ones included). */
  readonly subscribers: ServerSocket[] = [];
  /** Refuse subscriptions with this status (404: a control plane without push). */
  subscribeStatus: number | null = null;
  /** Push each {@link setPolicy} to the open subscribers. */
  autoPush = true;
  private readonly lastTs = new Map<string, number>();
  private server: Server | null = null;
  private port = 0;
  private readonly sockets = new Set<Socket>();
  private waiters: Array<() => void> = [];
  private unrefd = false;

  constructor(options: ControlPlaneOptions = {}) {
    this.tokenTtlMs = options.tokenTtlMs ?? 15 * 60_000;
    this.policy = {
      version: 1,
      globalMaxWeight: null,
      tagMaxWeights: {},
      killSignal: false,
      status: "ok",
      pulseInterval: options.pulseInterval ?? 100,
      leaseDurationSeconds: options.leaseDurationSeconds ?? 60,
      issuedAt: Date.now(),
    };
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get listening(): boolean {
    return this.server !== null;
  }

  /** Starts listening (again, on the same port after {@link stop}). */
  async start(): Promise<this> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => this.subscribe(req, socket, head));
    server.on("connection", (socket) => {
      if (this.unrefd) socket.unref();
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
    return this;
  }

  /** Lets the process exit while this server (and its connections) are open. */
  unref(): void {
    this.unrefd = true;
    this.server?.unref();
    for (const socket of this.sockets) socket.unref();
  }

  /** Stops listening and drops every connection: clients now get ECONNREFUSED. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Replaces fields of the policy; the version goes up by one. */
  setPolicy(patch: Partial<Omit<WirePolicy, "version" | "issuedAt">>): WirePolicy {
    this.policy = { ...this.policy, ...patch, version: this.policy.version + 1, issuedAt: Date.now() };
    if (this.autoPush) this.pushPolicy();
    return this.policy;
  }

  /** Sends the current policy to every open subscriber. */
  pushPolicy(policy: WirePolicy = this.policy): void {
    for (const sub of this.openSubscribers()) sub.sendJson(pushMessage(policy));
  }

  openSubscribers(): ServerSocket[] {
    return this.subscribers.filter((s) => !s.ended && s.clientClose === null);
  }

  private subscribe(req: IncomingMessage, socket: Duplex, _head: Buffer): void {
    const url = new URL(req.url ?? "/", "http://x");
    this.requests.push(`UPGRADE ${url.pathname}`);
    const path = /^\/v1\/policy\/([^/]+)\/subscribe$/.exec(url.pathname);
    const auth = req.headers.authorization ?? "";
    const token = auth.startsWith("Bearer ") ? auth.slice(7) : "";
    if (!path) refuseUpgrade(socket, 404, "NOT_FOUND", "no route");
    else if (this.subscribeStatus !== null) refuseUpgrade(socket, this.subscribeStatus, "NOT_FOUND", "injected subscribe refusal");
    else if (!this.tokensIssued.includes(token)) refuseUpgrade(socket, 401, "INVALID_TOKEN", "bad token");
    else if (path[1] !== this.orgId) refuseUpgrade(socket, 403, "FORBIDDEN", "other org");
    else if (acceptHandshake(req, socket)) {
      const sub = new ServerSocket(socket, req);
      this.subscribers.push(sub);
      sub.sendJson(pushMessage(this.policy));
    }
    this.notify();
  }

  /** Sum of `usageDelta` over counted pulses (what a usage ledger would hold). */
  countedUsage(instanceId?: string): number {
    return this.pulses
      .filter((p) => p.counted && (instanceId === undefined || p.body.instanceId === instanceId))
      .reduce((n, p) => n + p.body.usageDelta, 0);
  }

  countedBounced(): number {
    return this.pulses.filter((p) => p.counted).reduce((n, p) => n + p.body.bouncedUnits, 0);
  }

  /** Resolves once `predicate` holds, checked after every request; rejects after `timeoutMs`. */
  async waitFor(predicate: () => boolean, timeoutMs = 5000, what = "condition"): Promise<void> {
    if (predicate()) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const check = () => {
        if (!predicate()) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve();
      };
      this.waiters.push(check);
    });
  }

  /** Waits for `n` more pulses (counted or not) than have arrived so far. */
  async nextPulses(n = 1, timeoutMs = 5000): Promise<void> {
    const target = this.pulses.length + n;
    await this.waitFor(() => this.pulses.length >= target, timeoutMs, `${n} more pulse(s)`);
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString("utf8");
    const url = new URL(req.url ?? "/", "http://x");
    this.requests.push(`${req.method} ${url.pathname}`);
    try {
      if (this.fault === "hang") return; // never answered; stop() destroys the socket
      if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
      if (this.fault === "error500") {
        return send(res, 500, { error: { code: "INTERNAL", message: "injected failure" } });
      }
      if (this.fault === "garbage") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end("<html>definitely not json");
        return;
      }
      if (req.method === "POST" && url.pathname === "/v1/auth/token") return this.token(req, raw, res);
      if (req.method === "POST" && url.pathname === "/v1/pulse") return this.pulse(req, raw, res);
      const policyPath = /^\/v1\/policy\/([^/]+)$/.exec(url.pathname);
      if (req.method === "GET" && policyPath) return this.policyRead(req, res, policyPath[1]!);
      send(res, 404, { error: { code: "NOT_FOUND", message: "no route" } });
    } finally {
      this.notify();
    }
  }

  /** The signed exchange as the real control plane checks it; a body carrying the secret is refused. */
  private token(req: IncomingMessage, raw: string, res: ServerResponse): void {
    if (this.tokenStatus !== 200) {
      return send(res, this.tokenStatus, { error: { code: "INVALID_SIGNATURE", message: "injected token failure" } });
    }
    if (raw.includes("secretKey") || raw.includes(this.secretKey)) {
      return send(res, 401, { error: { code: "UNSIGNED_TOKEN_EXCHANGE", message: "the secret key was sent" } });
    }
    const id = req.headers["x-waitstate-id"];
    const timestamp = req.headers["x-waitstate-timestamp"];
    const signature = req.headers["x-waitstate-signature"];
    if (id !== this.publishKey || typeof timestamp !== "string" || typeof signature !== "string") {
      return send(res, 401, { error: { code: "UNAUTHORIZED", message: "unsigned or unknown key" } });
    }
    if (Math.abs(Date.now() - Number(timestamp)) > 5 * 60_000) {
      return send(res, 401, { error: { code: "TIMESTAMP_SKEW", message: "timestamp too far off" } });
    }
    const expected = createHmac("sha256", this.secretKey).update(`POST\n/v1/auth/token\n${raw}.${timestamp}`).digest();
    const given = Buffer.from(signature, "hex");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return send(res, 401, { error: { code: "INVALID_SIGNATURE", message: "bad signature" } });
    }
    const token = `jwt_${randomUUID()}`;
    this.tokensIssued.push(token);
    send(res, 200, { token, expiresAt: Date.now() + this.tokenTtlMs, orgId: this.orgId });
  }

  private pulse(req: IncomingMessage, raw: string, res: ServerResponse): void {
    if (this.pulseFailStatus !== null) {
      return send(res, this.pulseFailStatus, { error: { code: "UNAVAILABLE", message: "injected pulse failure" } });
    }
    const id = req.headers["x-waitstate-id"];
    const timestamp = req.headers["x-waitstate-timestamp"];
    const signature = req.headers["x-waitstate-signature"];
    if (id !== this.publishKey || typeof timestamp !== "string" || typeof signature !== "string") {
      return send(res, 401, { error: { code: "INVALID_SIGNATURE", message: "missing or unknown key" } });
    }
    if (Math.abs(Date.now() - Number(timestamp)) > 5 * 60_000) {
      return send(res, 401, { error: { code: "TIMESTAMP_SKEW", message: "timestamp too far off" } });
    }
    const expected = createHmac("sha256", this.secretKey).update(`${raw}.${timestamp}`).digest();
    const given = Buffer.from(signature, "hex");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return send(res, 401, { error: { code: "INVALID_SIGNATURE", message: "bad signature" } });
    }
    if (Buffer.byteLength(raw) > 64 * 1024) {
      return send(res, 413, { error: { code: "PAYLOAD_TOO_LARGE", message: "over 64 KiB" } });
    }
    let body: ReceivedPulse["body"];
    try {
      body = JSON.parse(raw) as ReceivedPulse["body"];
    } catch {
      return send(res, 400, { error: { code: "INVALID_JSON", message: "bad json" } });
    }
    const invalid = checkPulse(body);
    if (invalid) return send(res, 400, { error: { code: "INVALID_PULSE", message: invalid } });
    const last = this.lastTs.get(body.instanceId);
    const counted = last === undefined || body.ts > last;
    if (counted) this.lastTs.set(body.instanceId, body.ts);
    this.pulses.push({ body, counted, receivedAt: Date.now() });
    if (this.fault === "accept_then_drop") {
      req.socket.destroy();
      return;
    }
    res.setHeader("x-waitstate-counted", String(counted));
    if (this.duplicateInstance) res.setHeader("x-waitstate-duplicate-instance", "true");
    if (this.fault === "bad_policy") {
      return send(res, 200, { ...this.policy, globalMaxWeight: "lots", pulseInterval: -5 });
    }
    res.setHeader("etag", `"${this.policy.version}"`);
    send(res, 200, this.policy);
  }

  private policyRead(req: IncomingMessage, res: ServerResponse, orgId: string): void {
    const original = res.writeHead.bind(res);
    res.writeHead = ((status: number, ...rest: unknown[]) => {
      this.policyReadStatuses.push(status);
      return (original as (...a: unknown[]) => ServerResponse)(status, ...rest);
    }) as typeof res.writeHead;
    const auth = req.headers.authorization ?? "";
    const token = auth.startsWith("Bearer ") ? auth.slice(7) : "";
    if (!this.tokensIssued.includes(token)) return send(res, 401, { error: { code: "UNAUTHORIZED", message: "bad token" } });
    if (orgId !== this.orgId) return send(res, 403, { error: { code: "FORBIDDEN", message: "other org" } });
    if (this.fault === "bad_policy") return send(res, 200, { ...this.policy, status: "maybe" });
    const etag = `"${this.policy.version}"`;
    if (req.headers["if-none-match"] === etag) {
      res.writeHead(304, { etag });
      res.end();
      return;
    }
    res.setHeader("etag", etag);
    send(res, 200, this.policy);
  }
}

/** The checks of the real PulseSchema that matter to these tests. */
function checkPulse(body: ReceivedPulse["body"]): string | null {
  if (typeof body !== "object" || body === null) return "not an object";
  if (typeof body.instanceId !== "string" || body.instanceId.length === 0) return "instanceId";
  for (const field of ["usageDelta", "bouncedUnits", "ts"] as const) {
    if (!Number.isSafeInteger(body[field]) || body[field] < 0) return field;
  }
  if (body.bouncedUnits > body.usageDelta) return "bouncedUnits cannot exceed usageDelta";
  if (typeof body.metrics !== "object" || body.metrics === null) return "metrics";
  if (body.tagMetrics !== undefined && !Array.isArray(body.tagMetrics)) return "tagMetrics";
  return null;
}

/** The push contract's message for a policy. */
export function pushMessage(policy: WirePolicy): { type: "policy"; version: number; etag: string; policy: WirePolicy } {
  return { type: "policy", version: policy.version, etag: `"${policy.version}"`, policy };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<FakeControlPlane> {
  return new FakeControlPlane(options).start();
}
