/**
 * @waitstate/sdk — the Node.js client (issue 5 builds the client, telemetry,
 * middlewares and agent). It will ship the shared pure gate from
 * `@waitstate/protocol/gate` bundled in, so it keeps zero runtime dependencies.
 */
export const SDK_NAME = "@waitstate/sdk";
