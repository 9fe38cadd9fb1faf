/**
 * The management API client: fetch with a timeout, the bearer token, and every
 * failure turned into a CliError with the right exit code and a message that
 * says what to do. A wrong URL is told apart from a wrong token by asking
 * `GET /healthz`, whose `service` names a WaitState control plane.
 */
import { CliError, EXIT } from "./errors.js";

export const SERVICE_NAME = "waitstate-control-plane";

export interface ApiErrorBody {
  error: { code: string; message: string };
}

function isErrorBody(value: unknown): value is ApiErrorBody {
  if (typeof value !== "object" || value === null) return false;
  const e = (value as { error?: unknown }).error;
  return (
    typeof e === "object" &&
    e !== null &&
    typeof (e as { code?: unknown }).code === "string" &&
    typeof (e as { message?: unknown }).message === "string"
  );
}

/** Items asked for per page when the CLI reads a whole listing (the API's maximum). */
const LIST_PAGE_SIZE = 1000;

export interface RequestOptions {
  query?: Record<string, string | number | undefined | null>;
  body?: unknown;
  /** Send the bearer token (default true). */
  auth?: boolean;
  /** API field → CLI flag, so validation messages can name the flag to fix. */
  fieldFlags?: Record<string, string>;
}

/** Normalises a control-plane URL (scheme required, no trailing slash), or a usage error. */
export function normalizeUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CliError(EXIT.USAGE, `"${raw}" is not a URL`, [
      "Give the control plane's address with its scheme, e.g. --url https://waitstate.example.workers.dev or --url http://127.0.0.1:8787",
    ]);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new CliError(EXIT.USAGE, `"${raw}" is not an http(s) URL`, [
      "Give the control plane's address, e.g. --url https://waitstate.example.workers.dev",
    ]);
  }
  if (url.search || url.hash) throw new CliError(EXIT.USAGE, `"${raw}": give the control plane's base URL without a query or fragment`);
  return url.toString().replace(/\/+$/, "");
}

function networkReason(err: unknown): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === "TimeoutError" || e?.name === "AbortError") return "timed out";
  const code = e?.cause?.code;
  if (code) return code === "ECONNREFUSED" ? "connection refused" : code === "ENOTFOUND" ? "host not found" : code;
  return e?.cause?.message ?? e?.message ?? String(err);
}

export class Api {
  constructor(
    readonly baseUrl: string,
    private readonly token: string | null,
    private readonly timeoutMs = 15_000,
  ) {}

  private unreachable(reason: string): CliError {
    return new CliError(EXIT.UNREACHABLE, `could not reach a WaitState control plane at ${this.baseUrl} (${reason})`, [
      "Check the URL and that the control plane is running; to change it: waitstate login --url <url> --token <token>",
    ]);
  }

  private notWaitState(what: string): CliError {
    return new CliError(EXIT.UNREACHABLE, `${this.baseUrl} is not a WaitState control plane (${what})`, [
      `Check the URL: it is the address of the control-plane Worker, whose GET /healthz answers {"service":"${SERVICE_NAME}"}.`,
    ]);
  }

  private async send(method: string, path: string, options: RequestOptions): Promise<Response> {
    const url = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(options.query ?? {}))
      if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { accept: "application/json", "user-agent": "waitstate-cli/0.1.0" };
    if (options.auth !== false && this.token) headers.authorization = `Bearer ${this.token}`;
    if (options.body !== undefined) headers["content-type"] = "application/json";
    try {
      return await fetch(url, {
        method,
        headers,
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        redirect: "manual",
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw this.unreachable(networkReason(err));
    }
  }

  /** `GET /healthz`: resolves with its body when this is a WaitState control plane, else a CliError (exit 5). */
  async health(): Promise<{ ok: boolean; service: string; version?: string }> {
    const res = await this.send("GET", "/healthz", { auth: false });
    const text = await res.text().catch(() => "");
    let body: unknown = null;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: not ours
    }
    const service = (body as { service?: unknown } | null)?.service;
    if (!res.ok || service !== SERVICE_NAME) {
      const what = !res.ok
        ? `GET /healthz answered HTTP ${res.status}`
        : body === null
          ? "GET /healthz did not answer JSON"
          : `GET /healthz names service ${JSON.stringify(service ?? null)}`;
      throw this.notWaitState(what);
    }
    return body as { ok: boolean; service: string; version?: string };
  }

  /**
   * A Server-Sent Events stream (`GET path`): yields each event until the
   * server ends the stream or `signal` aborts. A refusal throws as `request`
   * does; a broken connection throws exit 5 (the caller may reconnect).
   */
  async *events(path: string, signal: AbortSignal): AsyncGenerator<{ event: string; data: string }> {
    const headers: Record<string, string> = { accept: "text/event-stream", "user-agent": "waitstate-cli/0.1.0" };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let res: Response;
    try {
      res = await fetch(new URL(this.baseUrl + path), { headers, redirect: "manual", signal });
    } catch (err) {
      if (signal.aborted) return;
      throw this.unreachable(networkReason(err));
    }
    if (!res.ok || res.body === null || !res.headers.get("content-type")?.startsWith("text/event-stream")) {
      const text = await res.text().catch(() => "");
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
      if (!res.ok && isErrorBody(body)) throw this.apiError(res.status, body, "GET", path, {});
      await this.health();
      throw new CliError(EXIT.FAILURE, `unexpected answer to GET ${path}: HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ""}`);
    }
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true }).replaceAll("\r\n", "\n");
        for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = "message";
          const data: string[] = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
          }
          if (data.length > 0) yield { event, data: data.join("\n") };
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      throw this.unreachable(networkReason(err));
    }
  }

  async request<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const res = await this.send(method, path, options);
    const text = await res.text().catch(() => "");
    let body: unknown;
    try {
      body = text === "" ? null : JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (res.ok && body !== undefined) return body as T;
    if (!res.ok && isErrorBody(body)) throw this.apiError(res.status, body, method, path, options);
    // Not the API's JSON: find out whether this is a WaitState control plane at all.
    await this.health();
    throw new CliError(EXIT.FAILURE, `unexpected answer to ${method} ${path}: HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ""}`);
  }

  private apiError(status: number, body: ApiErrorBody, method: string, path: string, options: RequestOptions): CliError {
    const { code, message } = body.error;
    if (status === 401 || (status === 403 && code !== "PLAN_LIMIT_REACHED")) {
      return new CliError(
        EXIT.AUTH,
        `the control plane at ${this.baseUrl} rejected the token (${code}: ${message})`,
        [`Log in with a management token: waitstate login --url ${this.baseUrl} --token <management token>`],
        { status, ...body.error },
      );
    }
    if (status === 404) {
      if (message.startsWith("No route for")) {
        return new CliError(
          EXIT.NOT_FOUND,
          `${code}: this control plane has no ${method} ${path.split("?")[0]} (${message})`,
          ["It may be an older version of WaitState than this CLI."],
          { status, ...body.error },
        );
      }
      return new CliError(EXIT.NOT_FOUND, `${code}: ${message}`, [], { status, ...body.error });
    }
    const details: string[] = [];
    let headline = `${code}: ${message}`;
    if (code === "VALIDATION_FAILED") {
      // "path: message; path: message" → one line per field, with the flag that sets it
      const issues = message.split(/; (?=[A-Za-z_(][\w.[\]()]*: )/);
      headline = `${code}: the control plane refused ${issues.length === 1 ? "a field" : `${issues.length} fields`}`;
      for (const issue of issues) {
        const m = /^([\w.[\]()]+): (.*)$/s.exec(issue);
        if (!m) {
          details.push(issue);
          continue;
        }
        const field = m[1]!;
        const flag = options.fieldFlags?.[field.split(/[.[]/)[0]!];
        details.push(`${field}${flag ? ` (${flag})` : ""}: ${m[2]}`);
      }
    }
    return new CliError(EXIT.FAILURE, `${headline} (HTTP ${status})`, details, { status, ...body.error });
  }

  get<T = unknown>(path: string, query?: RequestOptions["query"]): Promise<T> {
    return this.request<T>("GET", path, query ? { query } : {});
  }

  /**
   * Every item of a paginated listing (`{[key]: T[], nextCursor}`), following
   * the cursors, as `{[key]: T[]}`: the shape the listing had before it was paged.
   */
  async getAll<K extends string, T>(path: string, key: K, query: RequestOptions["query"] = {}): Promise<Record<K, T[]>> {
    const items: T[] = [];
    let cursor: string | null = null;
    do {
      const page: Record<string, unknown> = await this.get<Record<string, unknown>>(path, { ...query, limit: LIST_PAGE_SIZE, cursor });
      items.push(...((page[key] as T[] | undefined) ?? []));
      cursor = typeof page.nextCursor === "string" ? page.nextCursor : null;
    } while (cursor !== null);
    return { [key]: items } as Record<K, T[]>;
  }
  post<T = unknown>(path: string, body?: unknown, fieldFlags?: Record<string, string>): Promise<T> {
    return this.request<T>("POST", path, { body: body ?? {}, ...(fieldFlags ? { fieldFlags } : {}) });
  }
  patch<T = unknown>(path: string, body: unknown, fieldFlags?: Record<string, string>): Promise<T> {
    return this.request<T>("PATCH", path, { body, ...(fieldFlags ? { fieldFlags } : {}) });
  }
  delete<T = unknown>(path: string): Promise<T> {
    return this.request<T>("DELETE", path);
  }
}
