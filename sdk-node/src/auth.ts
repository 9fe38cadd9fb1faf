/**
 * The JWT lifecycle (seed: "Policy auth"): exchange the key pair for a token
 * at `POST /v1/auth/token` with a request signed like a pulse (the secret key
 * is never sent), refresh it 2 minutes before it expires, retry
 * with capped exponential backoff when the exchange fails. Failures go to
 * `onError`; pulses do not need the token, so they never wait for it.
 */
import { WaitStateError } from "./errors.js";
import { describeAnswer, httpRequest, safeJson } from "./http.js";
import { TOKEN_EXCHANGE_PATH } from "./protocol/constants.js";
import { createTokenExchangeHeaders } from "./signing.js";

/** Refresh this long before `expiresAt`. */
export const TOKEN_REFRESH_MARGIN_MS = 2 * 60_000;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 60_000;

export interface AuthManagerOptions {
  baseUrl: string;
  publishKey: string;
  secretKey: string;
  /** @default 10000 */
  timeoutMs?: number;
  onError?: (error: WaitStateError) => void;
  /** Called after each successful exchange. */
  onToken?: (token: string, orgId: string) => void;
}

export class AuthManager {
  token: string | null = null;
  orgId: string | null = null;
  /** Epoch ms the token expires; 0 while there is none. */
  expiresAt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private failures = 0;
  private inflight: Promise<boolean> | null = null;
  private stopped = false;
  private readonly abort = new AbortController();

  constructor(private readonly options: AuthManagerOptions) {}

  /** Exchanges the keys now and keeps the token fresh until {@link stop}. */
  start(): void {
    this.stopped = false;
    void this.authenticate();
  }

  /** The token, unless it has expired. */
  validToken(now: number = Date.now()): string | null {
    return this.token !== null && now < this.expiresAt ? this.token : null;
  }

  /** One exchange (shared by concurrent callers); schedules the next refresh or retry. Never rejects. */
  authenticate(): Promise<boolean> {
    if (this.inflight) return this.inflight;
    this.inflight = this.exchange().finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  /** The control plane refused the token: drop it and get a new one. */
  invalidate(): void {
    this.token = null;
    this.expiresAt = 0;
    if (!this.stopped) void this.authenticate();
  }

  stop(): void {
    this.stopped = true;
    this.abort.abort();
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private async exchange(): Promise<boolean> {
    const { baseUrl, publishKey, secretKey } = this.options;
    const outcome = await httpRequest(`${baseUrl}${TOKEN_EXCHANGE_PATH}`, {
      method: "POST",
      headers: createTokenExchangeHeaders(publishKey, secretKey),
      timeoutMs: this.options.timeoutMs ?? 10_000,
      signal: this.abort.signal,
    });
    if (this.stopped) return false;
    let error: WaitStateError | null = null;
    if (!outcome.ok) {
      error = new WaitStateError("AUTH_FAILED", `token exchange failed: ${outcome.reason}`);
    } else if (outcome.answer.status !== 200) {
      error = new WaitStateError("AUTH_FAILED", `token exchange refused: ${describeAnswer(outcome.answer)}`, outcome.answer.status);
    } else {
      const body = safeJson(outcome.answer.text) as { token?: unknown; expiresAt?: unknown; orgId?: unknown } | null;
      if (
        body === null ||
        typeof body.token !== "string" ||
        typeof body.orgId !== "string" ||
        typeof body.expiresAt !== "number" ||
        !Number.isFinite(body.expiresAt)
      ) {
        error = new WaitStateError("AUTH_FAILED", "token exchange answered without token, expiresAt and orgId", 200);
      } else {
        this.token = body.token;
        this.orgId = body.orgId;
        this.expiresAt = body.expiresAt;
        this.failures = 0;
        this.options.onToken?.(body.token, body.orgId);
        this.schedule(Math.max(RETRY_MIN_MS, body.expiresAt - TOKEN_REFRESH_MARGIN_MS - Date.now()));
        return true;
      }
    }
    this.failures++;
    this.options.onError?.(error);
    this.schedule(Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** (this.failures - 1)) * (0.8 + 0.4 * Math.random()));
    return false;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer !== null) clearTimeout(this.timer);
    // setTimeout holds at most ~24.8 days; a longer token is refreshed early, which is harmless.
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.authenticate();
    }, Math.min(delayMs, 2 ** 31 - 1));
    this.timer.unref();
  }
}
