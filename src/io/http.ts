// The one HTTP adapter: every call to every API goes through ApiClient.request, which paces it
// (RateLimiter), retries what is retryable (RetryPolicy), stops on auth failures and redirects,
// counts requests and retries, and logs a redacted line per request under --verbose.
//
// Each failed attempt is classified (SPEC §3): NOT PROCESSED when the API provably did nothing
// (no connection, the request not fully written, 429, 503 with Retry-After), AMBIGUOUS when it may
// have acted on it (a timeout or a reset once the request was written, 500/502/504, 503 without
// Retry-After, a 2xx whose body cannot be read). An idempotent request is retried after either; a
// non-idempotent one (an upload carrying events) only after NOT PROCESSED, unless the caller
// chose to resend anyway.

import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import got, { type Method } from 'got';
import { API_LABEL, ApiError, AuthError, InterruptedError, UnavailableError, UsageError, type ApiName } from '../errors.js';
import { redact } from './redact.js';
import { RateLimiter } from './rate-limit.js';
import {
  classifyNetworkError,
  classifyStatus,
  isRetryableNetworkError,
  parseRateLimitReset,
  parseRetryAfter,
  retryDelayMs,
  type FailureKind,
  type RetryPolicy,
} from './retry.js';

export interface RequestCounters {
  requests: Record<ApiName, number>;
  retries: number;
  /** `--on-ambiguous resend`: attempts sent again after an ambiguous failure. */
  resentAfterAmbiguous: number;
}

export function newRequestCounters(): RequestCounters {
  return { requests: { loyalty: 0, reviews: 0, insider: 0 }, retries: 0, resentAfterAmbiguous: 0 };
}

/** What the client is about to wait for before the next attempt (for --verbose, and for tests). */
export interface RetryWait {
  api: ApiName;
  /** The attempt that failed (1-based). */
  attempt: number;
  delayMs: number;
  status: number | null;
  kind: FailureKind;
  /** What set the delay. */
  basis: 'retry-after' | 'ratelimit-reset' | 'backoff';
}

export interface ApiClientOptions {
  api: ApiName;
  baseUrl: string;
  headers: Record<string, string>;
  /** Requests per second; 0 = no limit. */
  rps: number;
  retry: RetryPolicy;
  timeoutMs: number;
  counters: RequestCounters;
  /** `--verbose`: one line per request. */
  log?: (line: string) => void;
  /** Aborts the request in flight and any wait before the next attempt (InterruptedError). */
  signal?: AbortSignal;
  /** Waits between attempts; tests pass one that records the delay and returns at once. */
  wait?: (ms: number, signal: AbortSignal | undefined, info: RetryWait) => Promise<void>;
}

export interface ApiRequest {
  method?: Method;
  path: string;
  searchParams?: Record<string, string | number | boolean>;
  json?: unknown;
  /** A body already serialised (the uploader measures it before sending). */
  body?: string;
  /** Statuses returned to the caller instead of being treated as failures (e.g. 404 on a lookup). */
  passStatuses?: readonly number[];
  /** Return a 2xx body as the raw text (the caller parses it when it suits it). */
  rawBody?: boolean;
  /**
   * Default true. False for a request that must not reach the API twice (an upload carrying
   * events): it is retried only after failures the API provably did not process.
   */
  idempotent?: boolean;
  /** A non-idempotent request after an ambiguous failure: 'resend' retries it anyway (counted). */
  onAmbiguous?: 'hold' | 'resend';
  /** A 2xx body this rejects is an ambiguous failure (the API may have acted; its answer is unreadable). */
  readable?: (body: unknown) => boolean;
}

export interface ApiResponse {
  status: number;
  body: unknown;
  attempts: number;
}

/** A 3xx: never followed, so neither the credentials nor the body reach another origin. */
export class RedirectError extends ApiError {
  constructor(
    api: ApiName,
    override readonly status: number,
    readonly locationHost: string | null,
  ) {
    super(
      api,
      `answered HTTP ${status}, a redirect ${locationHost ? `to ${locationHost}` : 'without a Location'}; redirects are never followed (check the ${api === 'insider' ? 'INSIDER_API_URL' : api === 'loyalty' ? 'YOTPO_LOYALTY_URL' : 'YOTPO_API_URL'})`,
      status,
    );
  }
}

/** A non-idempotent request failed in a way that leaves open whether the API acted on it. */
export class AmbiguousError extends ApiError {
  constructor(
    api: ApiName,
    message: string,
    status: number | null,
    readonly attempts: number,
  ) {
    super(api, `no answer that can be trusted after ${attempts} attempt(s), it may have been processed: ${message}`, status);
  }
}

/** Every attempt failed; `ambiguousAttempts` says whether the API may have acted on one of them. */
export class ExhaustedError extends UnavailableError {
  constructor(
    api: ApiName,
    message: string,
    status: number | null,
    attempts: number,
    readonly ambiguousAttempts: number,
  ) {
    super(api, message, status, attempts);
  }
}

/** Every attempt got a 2xx whose body could not be read. */
export class UnreadableError extends ApiError {
  constructor(
    api: ApiName,
    message: string,
    readonly attempts: number,
  ) {
    super(api, `answered 2xx with a body that cannot be read, ${attempts} time(s): ${message}`, 200);
  }
}

/** Stopped by the signal; `requestInFlight` when an attempt may have reached the API without a trusted answer. */
export class RequestInterruptedError extends InterruptedError {
  constructor(readonly requestInFlight: boolean) {
    super();
  }
}

// Keep-alive sockets: a backfill makes tens of thousands of requests to the same three hosts.
const agent = {
  http: new http.Agent({ keepAlive: true, maxSockets: 64 }),
  https: new https.Agent({ keepAlive: true, maxSockets: 64 }),
};

/** Closes the idle keep-alive sockets, so a finished command exits at once instead of when servers hang up. */
export function closeIdleConnections(): void {
  agent.http.destroy();
  agent.https.destroy();
}

/** How a header is named to an operator when its value is unusable (never its value). */
const HEADER_LABEL: Record<string, string> = {
  'x-request-token': 'the Insider API key (INSIDER_API_KEY)',
  'x-partner-name': 'the Insider partner name (INSIDER_PARTNER_NAME)',
  'x-api-key': 'the Yotpo Loyalty API key (YOTPO_LOYALTY_API_KEY)',
  'x-guid': 'the Yotpo Loyalty GUID (YOTPO_LOYALTY_GUID)',
};

function parseBody(text: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function describeBody(body: unknown): string {
  const text = typeof body === 'string' ? body : JSON.stringify(body ?? '');
  return redact(text.length > 300 ? `${text.slice(0, 300)}…` : text);
}

function headerOf(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function hostOf(location: string | undefined, base: string): string | null {
  if (!location) return null;
  try {
    return new URL(location, base).host;
  } catch {
    return redact(location.slice(0, 100));
  }
}

interface Failure {
  kind: FailureKind;
  problem: string;
  status: number | null;
  retryAfterMs?: number;
  rateLimitResetMs?: number;
  unreadable?: boolean;
}

export class ApiClient {
  readonly limiter: RateLimiter;
  private readonly wait: NonNullable<ApiClientOptions['wait']>;

  constructor(private readonly options: ApiClientOptions) {
    for (const [name, value] of Object.entries(options.headers)) {
      if (/[\r\n]/.test(value)) {
        const label = HEADER_LABEL[name.toLowerCase()] ?? `the ${API_LABEL[options.api]} header ${name}`;
        throw new UsageError(`${label} contains a line break; copy it again`);
      }
    }
    this.limiter = new RateLimiter(options.rps);
    this.wait = options.wait ?? ((ms, signal) => sleep(ms, undefined, signal ? { signal } : {}));
  }

  get api(): ApiName {
    return this.options.api;
  }

  get retryPolicy(): RetryPolicy {
    return this.options.retry;
  }

  async request(req: ApiRequest): Promise<ApiResponse> {
    const progress = { inFlight: false, ambiguous: false };
    try {
      return await this.attempts(req, progress);
    } catch (error) {
      if (this.options.signal?.aborted) throw new RequestInterruptedError(progress.inFlight || progress.ambiguous);
      throw error;
    }
  }

  private async attempts(req: ApiRequest, progress: { inFlight: boolean; ambiguous: boolean }): Promise<ApiResponse> {
    const { api, retry, counters, signal, baseUrl } = this.options;
    const method = req.method ?? 'GET';
    const idempotent = req.idempotent ?? true;
    let last: Failure | undefined;
    let ambiguousAttempts = 0;
    for (let attempt = 1; attempt <= retry.maxAttempts; attempt++) {
      if (attempt > 1) counters.retries++;
      await this.limiter.take(signal);
      signal?.throwIfAborted();
      counters.requests[api]++;
      const started = Date.now();
      let failure: Failure;
      progress.inFlight = true;
      try {
        const response = await got(`${baseUrl}${req.path}`, {
          method,
          headers: this.options.headers,
          searchParams: req.searchParams,
          ...(req.body !== undefined ? { body: req.body } : req.json !== undefined ? { json: req.json } : {}),
          throwHttpErrors: false,
          followRedirect: false,
          retry: { limit: 0 },
          timeout: { request: this.options.timeoutMs },
          agent,
          responseType: 'text',
          ...(signal ? { signal } : {}),
        });
        progress.inFlight = false;
        const status = response.statusCode;
        this.log(`${method} ${req.path} → ${status} (${Date.now() - started} ms)`);
        if (status >= 300 && status < 400) {
          throw new RedirectError(api, status, hostOf(headerOf(response.headers, 'location'), baseUrl));
        }
        const success = status >= 200 && status < 300;
        const body = req.rawBody && success ? response.body : parseBody(response.body);
        if ((success && (req.readable?.(body) ?? true)) || (!success && req.passStatuses?.includes(status))) {
          this.limiter.succeeded();
          return { status, body, attempts: attempt };
        }
        if (status === 401 || status === 403) throw new AuthError(api, status);
        const retryAfterMs = parseRetryAfter(headerOf(response.headers, 'retry-after'), Date.now());
        if (success) {
          failure = { kind: 'ambiguous', problem: `HTTP ${status} ${describeBody(body)}`, status, unreadable: true };
        } else {
          const kind = classifyStatus(status, retryAfterMs !== undefined);
          if (kind === null) return { status, body, attempts: attempt };
          failure = { kind, problem: `HTTP ${status} ${describeBody(body)}`, status };
          if (retryAfterMs !== undefined) failure.retryAfterMs = retryAfterMs;
          const resetMs = status === 429 ? parseRateLimitReset(headerOf(response.headers, 'ratelimit-reset')) : undefined;
          if (resetMs !== undefined) failure.rateLimitResetMs = resetMs;
        }
      } catch (error) {
        if (error instanceof ApiError || error instanceof AuthError) throw error;
        // Aborted while the request was out: it stays in flight (it may have reached the API).
        if (signal?.aborted) throw error;
        progress.inFlight = false;
        const message = redact(
          error instanceof Error ? `${(error as { code?: string }).code ?? error.name}: ${error.message}` : String(error),
        );
        this.log(`${method} ${req.path} → ${message} (${Date.now() - started} ms)`);
        if (!isRetryableNetworkError(error)) throw new ApiError(api, message, null);
        failure = { kind: classifyNetworkError(error), problem: message, status: null };
      }

      last = failure;
      if (failure.kind === 'ambiguous') {
        ambiguousAttempts++;
        progress.ambiguous = true;
        if (!idempotent) {
          if (req.onAmbiguous !== 'resend') throw new AmbiguousError(api, failure.problem, failure.status, attempt);
          if (attempt < retry.maxAttempts) counters.resentAfterAmbiguous++;
        }
      }
      if (attempt === retry.maxAttempts) break;
      const basis: RetryWait['basis'] =
        failure.retryAfterMs !== undefined ? 'retry-after' : failure.rateLimitResetMs !== undefined ? 'ratelimit-reset' : 'backoff';
      const delay = retryDelayMs(retry, attempt, failure.retryAfterMs ?? failure.rateLimitResetMs);
      if (failure.status === 429) this.limiter.throttled(Date.now() + delay);
      await this.wait(delay, signal, { api, attempt, delayMs: delay, status: failure.status, kind: failure.kind, basis });
    }
    const final = last as Failure;
    if (final.unreadable) throw new UnreadableError(api, final.problem, retry.maxAttempts);
    throw new ExhaustedError(api, final.problem, final.status, retry.maxAttempts, ambiguousAttempts);
  }

  /** A non-2xx answer the caller did not expect: stop with what the API said. */
  unexpected(response: ApiResponse, what: string): ApiError {
    return new ApiError(this.options.api, `${what}: HTTP ${response.status} ${describeBody(response.body)}`, response.status);
  }

  private log(line: string): void {
    this.options.log?.(redact(`${API_LABEL[this.options.api]} ${line}`));
  }
}
