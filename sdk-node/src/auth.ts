/**
 * The JWT lifecycle (docs/protocol.md#the-jwt-exchange): exchange the key pair
 * for a token at `POST /v1/auth/token` with a request signed like a pulse (the
 * secret key is never sent), refresh it 2 minutes before it expires, retry with
 * capped exponential backoff when the exchange fails (the rules are
 * `stepToken` in protocol/src/lifecycle.ts). Failures go to `onError`; pulses
 * do not need the token, so they never wait for it.
 */
import { WaitStateError } from "./errors.js";
import { describeAnswer, httpRequest, safeJson } from "./http.js";
import { TOKEN_EXCHANGE_PATH } from "../../protocol/src/constants.js";
import { initialToken, stepToken, tokenUsable, type TokenEvent, type TokenState } from "../../protocol/src/lifecycle.js";
import { createTokenExchangeHeaders } from "./signing.js";

export { TOKEN_REFRESH_MARGIN_MS } from "../../protocol/src/lifecycle.js";

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
  private life: TokenState = initialToken();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private inflight: Promise<boolean> | null = null;
  private stopped = false;
  private readonly abort = new AbortController();

  constructor(private readonly options: AuthManagerOptions) {}

  /** Epoch ms the token expires; 0 while there is none. */
  get expiresAt(): number {
    return this.life.expiresAt;
  }

  /** Exchanges the keys now and keeps the token fresh until {@link stop}. */
  start(): void {
    this.stopped = false;
    this.advance({ type: "token_start", now: Date.now() });
    void this.authenticate();
  }

  /** The token, unless it has expired. */
  validToken(now: number = Date.now()): string | null {
    return this.token !== null && tokenUsable(this.life, now) ? this.token : null;
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
    this.advance({ type: "token_rejected", now: Date.now() });
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
        this.advance({ type: "token_issued", now: Date.now(), expiresAt: body.expiresAt });
        this.options.onToken?.(body.token, body.orgId);
        this.schedule();
        return true;
      }
    }
    this.advance({ type: "token_failed", now: Date.now(), random: Math.random() });
    this.options.onError?.(error);
    this.schedule();
    return false;
  }

  private advance(event: TokenEvent): void {
    this.life = stepToken(this.life, event);
  }

  /** Arms the timer for the next exchange the rules have scheduled. */
  private schedule(): void {
    if (this.stopped || this.life.refreshAt === null) return;
    const delayMs = Math.max(0, this.life.refreshAt - Date.now());
    if (this.timer !== null) clearTimeout(this.timer);
    // setTimeout holds at most ~24.8 days; a longer token is refreshed early, which is harmless.
    this.timer = setTimeout(
      () => {
        this.timer = null;
        void this.authenticate();
      },
      Math.min(delayMs, 2 ** 31 - 1),
    );
    this.timer.unref();
  }
}
