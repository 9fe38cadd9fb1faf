/**
 * The push channel (docs/protocol.md#push, docs/client.md#push): one
 * WebSocket to `GET /v1/policy/:orgId/subscribe?siteId=…`, authenticated with
 * the SDK's JWT, over which the site's aggregator sends every new policy.
 *
 * Push is an accelerator, never a dependency: pulses and policy reads go on
 * exactly as without it, and whatever happens to the socket is reported to
 * `onError` and answered by reconnecting (1 s doubling to 60 s, full jitter).
 * A connection that opens is sent the current policy first, so a client that
 * missed pushes while disconnected resyncs at once.
 *
 * This class only keeps the connection; what a pushed policy does to the
 * client (validation, version order, no lease restart) is the client's
 * (`WaitState`).
 */
import { WaitStateError } from "./errors.js";
import { describeAnswer } from "./http.js";
import { CLOSE, connectWebSocket, type WebSocketConnection } from "./websocket.js";

/** The first reconnect waits up to this long (full jitter: a uniform draw below it)… */
export const PUSH_BACKOFF_MIN_MS = 1000;
/** …doubling with each failure in a row, up to this. */
export const PUSH_BACKOFF_MAX_MS = 60_000;
/** A connection that stayed open this long counts as healthy: the next reconnect starts from the first step again. */
export const PUSH_STABLE_MS = 30_000;
/**
 * A text `ping` goes up this often (the server's auto-response answers `pong`
 * without waking the aggregator); a ping left unanswered until the next one is
 * due means a dead connection. The contract allows one every 15 s at most.
 */
export const PUSH_KEEPALIVE_MS = 30_000;
/** A pushed message larger than this closes the connection (1009). Policies are a few KB. */
export const PUSH_MAX_MESSAGE_BYTES = 1 << 20;

/** Close codes of the contract. */
export const PUSH_CLOSE = {
  keyRevoked: 4001,
  tokenExpired: 4002,
  flooding: CLOSE.policyViolation,
  serverError: CLOSE.serverError,
} as const;

/** A `{"type":"policy",…}` message whose envelope is well formed; `policy` is not validated yet. */
export interface PushedPolicy {
  version: number;
  etag: string | null;
  policy: unknown;
}

/** The token source: the client's AuthManager. */
export interface PushAuth {
  readonly orgId: string | null;
  validToken(): string | null;
  /** The control plane refused the token: drop it and exchange the keys again. */
  invalidate(): void;
}

export interface PushSubscriberOptions {
  baseUrl: string;
  siteId: string | undefined;
  auth: PushAuth;
  /** Deadline for the opening handshake, ms. */
  timeoutMs: number;
  onPolicy: (message: PushedPolicy) => void;
  onError: (error: WaitStateError) => void;
  /** Random draws in [0, 1) for the jitter (tests fix them). @default Math.random */
  random?: () => number;
  /** @default {@link PUSH_KEEPALIVE_MS} */
  keepAliveMs?: number;
  /** @default {@link PUSH_BACKOFF_MIN_MS} */
  backoffMinMs?: number;
}

/** The delay before reconnect attempt `failures` (1 for the first after a failure): full jitter over 1 s × 2^(failures−1), at most 60 s. */
export function pushBackoffMs(failures: number, random: number, minMs = PUSH_BACKOFF_MIN_MS): number {
  const cap = Math.min(PUSH_BACKOFF_MAX_MS, minMs * 2 ** Math.min(Math.max(failures - 1, 0), 16));
  return Math.floor(random * cap);
}

type State = "idle" | "connecting" | "open" | "waiting" | "paused" | "stopped";

export class PushSubscriber {
  private state: State = "idle";
  private connection: WebSocketConnection | null = null;
  private failures = 0;
  private openedAt = 0;
  private lastReceivedAt = 0;
  private lastPingAt = 0;
  /** The token the open (or opening) connection was authenticated with. */
  private tokenInUse: string | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private keepAliveTimer: ReturnType<typeof setInterval> | null = null;
  private readonly random: () => number;

  constructor(private readonly options: PushSubscriberOptions) {
    this.random = options.random ?? Math.random;
  }

  /** True while a connection is open. */
  get connected(): boolean {
    return this.state === "open";
  }

  /** A token was issued (the first, or a new one): connect if the subscriber was waiting for one. */
  tokenReady(): void {
    if (this.state === "idle") this.connect();
  }

  /** Closes the socket (1000) and stops reconnecting. */
  stop(): void {
    if (this.state === "stopped") return;
    this.halt("stopped", "client shutdown");
  }

  /** `suspended`: the client stands down and sends nothing, so the socket closes until {@link resume}. */
  pause(): void {
    if (this.state === "stopped" || this.state === "paused") return;
    this.halt("paused", "standing down (suspended)");
  }

  /** The stand-down is over: subscribe again. */
  resume(): void {
    if (this.state !== "paused") return;
    this.state = "idle";
    this.connect();
  }

  private halt(state: "stopped" | "paused", reason: string): void {
    this.state = state;
    this.clearTimers();
    const connection = this.connection;
    this.connection = null;
    connection?.close(CLOSE.normal, reason);
  }

  private connect(): void {
    const token = this.options.auth.validToken();
    const orgId = this.options.auth.orgId;
    // No token yet (or it lapsed): the next exchange calls tokenReady().
    if (token === null || orgId === null) {
      this.state = "idle";
      return;
    }
    this.state = "connecting";
    this.tokenInUse = token;
    const query = this.options.siteId !== undefined ? `?siteId=${encodeURIComponent(this.options.siteId)}` : "";
    const url = `${this.options.baseUrl}/v1/policy/${encodeURIComponent(orgId)}/subscribe${query}`;
    void connectWebSocket(url, {
      headers: { authorization: `Bearer ${token}` },
      timeoutMs: this.options.timeoutMs,
      maxMessageBytes: PUSH_MAX_MESSAGE_BYTES,
      handlers: {
        onText: (text) => this.message(text),
        onBinary: () => this.fail("INVALID_POLICY", "ignored a binary message on the push channel (the contract sends JSON text)"),
        onActivity: () => {
          this.lastReceivedAt = Date.now();
        },
        onClose: (code, reason, byPeer) => this.closed(code, reason, byPeer),
      },
    }).then((outcome) => {
      if (this.state === "stopped" || this.state === "paused") {
        if (outcome.ok) outcome.connection.close(CLOSE.normal, this.state === "stopped" ? "client shutdown" : "standing down (suspended)");
        return;
      }
      if (!outcome.ok) {
        if (outcome.status === 401) this.options.auth.invalidate();
        const why =
          outcome.status === 0
            ? outcome.reason
            : describeAnswer({ status: outcome.status, headers: new Headers(), text: outcome.body || outcome.reason });
        return this.retry(`the push channel could not be opened (${why})`, outcome.status);
      }
      // A close may already have been reported from the bytes that came with the upgrade.
      if (this.state !== "connecting") return;
      this.connection = outcome.connection;
      this.state = "open";
      this.openedAt = this.lastReceivedAt = this.lastPingAt = Date.now();
      this.armKeepAlive();
    });
  }

  private message(text: string): void {
    // A paused or stopped subscriber's socket may still deliver frames while its close is under way: they are not installed.
    if (this.state === "paused" || this.state === "stopped") return;
    if (text === "pong") return; // the keep-alive's answer
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      this.fail("INVALID_POLICY", `ignored a push message that is not JSON (${JSON.stringify(text.slice(0, 60))})`);
      return;
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      this.fail("INVALID_POLICY", "ignored a push message that is not a JSON object");
      return;
    }
    const { type, version, etag, policy } = body as Record<string, unknown>;
    // Only `policy` messages are defined; another type is a later addition this client does not know, not a fault.
    if (type !== "policy") return;
    if (typeof version !== "number" || !Number.isSafeInteger(version) || version < 0) {
      this.fail("INVALID_POLICY", "ignored a pushed policy without a non-negative integer version");
      return;
    }
    this.options.onPolicy({ version, etag: typeof etag === "string" && etag !== "" ? etag : null, policy });
  }

  private closed(code: number, reason: string, byPeer: boolean): void {
    // A connection that fails during its handshake never became ours: connect()'s outcome reports it.
    const wasOurs = this.connection !== null || this.state === "connecting";
    this.connection = null;
    this.stopKeepAlive();
    if (this.state === "stopped" || this.state === "paused" || !wasOurs) return;
    if (this.openedAt > 0 && Date.now() - this.openedAt >= PUSH_STABLE_MS) this.failures = 0;
    this.openedAt = 0;
    const said = `${code}${reason ? ` ${reason}` : ""}`;
    if (byPeer && (code === PUSH_CLOSE.keyRevoked || code === PUSH_CLOSE.tokenExpired)) {
      // A new token first, unless a fresher one than the socket's is already held (the usual refresh came first).
      if (this.options.auth.validToken() === this.tokenInUse) this.options.auth.invalidate();
      // An expired token is routine (the socket outlives the JWT it opened with): reconnect quietly.
      if (code === PUSH_CLOSE.tokenExpired) {
        this.retry(null, 0);
        return;
      }
      this.retry(`the control plane closed the push channel: ${said}; the key was revoked`, 401);
      return;
    }
    if (byPeer && code === CLOSE.normal) {
      this.retry(null, 0);
      return;
    }
    this.retry(byPeer ? `the control plane closed the push channel: ${said}` : `the push channel was lost (${said})`, 0);
  }

  /** Reports `why` (unless null) and reconnects after the backoff. */
  private retry(why: string | null, status: number): void {
    if (this.state === "stopped" || this.state === "paused") return;
    this.failures++;
    const delay = pushBackoffMs(this.failures, this.random(), this.options.backoffMinMs);
    if (why !== null) this.fail("PUSH_FAILED", `${why}; reconnecting in ${(delay / 1000).toFixed(1)} s`, status);
    this.state = "waiting";
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.state === "waiting") this.connect();
    }, delay);
    this.retryTimer.unref();
  }

  private armKeepAlive(): void {
    const every = this.options.keepAliveMs ?? PUSH_KEEPALIVE_MS;
    this.keepAliveTimer = setInterval(() => {
      const connection = this.connection;
      if (connection === null) return;
      if (this.lastReceivedAt < this.lastPingAt) {
        // Nothing, not even the pong, since the last ping: a half-open socket. Drop it and reconnect.
        connection.terminate(CLOSE.abnormal, `no answer to a ping within ${every} ms`);
        return;
      }
      this.lastPingAt = Date.now();
      connection.send("ping");
    }, every);
    this.keepAliveTimer.unref();
  }

  private stopKeepAlive(): void {
    if (this.keepAliveTimer !== null) clearInterval(this.keepAliveTimer);
    this.keepAliveTimer = null;
  }

  private clearTimers(): void {
    this.stopKeepAlive();
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private fail(code: "PUSH_FAILED" | "INVALID_POLICY", message: string, status = 0): void {
    this.options.onError(new WaitStateError(code, message, status));
  }
}
