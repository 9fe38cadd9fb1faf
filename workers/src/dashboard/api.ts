/**
 * The dashboard reads and changes everything through the management API, in
 * process (`app.request`), with the session's bearer token: validation, org
 * scoping and audit entries are the API's, never re-implemented here.
 */
import type { Hono } from "hono";
import type { AuditActor } from "../lib/audit.js";
import type { AppEnv, Env } from "../env.js";

/** Items asked for per page when a page reads a whole listing (the API's maximum). */
const LIST_PAGE_SIZE = 1000;

export type ApiResult<T> = { ok: true; status: number; data: T } | { ok: false; status: number; code: string; message: string };

// The requests the dashboard makes in process, with the session acting. Outside
// callers cannot add to it (unlike a header), so the audit log may trust it.
const dashboardRequests = new WeakMap<Request, AuditActor>();

/** The session behind a management API call the dashboard made in process, or undefined for any other request. */
export function dashboardActor(request: Request): AuditActor | undefined {
  return dashboardRequests.get(request);
}

/**
 * @example
 * const api = new DashboardApi(app, c.env, ctx, token, { type: "session", id: "mt_…", name: "initial" });
 * const sites = await api.get<{ sites: SiteView[] }>("/v1/sites");
 */
export class DashboardApi {
  constructor(
    private readonly app: Hono<AppEnv>,
    private readonly env: Env,
    private readonly executionCtx: ExecutionContext | undefined,
    private readonly token: string,
    /** Who the audit log names for changes made through this client. */
    private readonly actor: AuditActor,
  ) {}

  async call<T>(method: string, path: string, body?: unknown): Promise<ApiResult<T>> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    const init: RequestInit = { method, headers };
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const request = new Request(new URL(path, "http://dashboard.internal"), init);
    dashboardRequests.set(request, this.actor);
    const res = await this.app.request(request, undefined, this.env, this.executionCtx);
    let json: unknown = null;
    try {
      json = await res.json();
    } catch {
      // not JSON: handled below as an error without a body
    }
    if (res.ok) return { ok: true, status: res.status, data: json as T };
    const error = (json as { error?: { code?: unknown; message?: unknown } } | null)?.error;
    return {
      ok: false,
      status: res.status,
      code: typeof error?.code === "string" ? error.code : "INTERNAL_ERROR",
      message: typeof error?.message === "string" ? error.message : `The API answered ${res.status}`,
    };
  }

  get<T>(path: string) {
    return this.call<T>("GET", path);
  }
  /**
   * Every item of a paginated listing, following its cursors, in the shape it
   * had before it was paged (`{[key]: T[]}`); the first failing page is the answer.
   */
  async getAll<K extends string, T>(path: string, key: K): Promise<ApiResult<Record<K, T[]>>> {
    const items: T[] = [];
    let cursor: string | null = null;
    do {
      const url = new URL(path, "http://dashboard.internal");
      url.searchParams.set("limit", String(LIST_PAGE_SIZE));
      if (cursor !== null) url.searchParams.set("cursor", cursor);
      const page: ApiResult<Record<string, unknown>> = await this.get<Record<string, unknown>>(`${url.pathname}${url.search}`);
      if (!page.ok) return page;
      items.push(...((page.data[key] as T[] | undefined) ?? []));
      cursor = typeof page.data.nextCursor === "string" ? page.data.nextCursor : null;
    } while (cursor !== null);
    return { ok: true, status: 200, data: { [key]: items } as Record<K, T[]> };
  }
  post<T>(path: string, body: unknown = {}) {
    return this.call<T>("POST", path, body);
  }
  patch<T>(path: string, body: unknown) {
    return this.call<T>("PATCH", path, body);
  }
  delete<T>(path: string) {
    return this.call<T>("DELETE", path);
  }
}

/** Encodes one path segment taken from the URL (ids are validated again by the API). */
export function seg(value: string): string {
  return encodeURIComponent(value);
}

/** A query string from the defined, non-empty entries. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}
