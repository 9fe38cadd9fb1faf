/**
 * `@waitstate/sdk/nextjs`: gate an App Router route handler. Uses only Web
 * APIs, so it runs in both the Node.js and the Edge runtime.
 */
import { denialResponse, invalidOptions, reportCompletion, resolveOptions, type GateOptions, type GateResult } from "./common.js";

export interface NextGateOptions<Req extends Request> extends GateOptions<Req> {
  /** Answers a denied request instead of the default 429. */
  onDenied?: (req: Req, result: GateResult) => Response | Promise<Response>;
}

function readHeader(req: Request, name: string): string | undefined {
  return req.headers.get(name) ?? undefined;
}

/**
 * The status Next.js answers for the control-flow errors its helpers throw
 * (`redirect()`, `notFound()`, `forbidden()`, `unauthorized()`), or 500 for
 * any other error. Those are read from the error's `digest`, so a redirect is
 * not counted as a failure.
 */
function statusOfThrown(error: unknown): number {
  const digest = typeof error === "object" && error !== null ? (error as { digest?: unknown }).digest : undefined;
  if (typeof digest !== "string") return 500;
  if (digest.startsWith("NEXT_REDIRECT;")) {
    // "NEXT_REDIRECT;<type>;<url>;<status>;": the url may itself hold ';', so read from the end.
    const parts = digest.split(";");
    const status = Number(parts[parts.length - 2]);
    return status >= 300 && status < 400 ? status : 307;
  }
  if (digest.startsWith("NEXT_HTTP_ERROR_FALLBACK;")) {
    const status = Number(digest.slice("NEXT_HTTP_ERROR_FALLBACK;".length));
    return status >= 400 && status < 600 ? status : 404;
  }
  if (digest === "NEXT_NOT_FOUND") return 404; // Next.js 13–14
  return 500;
}

/**
 * Wraps a route handler: a denied request gets a 429 `Response` with
 * `Retry-After` and a JSON error body, and the handler never runs; for an
 * allowed one the latency up to the handler's `Response` is reported for its
 * tag, plus an error when the status is 5xx or the handler throws (the error
 * is rethrown for Next.js to handle).
 *
 * @example
 * // app/api/search/route.ts
 * import { withGate } from "@waitstate/sdk/nextjs";
 * import { ws } from "@/lib/waitstate";
 *
 * export const GET = withGate({ waitstate: ws, tagFrom: "x-plan" }, async (req) => {
 *   return Response.json(await search(new URL(req.url).searchParams));
 * });
 */
export function withGate<Req extends Request, Rest extends unknown[]>(
  options: NextGateOptions<Req>,
  handler: (req: Req, ...rest: Rest) => Response | Promise<Response>,
): (req: Req, ...rest: Rest) => Promise<Response> {
  const where = "@waitstate/sdk/nextjs withGate";
  const { client, tagOf, weightOf, retryAfter } = resolveOptions<Req>(options, where, readHeader);
  if (typeof handler !== "function") {
    throw invalidOptions(where, `the second argument must be the route handler, got ${typeof handler}`);
  }
  const onDenied = options.onDenied;

  return async function gatedRouteHandler(req: Req, ...rest: Rest): Promise<Response> {
    const tag = tagOf(req);
    const result = client.gate(tag, weightOf(req));
    if (!result.allowed) return onDenied === undefined ? denialResponse(result.reason, retryAfter) : onDenied(req, result);
    const startMs = performance.now();
    let status = 500;
    try {
      const response = await handler(req, ...rest);
      status = response.status;
      return response;
    } catch (error) {
      status = statusOfThrown(error);
      throw error;
    } finally {
      reportCompletion(client, tag, startMs, status);
    }
  };
}
