// The Worker of sdk-edge/README.md ("## The client"), verbatim below this comment:
// readme.node.test.ts checks the README shows exactly this, client.workerd.test.ts runs it in workerd.
import { WaitState } from "@waitstate/edge";

interface Env {
  WAITSTATE_URL: string; // your control plane
  WAITSTATE_PUBLISH_KEY: string;
  WAITSTATE_SECRET_KEY: string; // `wrangler secret put WAITSTATE_SECRET_KEY`
}

let ws: WaitState | undefined; // one client per isolate

export default {
  async fetch(request: Request, env: Env, ctx: { waitUntil(promise: Promise<unknown>): void }): Promise<Response> {
    ws ??= new WaitState({ baseUrl: env.WAITSTATE_URL, publishKey: env.WAITSTATE_PUBLISH_KEY, secretKey: env.WAITSTATE_SECRET_KEY });
    await ws.ready(200); // a cold isolate waits at most 200 ms for its first policy; a warm one not at all
    const tag = request.headers.get("x-plan") ?? "free";
    const { allowed, reason } = ws.gate(tag, 1); // synchronous, in memory, never throws
    ctx.waitUntil(ws.sync()); // whatever is due: key exchange, pulse, policy read; usually nothing
    if (!allowed) return Response.json({ error: { code: "RATE_LIMITED", message: reason } }, { status: 429 });
    const stop = ws.startTimer(tag);
    const response = await fetch(request);
    stop(); // the latency goes into this tag's histogram
    if (response.status >= 500) ws.reportError(tag);
    return response;
  },
};
