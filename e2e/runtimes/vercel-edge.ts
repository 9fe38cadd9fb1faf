/**
 * A Next.js middleware (`@waitstate/edge/nextjs`) as Vercel's Edge Runtime
 * runs it: bundled by esbuild with the edge runtime's export conditions and
 * evaluated by the `edge-runtime` package (Vercel's own runtime), which
 * dispatches each HTTP request as a FetchEvent. The wasm module and the
 * settings arrive as a global (`WAITSTATE`), as a bundler's `?module` import
 * and `process.env` would on Vercel.
 */
import { WaitState, init } from "@waitstate/edge";
import { createMiddleware } from "@waitstate/edge/nextjs";

interface Settings {
  wasm: WebAssembly.Module;
  baseUrl: string;
  publishKey: string;
  secretKey: string;
  siteId: string;
}
declare const WAITSTATE: Settings;
interface FetchEventLike {
  request: Request;
  respondWith(response: Promise<Response>): void;
  waitUntil(promise: Promise<unknown>): void;
}
declare function addEventListener(type: "fetch", listener: (event: FetchEventLike) => void): void;

const loaded = init(WAITSTATE.wasm);
const ws = new WaitState({
  publishKey: WAITSTATE.publishKey,
  secretKey: WAITSTATE.secretKey,
  baseUrl: WAITSTATE.baseUrl,
  siteId: WAITSTATE.siteId,
  instanceId: "vercel-edge",
});
const middleware = createMiddleware({ waitstate: ws, retryAfter: 1, waitForPolicyMs: 5000 });

addEventListener("fetch", (event) => {
  // The test's own route, no gate call: lets the client send what is due after the last request.
  if (new URL(event.request.url).pathname === "/__sync") {
    event.respondWith(ws.sync().then(() => Response.json(ws.status())));
    return;
  }
  event.respondWith(
    loaded
      .then(() => middleware(event.request, event))
      // `undefined` is NextResponse.next(): the route answers.
      .then((denied) => denied ?? Response.json({ route: "ok", status: ws.status() })),
  );
});
