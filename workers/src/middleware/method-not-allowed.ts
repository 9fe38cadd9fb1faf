import type { Context, Hono } from "hono";
import { errorBody } from "../errors.js";
import type { AppEnv } from "../env.js";

interface RoutePattern {
  pattern: RegExp;
  methods: Set<string>;
}

const escape = (text: string) => text.replace(/[.+?^${}()|[\]\\]/g, "\\$&");

/** `/v1/tags/:id` → /^\/v1\/tags\/[^/]+$/; `*` matches the rest of the path. */
function toRegExp(path: string): RegExp {
  const source = path
    .split("/")
    .map((segment) => (segment.startsWith(":") ? "[^/]+" : segment === "*" ? ".*" : escape(segment)))
    .join("/");
  return new RegExp(`^${source}$`);
}

/**
 * The answer for a request no route took: 405 METHOD_NOT_ALLOWED with `Allow`
 * when the path exists under other methods (HTTP semantics, and what the error
 * table promises), else 404. The table is built from the app's own routes on
 * first use, so a new route needs nothing here.
 */
export function notFoundOrNotAllowed(app: Hono<AppEnv>) {
  let table: RoutePattern[] | null = null;
  const build = () => {
    const byPath = new Map<string, Set<string>>();
    // "ALL" entries are middleware (and catch-alls that answer for themselves).
    for (const route of app.routes) {
      if (route.method === "ALL") continue;
      const methods = byPath.get(route.path) ?? new Set<string>();
      methods.add(route.method);
      byPath.set(route.path, methods);
    }
    return [...byPath].map(([path, methods]) => ({ pattern: toRegExp(path), methods }));
  };
  return (c: Context<AppEnv>) => {
    table ??= build();
    const path = new URL(c.req.url).pathname;
    const allowed = new Set<string>();
    for (const route of table) if (route.pattern.test(path)) for (const method of route.methods) allowed.add(method);
    if (allowed.size === 0) return c.json(errorBody("NOT_FOUND", `No route for ${c.req.method} ${path}`), 404);
    if (allowed.has("GET")) allowed.add("HEAD");
    const allow = [...allowed].sort().join(", ");
    c.header("allow", allow);
    return c.json(errorBody("METHOD_NOT_ALLOWED", `${c.req.method} is not allowed on ${path}; use ${allow}`), 405);
  };
}
