/** The SDK's only I/O primitive: one HTTP request with a deadline, as a value, never a rejection. */

export interface HttpAnswer {
  status: number;
  headers: Headers;
  text: string;
}

export type HttpOutcome = { ok: true; answer: HttpAnswer } | { ok: false; reason: string; timedOut: boolean };

export interface HttpRequest {
  method: "GET" | "POST";
  headers?: Record<string, string>;
  body?: string;
  timeoutMs: number;
  /** Aborts the request early (the client's shutdown). */
  signal?: AbortSignal;
}

export async function httpRequest(url: string, init: HttpRequest): Promise<HttpOutcome> {
  const deadline = AbortSignal.timeout(init.timeoutMs);
  const signal = init.signal ? AbortSignal.any([init.signal, deadline]) : deadline;
  try {
    const res = await fetch(url, {
      method: init.method,
      ...(init.headers ? { headers: init.headers } : {}),
      ...(init.body !== undefined ? { body: init.body } : {}),
      signal,
    });
    const text = await res.text();
    return { ok: true, answer: { status: res.status, headers: res.headers, text } };
  } catch (err) {
    const timedOut = deadline.aborted;
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const where = endpoint(url);
    const reason = timedOut
      ? `no answer from ${where} within ${init.timeoutMs} ms`
      : (connectionFailure(cause?.code, where) ?? `${cause?.message ?? (err instanceof Error ? err.message : String(err))} (${where})`);
    return { ok: false, reason, timedOut };
  }
}

/** `host:port` of a URL, the port filled in from the scheme: what an operator checks first. */
export function endpoint(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || (u.protocol === "https:" ? "443" : "80")}`;
  } catch {
    return url;
  }
}

/** Node's socket error codes, said with the host and port they concern. */
function connectionFailure(code: string | undefined, where: string): string | null {
  switch (code) {
    case undefined:
      return null;
    case "ECONNREFUSED":
      return `connection refused by ${where}`;
    case "ECONNRESET":
    case "UND_ERR_SOCKET":
      return `connection reset by ${where}`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `cannot resolve the host of ${where} (${code})`;
    case "ETIMEDOUT":
    case "UND_ERR_CONNECT_TIMEOUT":
      return `connecting to ${where} timed out`;
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return `${where} is unreachable (${code})`;
    default:
      return `${code} from ${where}`;
  }
}

/** The `{"error":{"code","message"}}` of an error answer, or a short excerpt of whatever came back. */
export function describeAnswer(answer: HttpAnswer): string {
  try {
    const body = JSON.parse(answer.text) as { error?: { code?: unknown; message?: unknown } };
    if (body.error && typeof body.error.code === "string")
      return `${answer.status} ${body.error.code}: ${String(body.error.message ?? "")}`;
  } catch {
    // not JSON
  }
  return `${answer.status} ${answer.text.slice(0, 120)}`;
}

/** An answer's JSON, or null when it is not JSON. */
export function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}
