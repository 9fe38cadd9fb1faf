/** The "send your first pulse" instructions shown by empty states. */
import { Card } from "./layout.js";

export function FirstPulse(props: { baseUrl: string; publishKey: string | null; siteId?: string }) {
  const siteId = props.siteId ?? "prod";
  const publishKey = props.publishKey ?? "ws_pub_…";
  const node = `import { WaitState } from "@waitstate/sdk";

const ws = new WaitState({
  publishKey: "${publishKey}",
  secretKey: process.env.WAITSTATE_SECRET_KEY, // shown once when the key was created
  baseUrl: "${props.baseUrl}",
  siteId: "${siteId}",
});

// in each request handler: a memory-only decision, never throws
const decision = ws.gate("free", 1);
if (!decision.allowed) return res.status(503).send("busy, retry soon");
const done = ws.startTimer("free");
// … the work …
done();`;
  const curl = `BODY='{"instanceId":"web-01","siteId":"${siteId}","usageDelta":1,"bouncedUnits":0,"metrics":{"latency":120,"errors":0},"tagMetrics":[{"tag":"free","latency":120,"count":1}],"ts":'$(date +%s000)'}'
TS=$(date +%s000); SIG=$(printf '%s.%s' "$BODY" "$TS" | openssl dgst -sha256 -hmac "$SECRET_KEY" -r | cut -d' ' -f1)
curl -s -X POST ${props.baseUrl}/v1/pulse -H 'content-type: application/json' \\
  -H "x-waitstate-id: ${publishKey}" -H "x-waitstate-timestamp: $TS" -H "x-waitstate-signature: $SIG" -d "$BODY"`;
  return (
    <Card title="Send your first pulse">
      <ol class="small">
        <li>
          {props.publishKey ? (
            <>
              Use your key pair (publish key <code>{props.publishKey}</code>); its secret was shown once when you created it.{" "}
            </>
          ) : (
            <>
              <a href="/dashboard/keys">Create an API key pair</a> first: the secret is shown once.{" "}
            </>
          )}
        </li>
        <li>
          Give the SDK your keys and a <code>siteId</code>. Its first pulse creates the site here; live health appears within a pulse,
          charts a minute later.
        </li>
      </ol>
      <h3>Node (@waitstate/sdk)</h3>
      <pre>
        <code>{node}</code>
      </pre>
      <h3>Or one signed pulse with curl</h3>
      <pre>
        <code>{curl}</code>
      </pre>
    </Card>
  );
}
