/**
 * `@waitstate/sdk/fastify`: gate each request in an `onRequest` hook and
 * report it when the raw response finishes.
 */
import {
  JSON_CONTENT_TYPE,
  denialBody,
  isThenable,
  reportCompletion,
  readNodeHeader,
  resolveOptions,
  type GateOptions,
  type GateResult,
} from "./common.js";

/** The request fields the plugin reads (a `FastifyRequest`). */
export interface FastifyLikeRequest {
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** The `node:http` response under a reply. */
export interface RawResponseLike {
  readonly statusCode: number;
  on(event: "finish", listener: () => void): unknown;
}

/** The reply fields the plugin uses (a `FastifyReply`). */
export interface FastifyLikeReply {
  readonly raw: RawResponseLike;
  code(statusCode: number): FastifyLikeReply;
  header(name: string, value: string): FastifyLikeReply;
  send(payload: string): FastifyLikeReply;
}

export type FastifyHookDone = (error?: Error) => void;

/** A callback-style hook, the fastest kind in Fastify. */
export type FastifyLikeHook<Req, Reply> = (request: Req, reply: Reply, done: FastifyHookDone) => void;

/** The instance method the plugin calls (a `FastifyInstance`). */
export interface FastifyLikeInstance<Req, Reply> {
  addHook(name: "onRequest", hook: FastifyLikeHook<Req, Reply>): unknown;
}

export interface FastifyGateOptions<Req, Reply> extends GateOptions<Req> {
  /**
   * Answers a denied request instead of the default 429; it must send the
   * reply. A rejected promise becomes the request's error.
   */
  onDenied?: (request: Req, reply: Reply, result: GateResult) => void | Promise<void>;
}

/**
 * The plugin: call it with the root instance, or pass it to `app.register`
 * (it skips Fastify's encapsulation, as `fastify-plugin` would, so its hooks
 * apply to every route either way).
 */
export type FastifyGatePlugin<Req, Reply> = (
  app: FastifyLikeInstance<Req, Reply>,
  pluginOptions?: unknown,
  done?: (error?: Error) => void,
) => void;

/**
 * Creates a Fastify plugin: a denied request gets a 429 with `Retry-After`
 * and a JSON error body, and its handler never runs; for an allowed one the
 * latency is reported for its tag once the response has been sent, plus an
 * error when the status is 5xx (a throwing handler becomes a 500 in Fastify).
 * A request whose client disconnects before the response finishes is not
 * reported.
 *
 * @example
 * import Fastify from "fastify";
 * import { WaitState } from "@waitstate/sdk";
 * import { createPlugin } from "@waitstate/sdk/fastify";
 *
 * const ws = new WaitState({ publishKey, secretKey, baseUrl });
 * const app = Fastify();
 * createPlugin({ waitstate: ws, weightFrom: "x-cost" })(app);
 */
export function createPlugin<Req extends FastifyLikeRequest = FastifyLikeRequest, Reply extends FastifyLikeReply = FastifyLikeReply>(
  options: FastifyGateOptions<Req, Reply>,
): FastifyGatePlugin<Req, Reply> {
  const { client, tagOf, weightOf, retryAfter } = resolveOptions<Req>(options, "@waitstate/sdk/fastify createPlugin", readNodeHeader);
  const onDenied = options.onDenied;

  function onRequest(request: Req, reply: Reply, done: FastifyHookDone): void {
    const tag = tagOf(request);
    const result = client.gate(tag, weightOf(request));
    if (result.allowed) {
      // A listener on the raw response rather than an onResponse hook: that hook makes Fastify
      // time and listen to every response itself, and carrying tag and start from one hook
      // to the other needs per-request storage (a WeakMap entry costs ~0.6 µs a request).
      const startMs = performance.now();
      const raw = reply.raw;
      raw.on("finish", () => reportCompletion(client, tag, startMs, raw.statusCode));
      done();
      return;
    }
    // Not calling done(): the reply is sent from the hook and the handler never runs.
    if (onDenied === undefined) {
      reply.code(429).header("retry-after", retryAfter).header("content-type", JSON_CONTENT_TYPE).send(denialBody(result.reason));
      return;
    }
    const pending: unknown = onDenied(request, reply, result);
    if (isThenable(pending)) pending.then(undefined, (error: unknown) => done(asError(error)));
  }

  const plugin: FastifyGatePlugin<Req, Reply> = (app, _pluginOptions, done) => {
    app.addHook("onRequest", onRequest);
    done?.();
  };
  // What fastify-plugin sets: `app.register(plugin)` adds the hooks to the parent, not a child scope.
  Object.defineProperty(plugin, Symbol.for("skip-override"), { value: true });
  Object.defineProperty(plugin, Symbol.for("fastify.display-name"), { value: "@waitstate/sdk/fastify" });
  return plugin;
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
