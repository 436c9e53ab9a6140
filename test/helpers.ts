// Test helpers: an Io that captures what the CLI prints, a private working folder, the CLI run as a
// process, the expected results computed straight from the sandbox's generators and the fixture.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Io } from '../src/pipeline/report.js';
import { customerAt, reviewAt, type Sandbox } from '../src/sandbox/index.js';

export interface CapturedIo extends Io {
  out(): string;
  err(): string;
}

/**
 * The state store of a test lives in its working folder, never in the real home: unless the test
 * names one, YOTPO_INSIDER_STATE_DIR points inside `cwd`.
 */
export function captureIo(env: Record<string, string>, cwd = workdir()): CapturedIo {
  env = { YOTPO_INSIDER_STATE_DIR: join(cwd, '.state'), ...env };
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
  return { stdout, stderr, stderrIsTty: false, env, cwd, out: () => out, err: () => err };
}

// Every working folder a test makes is removed when the test process ends, whatever its outcome.
const removeAtExit = new Set<string>();
process.once('exit', () => {
  for (const dir of removeAtExit) rmSync(dir, { recursive: true, force: true });
});

/** The one account folder of a working folder's state root (`<cwd>/.state`). */
export function accountDir(cwd: string): string {
  const root = join(cwd, '.state');
  const names = readdirSync(root);
  assert.equal(names.length, 1, `one account folder in ${root}: ${names.join(', ')}`);
  return join(root, names[0]!);
}

/** The one backfill checkpoint saved under a working folder's state root, parsed. */
export function savedCheckpoint(cwd: string): Record<string, any> {
  const dir = join(accountDir(cwd), 'checkpoints');
  const files = readdirSync(dir).filter((name) => name.endsWith('.json'));
  assert.equal(files.length, 1, `one checkpoint in ${dir}: ${files.join(', ')}`);
  const file = join(dir, files[0]!);
  return { ...(JSON.parse(readFileSync(file, 'utf8')) as Record<string, any>), file };
}

export function workdir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'yotpo-insider-test-'));
  removeAtExit.add(dir);
  return dir;
}

/** Options that lift every rate limit and shorten backoff, so tests run at loopback speed. */
export const FAST = { loyaltyRps: 0, reviewsRps: 0, insiderRps: 0, retryBaseMs: 5, maxRetryAfter: 0.05 } as const;

export function normalised(email: unknown): string | undefined {
  if (typeof email !== 'string') return undefined;
  const e = email.trim().toLowerCase();
  return /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(e) ? e : undefined;
}

export function sandboxCustomers(seed: number, customers: number): Record<string, unknown>[] {
  return Array.from({ length: customers }, (_, i) => customerAt(seed, i));
}

export function sandboxReviews(seed: number, reviews: number, customers: number): Record<string, unknown>[] {
  return Array.from({ length: reviews }, (_, j) => reviewAt(seed, j, customers));
}

/** MAPPING §4 computed the plain way (lists of reviews), independent of the product's aggregator. */
export function expectedAggregates(reviews: Record<string, unknown>[]): Map<string, Record<string, unknown>> {
  const byEmail = new Map<string, Record<string, unknown>[]>();
  const seen = new Set<unknown>();
  for (const review of reviews) {
    if (seen.has(review.id)) continue;
    seen.add(review.id);
    const email = normalised(review.email);
    if (!email) continue;
    if (!byEmail.has(email)) byEmail.set(email, []);
    if (review.deleted !== true) byEmail.get(email)!.push(review);
  }
  const round = (x: number) => (Math.sign(x) * Math.round(Math.abs(x) * 100 + 1e-9)) / 100;
  const mean = (xs: number[]) => (xs.length ? round(xs.reduce((a, b) => a + b, 0) / xs.length) : undefined);
  const result = new Map<string, Record<string, unknown>>();
  for (const [email, list] of byEmail) {
    const site = list.filter((r) => r.sku === 'yotpo_site_reviews');
    const product = list.filter((r) => r.sku !== 'yotpo_site_reviews');
    const sentiments = (rs: Record<string, unknown>[]) => rs.map((r) => r.sentiment).filter((s): s is number => typeof s === 'number');
    const topicCounts = new Map<string, number>();
    for (const r of list) for (const t of (r.topics as string[] | undefined) ?? []) topicCounts.set(t, (topicCounts.get(t) ?? 0) + 1);
    const topics = [...topicCounts]
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .slice(0, 5)
      .map(([t]) => t);
    const values: Record<string, unknown> = {
      yotpo_total_reviews: list.length,
      yotpo_avg_product_rating: mean(product.map((r) => r.score as number)),
      yotpo_avg_site_rating: mean(site.map((r) => r.score as number)),
      yotpo_total_avg_rating: mean(list.map((r) => r.score as number)),
      yotpo_avg_sentiment_product: mean(sentiments(product)),
      yotpo_avg_sentiment_site: mean(sentiments(site)),
      yotpo_total_avg_sentiment: mean(sentiments(list)),
      yotpo_top_topics: topics.length ? topics : undefined,
    };
    result.set(email, Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)));
  }
  return result;
}

export const REVIEW_ATTRIBUTES = [
  'yotpo_total_reviews',
  'yotpo_avg_product_rating',
  'yotpo_avg_site_rating',
  'yotpo_total_avg_rating',
  'yotpo_avg_sentiment_product',
  'yotpo_avg_sentiment_site',
  'yotpo_total_avg_sentiment',
  'yotpo_top_topics',
];

/** How many times Insider (the sandbox) received each email. */
export function receivedCounts(sandbox: Pick<Sandbox, 'received'>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const user of sandbox.received()) {
    const email = String(user.identifiers?.email);
    counts.set(email, (counts.get(email) ?? 0) + 1);
  }
  return counts;
}

export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node <args>` to its end, capturing its output; its state store lives in its working folder. */
export function runNode(
  args: string[],
  options: { cwd?: string; env: Record<string, string | undefined>; stdin?: string | Buffer },
): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const env = { YOTPO_INSIDER_STATE_DIR: join(options.cwd ?? tmpdir(), '.state'), ...options.env };
    const child = spawn(process.execPath, args, { cwd: options.cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.stdin ?? '');
  });
}

export const BIN = fileURLToPath(new URL('../bin/yotpo-insider.js', import.meta.url));

export const CLI_ENTRY = fileURLToPath(new URL('./cli-entry.ts', import.meta.url));
/** tsx's loader by absolute URL: a spawned CLI's working folder is a temp folder without node_modules. */
const TSX = import.meta.resolve('tsx');

/** The node arguments that run the CLI from the sources (no build needed). */
export function cliArgs(args: readonly string[]): string[] {
  return ['--import', TSX, CLI_ENTRY, ...args];
}

/** Runs the CLI from the sources as a process, to its end. */
export function runCli(
  args: string[],
  options: { cwd: string; env: Record<string, string | undefined>; stdin?: string | Buffer },
): Promise<ProcessResult> {
  return runNode(cliArgs(args), options);
}

/** Starts the CLI from the sources as a process; the caller waits for `closed` or kills it. */
export function spawnCli(args: string[], options: { cwd: string; env: Record<string, string | undefined> }): LiveProcess {
  const env = { YOTPO_INSIDER_STATE_DIR: join(options.cwd, '.state'), PATH: process.env.PATH ?? '', ...options.env };
  const child = spawn(process.execPath, cliArgs(args), { cwd: options.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const live: LiveProcess = {
    child,
    stdout: '',
    stderr: '',
    closed: new Promise((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code, signal) => resolve({ code, signal }));
    }),
  };
  child.stdout.on('data', (chunk: Buffer) => (live.stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (live.stderr += chunk.toString('utf8')));
  return live;
}

export interface LiveProcess {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs the built CLI as a merchant would. */
export function runBin(
  args: string[],
  options: { cwd: string; env: Record<string, string | undefined>; stdin?: string | Buffer },
): Promise<ProcessResult> {
  return runNode([BIN, ...args], options);
}

/** Cells of the rows of the tables in a markdown section whose first header cell matches `header`. */
export function markdownTableRows(markdown: string, heading: RegExp, header: RegExp): string[][] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((line) => heading.test(line));
  assert.ok(start >= 0, `heading ${heading}`);
  const rows: string[][] = [];
  let inTable = false;
  for (const line of lines.slice(start + 1)) {
    if (/^## /.test(line)) break;
    if (!line.startsWith('|')) {
      inTable = false;
      continue;
    }
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((cell) => cell.trim());
    if (header.test(cells[0] ?? '')) {
      inTable = true;
      continue;
    }
    if (inTable && !/^-+$/.test(cells[0] ?? '')) rows.push(cells);
  }
  return rows;
}

/**
 * What each event line of fixtures/events.jsonl becomes: [Insider event name, timestamp, member].
 * Line 12 is merchant-only (skipped), 25 repeats line 1 (a duplicate), 26 is blank, 27–32 are bad.
 */
export const FIXTURE_EVENTS: Readonly<Record<number, readonly [string, string, string]>> = {
  1: ['points_earned', '2026-11-20T14:03:11Z', 'ava.martin@example.com'], // perk.completed_at, milliseconds
  2: ['redemption_created', '2026-11-02T13:15:00Z', 'ava.martin@example.com'], // redemption.created_at, -05:00
  3: ['loyalty_custom_reward_created', '2026-10-28T16:40:05Z', 'ben.okafor@example.com'], // perk.created_at, zone-less
  4: ['customer_birthday', '2026-11-14T13:00:02Z', 'chloe.nguyen@example.com'],
  5: ['birthday_captured', '2026-10-05T18:22:47Z', 'diego.ramos@example.com'], // envelope received_at
  6: ['customer_anniversary', '2026-09-30T11:00:04Z', 'emma.schulz@example.com'],
  7: ['anniversary_captured', '2026-09-12T05:45:10Z', 'farah.haddad@example.com'], // received_at +02:00
  8: ['loyalty_opt_in', '2026-09-03T10:22:41Z', 'george.ito@example.com'], // customer.loyalty_opt_in_date
  9: ['loyalty_opt_out', '2026-10-21T09:30:00Z', 'hana.kowalski@example.com'], // received_at, not the old opt-in date
  10: ['points_changed', '2026-11-09T10:05:44Z', 'ivan.petrov@example.com'], // microseconds
  11: ['points_reminder', '2026-11-25T17:00:03Z', 'julia.santos@example.com'],
  13: ['point_redemption_cancellation_request', '2026-11-18T20:14:09Z', 'kai.lindqvist@example.com'],
  14: ['redemption_reminder', '2026-10-30T12:00:00Z', 'lena.moreau@example.com'],
  15: ['tier_earned', '2026-09-15T12:30:00Z', 'ava.martin@example.com'],
  16: ['tier_lost', '2026-11-01T00:05:12Z', 'mia.fischer@example.com'],
  17: ['tier_status_changed', '2026-11-26T06:00:00Z', 'noah.brown@example.com'],
  18: ['referral_completed', '2026-11-22T19:41:27Z', 'olivia.chen@example.com'],
  19: ['referral_completed', '2026-07-19T15:02:11Z', 'pablo.garcia@example.com'],
  20: ['referral_shared', '2026-11-10T10:15:00Z', 'olivia.chen@example.com'],
  21: ['referral_share_reminder', '2026-11-27T15:00:00Z', 'ruby.walsh@example.com'],
  22: ['product_referral_shared', '2026-11-16T23:44:31Z', 'sofia.rossi@example.com'], // .5-03:00
  23: ['points_expiration_reminder', '2026-11-24T17:00:00Z', 'ben.okafor@example.com'],
  24: ['customer_birthday', '2026-05-08T13:00:01Z', 'ava.martin@example.com'],
  25: ['points_earned', '2026-11-20T14:03:11Z', 'ava.martin@example.com'],
};
