// Retry policy (SPEC §3): which failures are worth another attempt and how long to wait.

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  /** First backoff ceiling; doubles each attempt. */
  baseDelayMs: number;
  /** No backoff is longer than this. */
  maxDelayMs: number;
  /** `--max-retry-after`: a server's Retry-After is honoured up to this. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 6,
  baseDelayMs: 1000,
  maxDelayMs: 60_000,
  maxRetryAfterMs: 60_000,
};

export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/**
 * NOT PROCESSED: the API provably did nothing with the request. AMBIGUOUS: it may have acted on
 * it. An upload carrying events is retried only after the first kind (SPEC §3).
 */
export type FailureKind = 'not_processed' | 'ambiguous';

/** A failed status's kind, or null when the status is not worth another attempt. */
export function classifyStatus(status: number, hasRetryAfter: boolean): FailureKind | null {
  // 408: the server gave up waiting for the request; 429 and a 503 that names a time to come
  // back are refusals before any work.
  if (status === 408 || status === 429 || (status === 503 && hasRetryAfter)) return 'not_processed';
  if (status >= 500) return 'ambiguous';
  return null;
}

const RETRYABLE_NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ERR_GOT_REQUEST_ERROR',
  'UND_ERR_SOCKET',
]);

/** Failures before a connection existed: the request cannot have reached the API. */
const NO_CONNECTION_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH']);

/**
 * A network failure's kind: not processed when no connection was made or the request was not
 * fully written (got's `timings.upload` is set once the last byte went out), else ambiguous (a
 * timeout or reset while waiting for the answer).
 */
export function classifyNetworkError(error: unknown): FailureKind {
  if (!error || typeof error !== 'object') return 'ambiguous';
  const { code, timings } = error as { code?: string; timings?: { upload?: number } };
  if (code !== undefined && NO_CONNECTION_CODES.has(code)) return 'not_processed';
  if (timings && timings.upload === undefined) return 'not_processed';
  return 'ambiguous';
}

export function isRetryableNetworkError(error: unknown): boolean {
  if (!error || typeof error !== 'object') return false;
  const { code, name } = error as { code?: string; name?: string };
  return name === 'TimeoutError' || name === 'RequestError' || (code !== undefined && RETRYABLE_NETWORK_CODES.has(code));
}

/** `Retry-After` as seconds or an HTTP date → milliseconds from now, or undefined. */
export function parseRetryAfter(header: string | undefined, nowMs: number): number | undefined {
  if (!header) return undefined;
  const trimmed = header.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/**
 * Yotpo's `ratelimit-reset` (seconds until the window resets; an epoch in seconds is accepted
 * too) → milliseconds from now, or undefined.
 */
export function parseRateLimitReset(header: string | undefined, nowMs: number = Date.now()): number | undefined {
  if (!header || !/^\d+(\.\d+)?$/.test(header.trim())) return undefined;
  const seconds = Number(header.trim());
  return seconds > 1e9 ? Math.max(0, seconds * 1000 - nowMs) : seconds * 1000;
}

/**
 * The wait before attempt `attempt + 1`: the server's Retry-After as given (capped, never
 * multiplied), else exponential backoff with full jitter.
 */
export function retryDelayMs(
  policy: RetryPolicy,
  attempt: number,
  retryAfterMs: number | undefined,
  random: () => number = Math.random,
): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, policy.maxRetryAfterMs);
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return Math.floor(random() * ceiling);
}
