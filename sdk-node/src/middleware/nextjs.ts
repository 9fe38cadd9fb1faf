/**
 * `@waitstate/sdk/nextjs`: gate an App Router route handler. Uses only Web
 * APIs, so it runs in both the Node.js and the Edge runtime.
 */
import { nextStatusOfThrown as statusOfThrown } from "../../../protocol/src/middleware.js";
import { denialResponse, invalidOptions, reportCompletion, resolveOptions, type GateOptions, type GateResult } from "./common.js";

export interface NextGateOptions<Req extends Request> extends GateOptions<Req> {
  /** Answers a denied request instead of the default 429. */
  onDenied?: (req: Req, result: GateResult) => Response | Promise<Response>;
}

function readHeader(req: Request, name: string): string | undefined {
  return req.headers.get(name) ?? undefined;
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
