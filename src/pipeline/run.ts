// What backfill, replay and retry share: their common options, the clients they build, the
// upload sink (Insider, failed file, audit CSV) and how a run ends (summary, exit code).

import { resolve } from 'node:path';
import type { Config } from '../config.js';
import { AuthError, EXIT, exitCodeOf, InterruptedError, type ApiName } from '../errors.js';
import { AuditCsv, type AuditStatus } from '../io/csv.js';
import { JsonlWriter, type FailedRecord } from '../io/jsonl.js';
import type { Outcome } from './uploader.js';
import { ApiClient, newRequestCounters, type RequestCounters } from '../io/http.js';
import { Reporter, type Io } from './report.js';
import { assertWritable } from '../io/files.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from '../io/retry.js';
import { copyRequestCounters, formatSummary, outcomeExitCode, type RunSummary } from './summary.js';
import { loyaltyHeaders } from '../yotpo/loyalty.js';

export interface CommonOptions {
  dryRun: boolean;
  out?: string;
  concurrency: number;
  batchSize: number;
  insiderRps: number;
  failed?: string;
  state: string;
  json: boolean;
  quiet: boolean;
  verbose: boolean;
  triggerJourneys: boolean;
  /** `--max-retry-after` in seconds. */
  maxRetryAfter: number;
  /** Attempts per request, the first included. */
  maxAttempts: number;
  /** Per-request timeout. */
  timeoutMs: number;
  /** First backoff ceiling; tests shorten it. */
  retryBaseMs: number;
  /** Insider's request-size limit; tests lower it to exercise the split. */
  maxRequestBytes: number;
}

export const COMMON_DEFAULTS: CommonOptions = {
  dryRun: false,
  concurrency: 4,
  batchSize: 500,
  insiderRps: 50,
  state: '.yotpo-insider/state.json',
  json: false,
  quiet: false,
  verbose: false,
  triggerJourneys: false,
  maxRetryAfter: 60,
  maxAttempts: DEFAULT_RETRY_POLICY.maxAttempts,
  timeoutMs: 60_000,
  retryBaseMs: DEFAULT_RETRY_POLICY.baseDelayMs,
  maxRequestBytes: 5_000_000,
};

/** Controls a run from outside: the CLI aborts `signal` on SIGINT/SIGTERM. */
export interface RunControl {
  signal?: AbortSignal;
}

/** `20261128T120000Z`: sortable, and safe in a file name on every OS. */
export function fileTimestamp(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

export function retryPolicy(options: CommonOptions): RetryPolicy {
  return {
    ...DEFAULT_RETRY_POLICY,
    maxAttempts: options.maxAttempts,
    baseDelayMs: options.retryBaseMs,
    maxRetryAfterMs: options.maxRetryAfter * 1000,
  };
}

export interface Clients {
  counters: RequestCounters;
  loyalty?: ApiClient;
  reviews?: ApiClient;
  insider?: ApiClient;
}

export function makeClients(
  config: Config,
  options: CommonOptions,
  rps: Partial<Record<ApiName, number>>,
  reporter: Reporter,
  {
    counters = newRequestCounters(),
    stopLoyalty,
    stopReviews,
  }: {
    counters?: RequestCounters;
    /** Abort a Yotpo API's requests and their waits (an interrupt); Insider uploads in flight may finish. */
    stopLoyalty?: AbortSignal | undefined;
    stopReviews?: AbortSignal | undefined;
  } = {},
): Clients {
  const stoppable = (signal: AbortSignal | undefined) => (signal ? { signal } : {});
  const common = {
    retry: retryPolicy(options),
    timeoutMs: options.timeoutMs,
    counters,
    ...(reporter.verboseEnabled ? { log: reporter.verbose } : {}),
  };
  const clients: Clients = { counters };
  if (config.loyalty && rps.loyalty !== undefined) {
    clients.loyalty = new ApiClient({ ...common, api: 'loyalty', baseUrl: config.loyalty.url, headers: loyaltyHeaders(config.loyalty), rps: rps.loyalty, ...stoppable(stopLoyalty) });
  }
  if (config.reviews && rps.reviews !== undefined) {
    clients.reviews = new ApiClient({ ...common, api: 'reviews', baseUrl: config.reviews.url, headers: { accept: 'application/json' }, rps: rps.reviews, ...stoppable(stopReviews) });
  }
  // A dry run never builds the Insider client: nothing can reach Insider.
  if (config.insider && !options.dryRun) {
    clients.insider = new ApiClient({
      ...common,
      api: 'insider',
      baseUrl: config.insider.url,
      headers: {
        'x-partner-name': config.insider.partnerName,
        'x-request-token': config.insider.apiKey,
        'content-type': 'application/json',
        accept: 'application/json',
      },
      rps: options.insiderRps,
    });
  }
  return clients;
}

/** What every command's Delivery takes from the common options. */
export function deliverySettings(options: CommonOptions, clients: Clients, failedFile: JsonlWriter<FailedRecord>) {
  return {
    ...(clients.insider ? { insider: clients.insider } : {}),
    concurrency: options.concurrency,
    batchSize: options.batchSize,
    maxBytes: options.maxRequestBytes,
    // Historical data never fires a journey unless the operator asks for it.
    skipHook: !options.triggerJourneys,
    failedFile,
  };
}

/**
 * Closes a run's output files, every one even if one fails; the first that cannot be finished
 * (disk full) becomes the run's error unless it already has one, so the run still ends with a
 * summary and an exit code.
 */
export async function closeOutputs(error: unknown, ...files: ({ close(): Promise<void> } | undefined)[]): Promise<unknown> {
  for (const file of files) {
    try {
      await file?.close();
    } catch (closeError) {
      error ??= closeError;
    }
  }
  return error;
}

/** The audit CSV of a run: with --dry-run (default name) or --out; none otherwise. */
export function auditFor(
  command: RunSummary['command'],
  options: Pick<CommonOptions, 'dryRun' | 'out'>,
  io: Io,
  startedAt: Date,
  columns: readonly string[],
): AuditCsv | undefined {
  if (!options.dryRun && !options.out) return undefined;
  const path = options.out === '-' ? '-' : resolve(io.cwd, options.out ?? `yotpo-insider-${command}-${fileTimestamp(startedAt)}.csv`);
  if (path !== '-') assertWritable(path, 'the audit CSV');
  return new AuditCsv(path, columns, io.stdout);
}

/** A user's outcome as the audit CSV's status. */
export function auditStatus(outcome: Outcome): AuditStatus {
  return outcome.status === 'would_send' ? 'would_send' : outcome.status === 'succeeded' ? 'sent' : 'failed';
}

export function failedFileFor(options: CommonOptions, io: Io, startedAt: Date): JsonlWriter<FailedRecord> {
  const path = resolve(io.cwd, options.failed ?? `yotpo-insider-failed-${fileTimestamp(startedAt)}.jsonl`);
  assertWritable(path, 'the failed file');
  return new JsonlWriter<FailedRecord>(path);
}

/**
 * Ends a run: the error (if any) becomes `stopped` and the exit code; the summary is printed
 * (JSON on stdout with --json, readable lines on stderr otherwise).
 */
export function finishRun(
  summary: RunSummary,
  error: unknown,
  counters: RequestCounters,
  startedAt: number,
  reporter: Reporter,
  io: Io,
  options: Pick<CommonOptions, 'json'>,
  resumeCommand?: string,
): RunSummary {
  copyRequestCounters(summary, counters);
  summary.duration_ms = Date.now() - startedAt;
  if (error) {
    summary.exit_code = exitCodeOf(error);
    summary.stopped = error instanceof InterruptedError ? 'interrupted by a signal' : (error as Error).message;
    if (!(error instanceof InterruptedError)) reporter.error(`error: ${(error as Error).message}`);
    if (!(summary.exit_code === EXIT.stopped || summary.exit_code === EXIT.interrupted)) {
      if (!(error instanceof AuthError)) reporter.verbose((error as Error).stack ?? '');
    }
  } else {
    summary.exit_code = outcomeExitCode(summary);
  }
  if (options.json) io.stdout.write(`${JSON.stringify(summary)}\n`);
  else for (const line of formatSummary(summary)) reporter.result(line);
  if (resumeCommand && (summary.exit_code === EXIT.stopped || summary.exit_code === EXIT.interrupted)) {
    reporter.error(`state saved; to resume, run: ${resumeCommand}`);
  }
  if (summary.failed_file && summary.command !== 'retry' && !summary.dry_run) {
    reporter.error(`some users failed; after fixing the cause, re-send them with: yotpo-insider retry ${summary.failed_file}`);
  } else if (summary.failed_file && summary.command === 'retry') {
    reporter.error(`some users failed again or were held back; see ${summary.failed_file}`);
  }
  return summary;
}
