// What every emulated API hands back to server.ts, and the request body it reads: one shape for
// the three APIs (the Insider side adds the store-then-fault hooks).

/** A request body as server.ts read it: null when over the limit. */
export interface RequestBody {
  buf: Buffer | null;
  bytes: number;
}

export interface Reply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
  /** raw text body instead of JSON */
  text?: string;
  users?: number;
  skipHook?: boolean;
  /** Wait for this before answering (store-then-fault: slow, hold). */
  before?: Promise<void>;
  /** Destroy the socket instead of answering (store-then-fault: reset). */
  destroySocket?: boolean;
}

export function json(status: number, body: unknown, headers?: Record<string, string>): Reply {
  return headers ? { status, body, headers } : { status, body };
}
