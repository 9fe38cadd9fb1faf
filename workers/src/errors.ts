import type { ErrorBody } from "@waitstate/protocol";

/** The one error body shape: `{"error":{"code","message"}}` (DESIGN.md). */
export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}
