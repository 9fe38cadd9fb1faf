declare namespace Cloudflare {
  interface GlobalProps {
    mainModule: typeof import("../src/index");
  }
  interface Env {
    DB: D1Database;
    POLICIES: KVNamespace;
    SITE_AGGREGATOR: DurableObjectNamespace<import("@waitstate/durable-objects").SiteAggregator>;
    WEBHOOK_DISPATCHER: DurableObjectNamespace<import("@waitstate/durable-objects").WebhookDispatcher>;
    ADMIN_TOKEN: string;
    ENCRYPTION_KEY: string;
    TEST_MIGRATIONS: import("cloudflare:test").D1Migration[];
  }
}

declare module "*?raw" {
  const text: string;
  export default text;
}
