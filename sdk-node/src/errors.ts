// Shared with @waitstate/edge's client: the same error codes from every TypeScript SDK.
export { WaitStateError, type WaitStateErrorCode } from "../../protocol/src/errors.js";
