// `yotpo-insider verify` (SPEC §9): reads a sample of delivered users back from Insider's profile
// API and compares them with what was sent; `--uncertain` resolves the account's uncertain events
// by looking for each one in its user's profile. Reads Insider only; writes only what `deps` records.

import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse } from 'csv-parse';
import { loadConfig } from '../config.js';
import { type Random, Reservoir } from '../core/reservoir.js';
import type { Scalar } from '../core/values.js';
import {
  compareUser,
  instantOf,
  isBeyondRetention,
  profileHasEvent,
  resolveUncertain,
  sentUserFromAuditRow,
  summarise,
  DEFAULT_EVENT_RETENTION_MS,
  DEFAULT_INGESTION_LAG_MS,
  type SentUser,
  type UncertainEntry,
  type UncertainResolution,
  type UserCheck,
  type VerifySummary,
} from '../core/verify.js';
import { EXIT, exitCodeOf, InterruptedError, UsageError } from '../errors.js';
import { ProfilePacer, readProfile, type Profile } from '../insider/profile.js';
import type { ApiClient, RequestCounters } from '../io/http.js';
import { DELIVERY_OPTIONS } from '../options.js';
import { redact } from '../io/redact.js';
import { Reporter, type Io } from '../pipeline/report.js';
import { makeClients } from '../pipeline/run.js';
import { VERSION } from '../pipeline/summary.js';

export interface VerifyOptions {
  /** `--sample n`: users checked (default 100). */
  sample: number;
  /** `--wait <minutes>`: check users not visible yet again until this much time has passed. */
  wait?: number;
  json: boolean;
  /** `--from <audit.csv>`: the `sent` rows of a live run's audit CSV instead of the store's sample. */
  from?: string;
  /** `--run <id>`: that run's sample instead of the latest. */
  run?: string;
  /** `--uncertain`: resolve the account's uncertain events instead. */
  uncertain?: boolean;
  /** `--older-than <hours>`: the ingestion lag after which an absent event is released (default 6). */
  olderThanHours?: number;
  quiet: boolean;
  verbose: boolean;
  timeoutMs?: number;
  maxAttempts?: number;
  retryBaseMs?: number;
  /** Cap on a Retry-After, in seconds. */
  maxRetryAfter?: number;
}

/** `--older-than`'s default: Insider's ingestion lag, in hours. */
export const DEFAULT_OLDER_THAN_HOURS = DEFAULT_INGESTION_LAG_MS / 3_600_000;

/** What verify needs from the state store and the world; the CLI wires them, tests inject them. */
export interface VerifyDeps {
  /**
   * The users a live run confirmed, with the attributes sent (the store's reservoir of that run,
   * or of the latest live run when `run` is undefined). Undefined: no live run has kept a sample.
   */
  loadSample?: (run: string | undefined) => AsyncIterable<SentUser> | Iterable<SentUser> | undefined;
  /** The account's uncertain events (the ledger's). */
  uncertainEntries?: () => readonly UncertainEntry[] | Promise<readonly UncertainEntry[]>;
  /** Records delivered / released keys (ledger settle); beyondRetention and tooRecent stay uncertain. */
  recordResolution?: (resolution: UncertainResolution) => Promise<void>;
  pacer?: ProfilePacer;
  now?: () => number;
  /** The wait between --wait rounds (tests make it short). */
  pause?: (ms: number) => Promise<void>;
  /** Time between --wait rounds; default 60 s. */
  roundIntervalMs?: number;
  /** Draws --sample n of the users; seeded in tests. */
  random?: Random;
  /** SIGINT/SIGTERM: stop between calls and during waits (exit 130, nothing recorded). */
  signal?: AbortSignal;
}

export interface SampleReport extends VerifySummary {
  command: 'verify';
  version: string;
  mode: 'sample';
  source: string;
  differences: { email: string; attribute: string; sent: Scalar; stored: unknown }[];
  missing: { email: string; attributes: string[] }[];
  not_visible: string[];
  rounds: number;
  requests: { insider: number; retries: number };
  duration_ms: number;
  exit_code: number;
  error?: string;
}

export interface UncertainReport {
  command: 'verify';
  version: string;
  mode: 'uncertain';
  uncertain: number;
  delivered: number;
  released: number;
  too_recent: number;
  beyond_retention: number;
  /** The latest instant at which an event still too recent can be decided: run again after it. */
  run_again_after: string | null;
  users_not_visible: number;
  /** Keys the ledger holds without the user, name or time needed to look for them: only `retry --force` releases them. */
  unresolvable: string[];
  resolution: UncertainResolution;
  requests: { insider: number; retries: number };
  duration_ms: number;
  exit_code: number;
  error?: string;
}

export type VerifyReport = SampleReport | UncertainReport;

const DAY_MS = 24 * 60 * 60 * 1000;
const PROGRESS_EVERY_MS = 10_000;

/** The `sent` rows of an audit CSV, streamed. */
async function* auditSentUsers(path: string): AsyncGenerator<SentUser> {
  // pipeline, not pipe: a file that cannot be opened must fail the iteration, not the process.
  const rows = pipeline(
    createReadStream(path),
    parse({ columns: true, bom: true, relax_column_count: true, skip_empty_lines: true }),
    () => {},
  );
  for await (const row of rows as AsyncIterable<Record<string, string>>) {
    const user = sentUserFromAuditRow(row);
    if (user) yield user;
  }
}

function checkOptions(options: VerifyOptions): void {
  if (!Number.isInteger(options.sample) || options.sample < 1)
    throw new UsageError(`--sample must be a whole number ≥ 1, not ${options.sample}`);
  if (options.wait !== undefined && !(options.wait >= 0))
    throw new UsageError(`--wait must be a number of minutes ≥ 0, not ${options.wait}`);
  if (options.olderThanHours !== undefined && !(options.olderThanHours >= 0)) {
    throw new UsageError(`--older-than must be a number of hours ≥ 0, not ${options.olderThanHours}`);
  }
  if (options.uncertain && options.from) throw new UsageError('--uncertain reads the ledger: it cannot be combined with --from');
}

function insiderClient(options: VerifyOptions, io: Io, reporter: Reporter): { client: ApiClient; counters: RequestCounters } {
  const clients = makeClients(
    loadConfig(['insider'], io),
    {
      timeout: options.timeoutMs ?? DELIVERY_OPTIONS.timeout.default,
      maxAttempts: options.maxAttempts ?? DELIVERY_OPTIONS.maxAttempts.default,
      retryBaseMs: options.retryBaseMs ?? DELIVERY_OPTIONS.retryBaseMs.default,
      maxRetryAfter: options.maxRetryAfter ?? DELIVERY_OPTIONS.maxRetryAfter.default,
      // The profile quota paces verify, not the upload rate.
      insiderRps: 0,
      dryRun: false,
    },
    {},
    reporter,
  );
  return { client: clients.insider!, counters: clients.counters };
}

async function drawSample(users: AsyncIterable<SentUser> | Iterable<SentUser>, size: number, random: Random): Promise<SentUser[]> {
  const reservoir = new Reservoir<SentUser>(size, random);
  for await (const user of users) reservoir.offer(user);
  // One profile call per user: an email drawn twice is checked once, with its latest values.
  const byEmail = new Map<string, SentUser>();
  for (const user of reservoir.items()) byEmail.set(user.email.trim().toLowerCase(), user);
  return [...byEmail.values()];
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

export async function runVerify(
  options: VerifyOptions,
  io: Io,
  deps: VerifyDeps = {},
): Promise<{ exitCode: number; summary: VerifyReport }> {
  const reporter = new Reporter(io, { quiet: options.quiet, verbose: options.verbose });
  const now = deps.now ?? Date.now;
  const started = now();
  let counters: RequestCounters | undefined;
  const report: { current: VerifyReport } = {
    current: options.uncertain ? emptyUncertainReport() : emptySampleReport(options.from ? `audit CSV ${options.from}` : 'the state store'),
  };
  try {
    checkOptions(options);
    const insider = insiderClient(options, io, reporter);
    counters = insider.counters;
    const client = insider.client;
    const pacer = deps.pacer ?? new ProfilePacer(deps.signal ? { signal: deps.signal } : {});
    report.current = options.uncertain
      ? await verifyUncertain(options, deps, client, pacer, reporter, now)
      : await verifySample(options, deps, client, pacer, reporter, now);
  } catch (caught) {
    const error = deps.signal?.aborted ? new InterruptedError() : caught;
    const message = redact(error instanceof Error ? error.message : String(error));
    report.current.exit_code = exitCodeOf(error);
    report.current.error = message;
    reporter.error(`verify: ${message}`);
  }
  const summary = report.current;
  summary.requests = { insider: counters?.requests.insider ?? 0, retries: counters?.retries ?? 0 };
  summary.duration_ms = now() - started;
  if (options.json) io.stdout.write(`${redact(JSON.stringify(summary))}\n`);
  return { exitCode: summary.exit_code, summary };
}

function emptySampleReport(source: string): SampleReport {
  return {
    command: 'verify',
    version: VERSION,
    mode: 'sample',
    source,
    checked: 0,
    users: { match: 0, differs: 0, missing_attributes: 0, not_visible_yet: 0 },
    attributes: {},
    causes: [],
    differences: [],
    missing: [],
    not_visible: [],
    rounds: 0,
    requests: { insider: 0, retries: 0 },
    duration_ms: 0,
    exit_code: EXIT.ok,
  };
}

function emptyUncertainReport(): UncertainReport {
  return {
    command: 'verify',
    version: VERSION,
    mode: 'uncertain',
    uncertain: 0,
    delivered: 0,
    released: 0,
    too_recent: 0,
    beyond_retention: 0,
    run_again_after: null,
    users_not_visible: 0,
    unresolvable: [],
    resolution: { delivered: [], released: [], tooRecent: [], beyondRetention: [] },
    requests: { insider: 0, retries: 0 },
    duration_ms: 0,
    exit_code: EXIT.ok,
  };
}

async function verifySample(
  options: VerifyOptions,
  deps: VerifyDeps,
  client: ApiClient,
  pacer: ProfilePacer,
  reporter: Reporter,
  now: () => number,
): Promise<SampleReport> {
  const report = emptySampleReport(options.from ? `audit CSV ${options.from}` : 'the state store');
  const source = options.from ? auditSentUsers(options.from) : deps.loadSample?.(options.run);
  if (!source) {
    throw new UsageError(
      options.run
        ? `nothing to verify: run ${options.run} kept no sample of confirmed users`
        : 'nothing to verify: no live run has confirmed users for this Insider account yet; run `yotpo-insider backfill` (or replay/retry) first, or pass --from <audit.csv> written by a live run with --out',
    );
  }
  let sample: SentUser[];
  try {
    sample = await drawSample(source, options.sample, deps.random ?? Math.random);
  } catch (error) {
    if (options.from && (error as NodeJS.ErrnoException).code !== undefined) {
      throw new UsageError(`cannot read the audit CSV ${options.from}: ${(error as Error).message}`);
    }
    throw error;
  }
  if (sample.length === 0) {
    throw new UsageError(
      options.from
        ? `nothing to verify: ${options.from} has no \`sent\` rows (a dry run's CSV says would_send; verify needs a live run's --out)`
        : 'nothing to verify: the last live run confirmed no users',
    );
  }

  const waitUntil = options.wait ? now() + options.wait * 60_000 : undefined;
  const interval = deps.roundIntervalMs ?? 60_000;
  const pause = deps.pause ?? ((ms: number) => sleep(ms, undefined, deps.signal ? { signal: deps.signal } : {}));
  const results = new Map<string, UserCheck>();
  let pending = sample;
  let lastProgress = now();
  for (;;) {
    report.rounds++;
    let done = 0;
    for (const user of pending) {
      deps.signal?.throwIfAborted();
      const profile = await readProfile(client, user.email, { attributes: Object.keys(user.attributes), pacer });
      results.set(
        user.email,
        profile.found
          ? { email: user.email, ...compareUser(user.attributes, profile.attributes) }
          : { email: user.email, verdict: 'not visible yet' },
      );
      done++;
      if (now() - lastProgress >= PROGRESS_EVERY_MS) {
        lastProgress = now();
        reporter.info(`verify: checked ${done} of ${pending.length} user(s)`);
      }
    }
    pending = pending.filter((user) => results.get(user.email)?.verdict === 'not visible yet');
    const left = waitUntil === undefined ? 0 : waitUntil - now();
    if (pending.length === 0 || left <= 0) break;
    const pauseMs = Math.min(interval, left);
    reporter.info(
      `verify: ${plural(pending.length, 'user')} of ${sample.length} not visible yet; checking again in ${Math.ceil(pauseMs / 1000)} s ` +
        `(${Math.ceil(left / 60_000)} min of --wait left)`,
    );
    await pause(pauseMs);
    lastProgress = now();
  }

  const checks = sample.map((user) => results.get(user.email)!);
  Object.assign(report, summarise(checks, options.wait ? { waitedMinutes: options.wait } : {}));
  for (const check of checks) {
    if (check.verdict === 'not visible yet') report.not_visible.push(check.email);
    else {
      for (const difference of check.differs) report.differences.push({ email: check.email, ...difference });
      if (check.missing.length > 0) report.missing.push({ email: check.email, attributes: check.missing });
    }
  }
  report.exit_code = report.users.match === report.checked ? EXIT.ok : EXIT.someFailed;
  printSample(report, reporter);
  return report;
}

const SHOWN_PER_LIST = 20;

function printSample(report: SampleReport, reporter: Reporter): void {
  const { users } = report;
  reporter.result(
    `verify: checked ${plural(report.checked, 'user')} from ${report.source}: ${users.match} match, ${users.differs} differ, ` +
      `${users.missing_attributes} missing attributes, ${users.not_visible_yet} not visible yet`,
  );
  const show = (lines: string[]) => {
    for (const line of lines.slice(0, SHOWN_PER_LIST)) reporter.info(`  ${line}`);
    if (lines.length > SHOWN_PER_LIST) reporter.info(`  … and ${lines.length - SHOWN_PER_LIST} more (--json lists them all)`);
  };
  show(
    report.differences.map((d) => `${d.email}: ${d.attribute} differs: sent ${JSON.stringify(d.sent)}, stored ${JSON.stringify(d.stored)}`),
  );
  show(report.missing.map((m) => `${m.email}: missing ${m.attributes.join(', ')}`));
  show(report.not_visible.map((email) => `${email}: not visible yet`));
  for (const cause of report.causes) reporter.result(`cause: ${cause}`);
  if (report.exit_code === EXIT.ok) reporter.result('verify: every checked user matches what was sent');
}

async function verifyUncertain(
  options: VerifyOptions,
  deps: VerifyDeps,
  client: ApiClient,
  pacer: ProfilePacer,
  reporter: Reporter,
  now: () => number,
): Promise<UncertainReport> {
  const report = emptyUncertainReport();
  if (!deps.uncertainEntries)
    throw new UsageError("verify --uncertain needs the account's state store (its ledger), which is not available");
  const all = await deps.uncertainEntries();
  report.uncertain = all.length;
  // An entry without its user or time (an older ledger's) cannot be looked for: it stays uncertain.
  const entries = all.filter((entry) => entry.email !== '' && entry.event_name !== '' && instantOf(entry.timestamp) !== undefined);
  report.unresolvable = all.filter((entry) => !entries.includes(entry)).map((entry) => entry.key);
  if (all.length === 0) {
    reporter.result('verify --uncertain: no uncertain events for this account: nothing to resolve');
    return report;
  }
  const at = now();
  const olderThanMs = (options.olderThanHours ?? DEFAULT_OLDER_THAN_HOURS) * 3_600_000;

  // One profile call per user, for all of its uncertain events at once.
  const byEmail = new Map<string, UncertainEntry[]>();
  for (const entry of entries) {
    if (isBeyondRetention(entry, at, DEFAULT_EVENT_RETENTION_MS)) continue;
    const list = byEmail.get(entry.email) ?? [];
    list.push(entry);
    byEmail.set(entry.email, list);
  }
  const profiles = new Map<string, Profile>();
  for (const [email, list] of byEmail) {
    deps.signal?.throwIfAborted();
    const times = list.map((entry) => Date.parse(entry.timestamp)).filter(Number.isFinite);
    const window =
      times.length > 0
        ? { from: new Date(Math.min(...times) - DAY_MS).toISOString(), to: new Date(Math.max(...times) + DAY_MS).toISOString() }
        : undefined;
    const eventNames = [...new Set(list.map((entry) => entry.event_name))];
    profiles.set(
      email,
      await readProfile(client, email, { attributes: ['email'], ...(window ? { eventsWindow: window, eventNames } : {}), pacer }),
    );
  }
  const resolution = resolveUncertain(
    entries,
    (entry) => {
      const profile = profiles.get(entry.email);
      if (!profile?.found) return undefined;
      return profileHasEvent(profile.events, entry.event_name, entry.timestamp);
    },
    { now: at, olderThanMs, retentionMs: DEFAULT_EVENT_RETENTION_MS },
  );
  await deps.recordResolution?.(resolution);

  report.resolution = resolution;
  report.delivered = resolution.delivered.length;
  report.released = resolution.released.length;
  report.too_recent = resolution.tooRecent.length;
  report.beyond_retention = resolution.beyondRetention.length;
  report.users_not_visible = [...profiles.values()].filter((profile) => !profile.found).length;
  report.run_again_after = resolution.tooRecent.reduce<string | null>(
    (latest, { retry_after }) => (latest === null || retry_after > latest ? retry_after : latest),
    null,
  );
  report.exit_code = resolution.tooRecent.length > 0 || report.unresolvable.length > 0 ? EXIT.someFailed : EXIT.ok;

  reporter.result(
    `verify --uncertain: ${plural(entries.length, 'uncertain event')}: ${report.delivered} delivered (found in Insider), ` +
      `${report.released} released (absent ${options.olderThanHours ?? DEFAULT_OLDER_THAN_HOURS} h after sending: the next retry of its failed file, replay of its input or listen sends it), ` +
      `${report.too_recent} too recent to decide, ${report.beyond_retention} beyond Insider's event retention (never released: Insider would not store it)`,
  );
  if (report.unresolvable.length > 0) {
    reporter.result(
      `verify --uncertain: ${plural(report.unresolvable.length, 'uncertain event')} recorded without the user, name or time needed to look for it ` +
        '(they stay uncertain; `yotpo-insider retry --force <failed file>` sends them again if you decide so)',
    );
  }
  if (report.run_again_after) reporter.result(`verify --uncertain: run it again after ${report.run_again_after} to decide the rest`);
  return report;
}
