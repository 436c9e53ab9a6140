// The one HTTP adapter: every call to every API goes through ApiClient.request, which paces it
// (RateLimiter), retries what is retryable (RetryPolicy), stops on auth failures, counts requests
// and retries, and logs a redacted line per request under --verbose.

import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import got, { type Method } from 'got';
import { API_LABEL, ApiError, AuthError, InterruptedError, UnavailableError, type ApiName } from '../errors.js';
import { redact } from './redact.js';
import { RateLimiter } from './rate-limit.js';
import {
  isRetryableNetworkError,
  isRetryableStatus,
  parseRetryAfter,
  retryDelayMs,
  type RetryPolicy,
} from './retry.js';

export interface RequestCounters {
  requests: Record<ApiName, number>;
  retries: number;
}

export function newRequestCounters(): RequestCounters {
  return { requests: { loyalty: 0, reviews: 0, insider: 0 }, retries: 0 };
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
}

export interface ApiResponse {
  status: number;
  body: unknown;
  attempts: number;
}

// Keep-alive sockets: a backfill makes tens of thousands of requests to the same three hosts.
const agent = {
  http: new http.Agent({ keepAlive: true, maxSockets: 64 }),
  https: new https.Agent({ keepAlive: true, maxSockets: 64 }),
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

export class ApiClient {
  readonly limiter: RateLimiter;

  constructor(private readonly options: ApiClientOptions) {
    this.limiter = new RateLimiter(options.rps);
  }

  get api(): ApiName {
    return this.options.api;
  }

  async request(req: ApiRequest): Promise<ApiResponse> {
    try {
      return await this.attempts(req);
    } catch (error) {
      if (this.options.signal?.aborted) throw new InterruptedError();
      throw error;
    }
  }

  private async attempts(req: ApiRequest): Promise<ApiResponse> {
    const { api, retry, counters, signal } = this.options;
    const waitOptions = signal ? { signal } : {};
    const method = req.method ?? 'GET';
    let lastProblem = '';
    let lastStatus: number | null = null;
    for (let attempt = 1; attempt <= retry.maxAttempts; attempt++) {
      if (attempt > 1) counters.retries++;
      await this.limiter.take(signal);
      signal?.throwIfAborted();
      counters.requests[api]++;
      const started = Date.now();
      let status: number;
      let body: unknown;
      let retryAfterMs: number | undefined;
      try {
        const response = await got(`${this.options.baseUrl}${req.path}`, {
          method,
          headers: this.options.headers,
          searchParams: req.searchParams,
          ...(req.body !== undefined ? { body: req.body } : req.json !== undefined ? { json: req.json } : {}),
          throwHttpErrors: false,
          retry: { limit: 0 },
          timeout: { request: this.options.timeoutMs },
          agent,
          responseType: 'text',
          ...waitOptions,
        });
        status = response.statusCode;
        body = req.rawBody && status >= 200 && status < 300 ? response.body : parseBody(response.body);
        const header = response.headers['retry-after'];
        retryAfterMs = parseRetryAfter(Array.isArray(header) ? header[0] : header, Date.now());
      } catch (error) {
        const message = redact(error instanceof Error ? `${(error as { code?: string }).code ?? error.name}: ${error.message}` : String(error));
        this.log(`${method} ${req.path} → ${message} (${Date.now() - started} ms)`);
        if (!isRetryableNetworkError(error)) throw new ApiError(api, message, null);
        lastProblem = message;
        lastStatus = null;
        if (attempt < retry.maxAttempts) await sleep(retryDelayMs(retry, attempt, undefined), undefined, waitOptions);
        continue;
      }
      this.log(`${method} ${req.path} → ${status} (${Date.now() - started} ms)`);

      if ((status >= 200 && status < 300) || req.passStatuses?.includes(status)) {
        this.limiter.succeeded();
        return { status, body, attempts: attempt };
      }
      if (status === 401 || status === 403) throw new AuthError(api, status);
      if (!isRetryableStatus(status)) {
        return { status, body, attempts: attempt };
      }
      lastProblem = `HTTP ${status} ${describeBody(body)}`;
      lastStatus = status;
      if (attempt === retry.maxAttempts) break;
      const delay = retryDelayMs(retry, attempt, retryAfterMs);
      if (status === 429) this.limiter.throttled(Date.now() + delay);
      await sleep(delay, undefined, waitOptions);
    }
    throw new UnavailableError(api, lastProblem, lastStatus, retry.maxAttempts);
  }

  /** A non-2xx answer the caller did not expect: stop with what the API said. */
  unexpected(response: ApiResponse, what: string): ApiError {
    return new ApiError(this.options.api, `${what}: HTTP ${response.status} ${describeBody(response.body)}`, response.status);
  }

  private log(line: string): void {
    this.options.log?.(redact(`${API_LABEL[this.options.api]} ${line}`));
  }
}
