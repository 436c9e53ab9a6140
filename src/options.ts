// Every command's options, declared once: flag, parser, default and help. The tables build the
// commander program, supply the defaults a programmatic call (a test, the demo) starts from, and
// type the options each command receives; the README's option tables are checked against them.

import { InvalidArgumentError } from 'commander';

export interface OptionSpec<T> {
  /** Commander's flag syntax: `--batch-size <n>`, `--dry-run`, `--no-reviews`. */
  flags: string;
  help: string;
  parse?: (raw: string) => T;
  default?: T;
  choices?: readonly string[];
  /** Shown in the README's table instead of the default's value. */
  shownDefault?: string;
  hidden?: boolean;
}

type Table = Record<string, OptionSpec<unknown>>;

/** The typed options a table yields: a default makes a value always present. */
export type OptionsOf<T extends Table> = {
  -readonly [K in keyof T]: T[K] extends { default: infer D } ? D : T[K] extends OptionSpec<infer V> ? V | undefined : never;
};

/** An option that always has a value. */
const spec = <T>(option: OptionSpec<T> & { default: T }): OptionSpec<T> & { default: T } => option;
/** An option that may be absent. */
const optional = <T>(option: Omit<OptionSpec<T>, 'default'>): OptionSpec<T> => option;
/** A switch: off by default, or on by default for a `--no-…` flag. */
const flag = (flags: string, help: string) => spec<boolean>({ flags, help, default: flags.startsWith('--no-') });

export function integer(min: number, max: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}`);
    const n = Number(value);
    if (n < min || n > max) throw new InvalidArgumentError(`must be from ${min} to ${max}`);
    return n;
  };
}

export function decimal(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < min || n > max)
      throw new InvalidArgumentError(`must be a number from ${min} to ${max}`);
    return n;
  };
}

const text = (value: string) => value;
const list = (value: string) =>
  value
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean);

/** Options of every run command (backfill, replay, retry; listen's delivery options). */
export const DELIVERY_OPTIONS = {
  concurrency: spec({ flags: '--concurrency <n>', help: 'Insider requests in flight', parse: integer(1, 64), default: 4 }),
  batchSize: spec({ flags: '--batch-size <n>', help: 'users per Insider request (1..1000)', parse: integer(1, 1000), default: 500 }),
  insiderRps: spec({
    flags: '--insider-rps <n>',
    help: 'max Insider requests per second (0 = no limit)',
    parse: decimal(0, 10_000),
    default: 50,
  }),
  failed: optional({
    flags: '--failed <file>',
    help: 'where users that could not be delivered are written (JSONL)',
    parse: text,
    shownDefault: '`yotpo-insider-failed-<timestamp>.jsonl`, created only when needed',
  }),
  state: optional({
    flags: '--state <dir>',
    help: "the account's state folder (checkpoints, ledger, run log)",
    parse: text,
    shownDefault: "the state store's folder for the configured Insider account",
  }),
  json: flag('--json', 'print the run summary as one JSON object on stdout'),
  quiet: flag('--quiet', 'print only errors and the final summary'),
  verbose: flag('--verbose', 'one line per request on stderr, and the stack of an unexpected error'),
  triggerJourneys: flag('--trigger-journeys', 'send skip_hook: false, so Insider journeys fire for this data'),
  timeout: spec({ flags: '--timeout <ms>', help: 'per-request timeout', parse: integer(100, 600_000), default: 60_000 }),
  maxAttempts: spec({ flags: '--max-attempts <n>', help: 'attempts per request, the first included', parse: integer(1, 20), default: 6 }),
  maxRetryAfter: spec({
    flags: '--max-retry-after <s>',
    help: 'longest Retry-After honoured, in seconds',
    parse: decimal(0, 3600),
    default: 60,
  }),
  onAmbiguous: spec<'hold' | 'resend'>({
    flags: '--on-ambiguous <hold|resend>',
    help: 'after an ambiguous failure of an upload carrying events: hold its events as uncertain, or re-send them',
    choices: ['hold', 'resend'],
    default: 'hold',
  }),
  allowMissingSchema: flag(
    '--allow-missing-schema',
    'send even when the Insider panel lacks attributes or events the mapping sends (they are dropped by Insider)',
  ),
  sampleSize: spec({
    flags: '--sample-size <n>',
    help: 'users of this run kept for verify (0 = none)',
    parse: integer(0, 100_000),
    default: 1000,
  }),
  retryBaseMs: spec({
    flags: '--retry-base-ms <ms>',
    help: 'first backoff ceiling',
    parse: integer(0, 60_000),
    default: 1000,
    hidden: true,
  }),
  maxRequestBytes: spec({
    flags: '--max-request-bytes <n>',
    help: "Insider's request-size limit",
    parse: integer(1000, 5_000_000),
    default: 5_000_000,
    hidden: true,
  }),
} satisfies Table;

export const COMMON_OPTIONS = {
  dryRun: flag('--dry-run', 'do everything except the upload to Insider; write the audit CSV'),
  out: optional({
    flags: '--out <file>',
    help: 'audit CSV path (- for stdout)',
    parse: text,
    shownDefault: '`yotpo-insider-<command>-<timestamp>.csv` with --dry-run',
  }),
  excel: flag('--excel', 'start the audit CSV with a byte-order mark, so spreadsheets read it as UTF-8'),
  ...DELIVERY_OPTIONS,
} satisfies Table;

export const BACKFILL_OPTIONS = {
  ...COMMON_OPTIONS,
  since: optional({
    flags: '--since <date|last>',
    help: 'send only customers active (last_seen_at) and reviewers with a review updated on or after this UTC date; last = the start of the last completed backfill',
    parse: text,
  }),
  withAnniversary: flag('--with-anniversary', 'look up each customer’s anniversary (one request each, within --loyalty-rps)'),
  limit: optional({ flags: '--limit <n>', help: 'stop after n customers (for trials)', parse: integer(1, Number.MAX_SAFE_INTEGER) }),
  reviews: flag('--no-reviews', 'skip the Reviews API (loyalty attributes only)'),
  loyalty: flag('--no-loyalty', 'skip the Loyalty API (reviewers with review attributes only)'),
  emails: optional({
    flags: '--emails <file>',
    help: 'backfill just these customers (one email per line, or a CSV with an email column)',
    parse: text,
  }),
  fresh: flag('--fresh', 'ignore the saved checkpoint and start over'),
  loyaltyRps: spec({
    flags: '--loyalty-rps <n>',
    help: 'Loyalty API requests per second (0 = no limit)',
    parse: decimal(0, 10_000),
    default: 5,
  }),
  reviewsRps: spec({
    flags: '--reviews-rps <n>',
    help: 'Reviews API requests per second (0 = no limit)',
    parse: decimal(0, 10_000),
    default: 20,
  }),
  birthdayPlaceholderYear: optional({
    flags: '--birthday-placeholder-year <yyyy>',
    help: 'year for birthdays and anniversaries without one',
    parse: integer(1, 9999),
  }),
  loyaltyEndpoint: spec<'recent' | 'all'>({
    flags: '--loyalty-endpoint <recent|all>',
    help: 'customer listing to page',
    choices: ['recent', 'all'],
    default: 'recent',
  }),
  pagesInFlight: spec({
    flags: '--pages-in-flight <n>',
    help: 'review pages (and `all` loyalty pages) requested at once',
    parse: integer(1, 64),
    default: 8,
  }),
} satisfies Table;

export const REPLAY_OPTIONS = {
  ...COMMON_OPTIONS,
  rejects: optional({
    flags: '--rejects <file>',
    help: 'where unusable lines are written (this run’s only)',
    parse: text,
    shownDefault: '`<input>.rejects.jsonl`',
  }),
  from: optional({ flags: '--from <date>', help: 'send only events at or after this UTC time', parse: text }),
  to: optional({ flags: '--to <date>', help: 'send only events at or before this UTC time', parse: text }),
  only: optional({ flags: '--only <events>', help: 'send only these events (comma-separated Insider or Yotpo names)', parse: list }),
  force: flag('--force', 're-send events the ledger says were delivered or are uncertain'),
  allowUnknownEvents: flag('--allow-unknown-events', 'send unknown events as the snake_case of their name'),
  timestampFallback: optional<'now'>({ flags: '--timestamp-fallback <now>', help: 'time for events without one', choices: ['now'] }),
  birthdayPlaceholderYear: BACKFILL_OPTIONS.birthdayPlaceholderYear,
} satisfies Table;

export const RETRY_OPTIONS = {
  ...COMMON_OPTIONS,
  force: flag('--force', 'also send users whose events Insider may already hold (delivery_uncertain), releasing those keys'),
} satisfies Table;

export type CommonOptions = OptionsOf<typeof COMMON_OPTIONS>;
export type BackfillOptions = OptionsOf<typeof BACKFILL_OPTIONS>;
export type ReplayOptions = OptionsOf<typeof REPLAY_OPTIONS>;
export type RetryOptions = OptionsOf<typeof RETRY_OPTIONS>;

/** The defaults of a table: what a run starts from before flags (or a test's overrides) apply. */
export function defaultsOf<T extends Table>(table: T): OptionsOf<T> {
  const values: Record<string, unknown> = {};
  for (const [key, option] of Object.entries(table)) if ('default' in option) values[key] = option.default;
  return values as OptionsOf<T>;
}

/** Defaults, then the given values: the options a command runs with. */
export function withDefaults<T extends Table>(table: T, given: Partial<OptionsOf<T>>): OptionsOf<T> {
  const values = { ...defaultsOf(table) } as Record<string, unknown>;
  for (const [key, value] of Object.entries(given)) if (value !== undefined) values[key] = value;
  return values as OptionsOf<T>;
}

export const LISTEN_OPTIONS = {
  host: spec({
    flags: '--host <address>',
    help: 'address to bind (any other than loopback needs YOTPO_WEBHOOK_TOKEN)',
    parse: text,
    default: '127.0.0.1',
  }),
  port: spec({ flags: '--port <n>', help: 'port to listen on', parse: integer(0, 65535), default: 8787 }),
  archive: optional({
    flags: '--archive <dir>',
    help: 'where deliveries are archived (webhooks-YYYY-MM-DD.jsonl)',
    parse: text,
    shownDefault: "`archive/` in the account's state folder",
  }),
  forward: flag('--no-forward', 'archive only; do not forward to Insider'),
  birthdayPlaceholderYear: BACKFILL_OPTIONS.birthdayPlaceholderYear,
  allowUnknownEvents: REPLAY_OPTIONS.allowUnknownEvents,
  ...DELIVERY_OPTIONS,
  failed: optional({ ...DELIVERY_OPTIONS.failed, shownDefault: '`failed-<timestamp>.jsonl` in the archive folder' }),
} satisfies Table;

export const VERIFY_OPTIONS = {
  sample: spec({ flags: '--sample <n>', help: 'users to check', parse: integer(1, 100_000), default: 100 }),
  run: optional({ flags: '--run <id>', help: "that run's sample instead of the last live run's (ids: yotpo-insider status)", parse: text }),
  from: optional({
    flags: '--from <audit.csv>',
    help: 'the sent rows of a live run’s audit CSV (--out) instead of the sample',
    parse: text,
  }),
  wait: optional({
    flags: '--wait <minutes>',
    help: 'check users not visible yet again until this much time has passed',
    parse: decimal(0, 24 * 60),
  }),
  uncertain: flag('--uncertain', "resolve the account's uncertain events instead"),
  olderThan: spec({
    flags: '--older-than <hours>',
    help: 'with --uncertain: release an absent event sent longer ago than this',
    parse: decimal(0, 24 * 90),
    default: 6,
  }),
  state: DELIVERY_OPTIONS.state,
  json: DELIVERY_OPTIONS.json,
  quiet: DELIVERY_OPTIONS.quiet,
  verbose: DELIVERY_OPTIONS.verbose,
} satisfies Table;

export const STATUS_OPTIONS = {
  state: DELIVERY_OPTIONS.state,
  json: flag('--json', 'print the status as one JSON object on stdout'),
} satisfies Table;

export const DOCTOR_OPTIONS = {
  json: flag('--json', 'print the results as JSON on stdout'),
  verbose: flag('--verbose', 'one line per request on stderr'),
} satisfies Table;

export const SANDBOX_OPTIONS = {
  customers: spec({ flags: '--customers <n>', help: 'loyalty customers', parse: integer(0, 100_000_000), default: 2000 }),
  reviews: spec({ flags: '--reviews <n>', help: 'reviews', parse: integer(0, 100_000_000), default: 3000 }),
  seed: spec({ flags: '--seed <n>', help: 'data seed', parse: integer(0, 2 ** 31), default: 1 }),
  port: spec({ flags: '--port <n>', help: 'port (0 = any free port)', parse: integer(0, 65535), default: 0 }),
  latency: spec({ flags: '--latency <ms>', help: 'added to every API response', parse: integer(0, 60_000), default: 0 }),
  failRate: spec({ flags: '--fail-rate <0..1>', help: 'share of API requests answered 5xx', parse: decimal(0, 1), default: 0 }),
  rateLimit: spec({
    flags: '--rate-limit <rps>',
    help: 'per-API requests per second before 429 (0 = none)',
    parse: decimal(0, 100_000),
    default: 0,
  }),
  rejectRate: spec({
    flags: '--reject-rate <0..1>',
    help: 'share of users Insider rejects in fail.errors',
    parse: decimal(0, 1),
    default: 0,
  }),
  missingAttributes: optional({
    flags: '--missing-attributes <names>',
    help: 'custom attributes the panel lacks (their values are dropped silently)',
    parse: list,
  }),
  mistypedAttributes: optional({
    flags: '--mistyped-attributes <names>',
    help: 'custom attributes the panel has with another type',
    parse: list,
  }),
  tokenTtl: optional({
    flags: '--token-ttl <requests>',
    help: 'a Reviews token stops being honoured after this many requests',
    parse: integer(1, 1_000_000),
  }),
  visibilityDelay: optional({
    flags: '--visibility-delay <s>',
    help: 'seconds before an upserted user shows in the profile API',
    parse: decimal(0, 86_400),
  }),
  loyaltyCursorFault: optional<'repeat' | 'cycle' | 'empty-with-cursor' | 'numeric'>({
    flags: '--loyalty-cursor-fault <mode>',
    help: 'a hostile loyalty listing: repeat, cycle, empty-with-cursor or numeric cursors',
    choices: ['repeat', 'cycle', 'empty-with-cursor', 'numeric'],
  }),
  reviewsFault: optional<'hole' | 'never-empty'>({
    flags: '--reviews-fault <mode>',
    help: 'a hostile reviews listing: hole (an empty page before full ones) or never-empty',
    choices: ['hole', 'never-empty'],
  }),
  afterStore: optional<'slow' | 'reset' | '502' | '500' | 'bad-counts' | 'unreadable' | 'hold'>({
    flags: '--after-store <mode>',
    help: 'Insider stores each upsert, then answers badly: slow, reset, 502, 500, bad-counts, unreadable or hold',
    choices: ['slow', 'reset', '502', '500', 'bad-counts', 'unreadable', 'hold'],
  }),
  webhooks: optional({
    flags: '--webhooks <file>',
    help: 'post these saved webhooks to --post-to (as Yotpo would) instead of serving',
    parse: text,
  }),
  postTo: optional({ flags: '--post-to <url>', help: 'the listener --webhooks posts to', parse: text }),
  rate: spec({ flags: '--rate <n/s>', help: 'deliveries per second with --webhooks', parse: decimal(0.1, 100_000), default: 50 }),
} satisfies Table;

export type ListenOptions = OptionsOf<typeof LISTEN_OPTIONS>;
export type VerifyCliOptions = OptionsOf<typeof VERIFY_OPTIONS>;
export type StatusOptions = OptionsOf<typeof STATUS_OPTIONS>;
export type SandboxCliOptions = OptionsOf<typeof SANDBOX_OPTIONS>;
