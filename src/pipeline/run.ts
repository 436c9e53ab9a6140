// What the run pipeline builds for every command: its API clients, its output files (audit CSV,
// failed file, rejects file) and how a run ends (summary, exit code, the hints an operator needs).

import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Config } from '../config.js';
import { AuthError, EXIT, exitCodeOf, InterruptedError, UsageError, type ApiName } from '../errors.js';
import { insiderHeaders } from '../insider/headers.js';
import { AuditCsv } from '../io/csv.js';
import { assertWritable } from '../io/files.js';
import { ApiClient, newRequestCounters, type RequestCounters } from '../io/http.js';
import { JsonlWriter } from '../io/jsonl.js';
import { redact } from '../io/redact.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from '../io/retry.js';
import type { CommonOptions } from '../options.js';
import { loyaltyHeaders } from '../yotpo/loyalty.js';
import type { Reporter, Io } from './report.js';
import { copyRequestCounters, formatSummary, outcomeExitCode, type RunCommand, type RunSummary } from './summary.js';

export type { CommonOptions };

/** Controls a run from outside: the CLI aborts `signal` on SIGINT/SIGTERM/SIGHUP. */
export interface RunControl {
  signal?: AbortSignal;
}

/** `20261128T120000Z`: sortable, and safe in a file name on every OS. */
export function fileTimestamp(date: Date): string {
  return date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.(\d+)Z$/, '$1Z');
}

export function retryPolicy(options: Pick<CommonOptions, 'maxAttempts' | 'retryBaseMs' | 'maxRetryAfter'>): RetryPolicy {
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

/**
 * The clients a run uses. Yotpo requests stop with the run (`stop`); Insider uploads in flight may
 * finish during the wrap-up. A dry run never builds the Insider upload client.
 */
export function makeClients(
  config: Config,
  options: Pick<CommonOptions, 'maxAttempts' | 'retryBaseMs' | 'maxRetryAfter' | 'timeout' | 'insiderRps' | 'dryRun'>,
  rps: Partial<Record<ApiName, number>>,
  reporter: Reporter,
  {
    stop,
    insiderStop,
    counters = newRequestCounters(),
  }: {
    /** Stops Yotpo requests and their waits. */
    stop?: AbortSignal | undefined;
    /** Only for reads (the schema check): uploads in flight are never aborted, they may finish. */
    insiderStop?: AbortSignal | undefined;
    /** Shared with another set of clients, so the summary counts every request. */
    counters?: RequestCounters;
  } = {},
): Clients {
  const common = {
    retry: retryPolicy(options),
    timeoutMs: options.timeout,
    counters,
    ...(reporter.verboseEnabled ? { log: reporter.verbose } : {}),
  };
  const stoppable = stop ? { signal: stop } : {};
  const clients: Clients = { counters: common.counters };
  if (config.loyalty && rps.loyalty !== undefined) {
    clients.loyalty = new ApiClient({
      ...common,
      ...stoppable,
      api: 'loyalty',
      baseUrl: config.loyalty.url,
      headers: loyaltyHeaders(config.loyalty),
      rps: rps.loyalty,
    });
  }
  if (config.reviews && rps.reviews !== undefined) {
    clients.reviews = new ApiClient({
      ...common,
      ...stoppable,
      api: 'reviews',
      baseUrl: config.reviews.url,
      headers: { accept: 'application/json' },
      rps: rps.reviews,
    });
  }
  if (config.insider && !options.dryRun) {
    clients.insider = new ApiClient({
      ...common,
      ...(insiderStop ? { signal: insiderStop } : {}),
      api: 'insider',
      baseUrl: config.insider.url,
      headers: insiderHeaders(config.insider),
      rps: options.insiderRps,
    });
  }
  return clients;
}

export interface Outputs {
  audit?: AuditCsv;
  failed?: JsonlWriter<Record<string, unknown>>;
  rejects?: JsonlWriter<Record<string, unknown>>;
  /** Recorded on every failed line, so a retry against another account is refused. */
  account: { partner: string; url: string } | null;
}

/**
 * The run's output files, checked before anything is sent (a folder, no permission, a symbolic
 * link: exit 2) and created only when first written (the audit CSV at once).
 */
export function openOutputs(
  command: RunCommand,
  options: CommonOptions,
  io: Io,
  startedAt: Date,
  columns: readonly string[],
  insider: Config['insider'],
  rejects?: { file: string; append: boolean },
  onStdoutClosed?: () => void,
): Outputs {
  if (options.out === '-' && options.json)
    throw new UsageError('--out - writes the CSV to stdout, where --json writes the summary: choose one (or --out <file>)');
  const stamp = fileTimestamp(startedAt);
  const failedPath = resolve(io.cwd, options.failed ?? `yotpo-insider-failed-${stamp}.jsonl`);
  assertWritable(failedPath, 'the failed file');
  const outputs: Outputs = {
    failed: new JsonlWriter(failedPath),
    account: insider ? { partner: insider.partnerName, url: insider.url } : null,
  };
  if (rejects !== undefined) {
    const rejectsPath = resolve(io.cwd, rejects.file);
    assertWritable(rejectsPath, 'the rejects file');
    // A replay's rejects file holds this run's rejects only: an earlier run's would read as this one's.
    if (!rejects.append) rmSync(rejectsPath, { force: true });
    outputs.rejects = new JsonlWriter(rejectsPath);
  }
  if (options.dryRun || options.out) {
    const path = options.out === '-' ? '-' : resolve(io.cwd, options.out ?? `yotpo-insider-${command}-${stamp}.csv`);
    if (path !== '-') assertWritable(path, 'the audit CSV');
    outputs.audit = new AuditCsv(path, columns, io.stdout, { excel: options.excel, ...(onStdoutClosed ? { onStdoutClosed } : {}) });
  }
  return outputs;
}

/**
 * Closes output files, every one even if one fails; the first that cannot be finished (disk full)
 * becomes the run's error unless it already has one, so the run still ends with a summary.
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

/**
 * Ends a run: the error (if any) becomes `error`, `stopped` and the exit code; the summary is printed
 * (JSON on stdout with --json, readable lines on stderr otherwise), then what to do next.
 */
export function finishRun(
  summary: RunSummary,
  error: unknown,
  counters: RequestCounters | undefined,
  startedAt: number,
  reporter: Reporter,
  io: Io,
  options: Pick<CommonOptions, 'json' | 'dryRun' | 'state'>,
  resumeHint?: string,
): RunSummary {
  // The follow-up commands name the state folder the run used, or they would read another account's.
  const state = options.state ? ` --state ${options.state}` : '';
  if (counters) {
    copyRequestCounters(summary, counters);
    summary.resent_after_ambiguous = counters.resentAfterAmbiguous ?? 0;
  }
  summary.duration_ms = Date.now() - startedAt;
  if (error) {
    summary.exit_code = exitCodeOf(error);
    const message = redact(error instanceof Error ? error.message : String(error));
    summary.stopped = error instanceof InterruptedError ? 'interrupted by a signal' : message;
    if (summary.exit_code === EXIT.usage || summary.exit_code === EXIT.stopped) summary.error = message;
    if (!(error instanceof InterruptedError)) reporter.error(`error: ${message}`);
    if (summary.exit_code === EXIT.someFailed && !(error instanceof AuthError) && error instanceof Error)
      reporter.verbose(redact(error.stack ?? ''));
  } else {
    summary.exit_code = outcomeExitCode(summary);
  }
  // A usage error before anything was read: the error line says it all.
  const nothingDone = summary.exit_code === EXIT.usage && summary.users.read + summary.events.read === 0;
  if (options.json) writeQuietly(io.stdout, `${JSON.stringify(summary)}\n`);
  else if (!nothingDone) for (const line of formatSummary(summary)) reporter.result(line);
  if (resumeHint && (summary.exit_code === EXIT.stopped || summary.exit_code === EXIT.interrupted)) {
    reporter.error(`state saved; to resume, run: ${resumeHint}`);
  }
  const uncertainEvents = summary.events.uncertain;
  if (uncertainEvents > 0 && !summary.dry_run) {
    reporter.error(
      `${uncertainEvents} event(s) are uncertain: Insider may hold them. Run yotpo-insider verify --uncertain${state} to settle them (found → delivered, absent after 6 h → released), then yotpo-insider retry ${summary.failed_file ?? '<failed file>'}${state}`,
    );
  }
  if (summary.failed_file && !summary.dry_run) {
    reporter.error(
      summary.command === 'retry'
        ? `some users failed again or were held back; see ${summary.failed_file}`
        : `some users were not delivered; after fixing the cause, re-send them with: yotpo-insider retry ${summary.failed_file}${state}`,
    );
  }
  return summary;
}

/** stdout closed by the reader (`| head`): the run goes on without it (SPEC §5). */
function writeQuietly(stream: NodeJS.WritableStream, text: string): void {
  try {
    stream.write(text);
  } catch {
    // nothing left to tell
  }
}
