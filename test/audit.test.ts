// The audit CSV (SPEC §6): column order fixed by the mapping table, cell formatting, RFC 4180
// round-trips, formula neutralisation, dry runs that match live runs, determinism, `--out -`.

import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { parse } from 'csv-parse/sync';
import { cell, neutralise, USER_COLUMNS, userRow } from '../src/core/audit-row.js';
import { AuditCsv } from '../src/io/csv.js';
import { main } from '../src/cli.js';
import { runBackfill } from '../src/commands/backfill.js';
import { runReplay } from '../src/commands/replay.js';
import { runRetry } from '../src/commands/retry.js';
import { EVENT_PARAMS, USER_ATTRIBUTES } from '../src/core/table.js';
import { startSandbox, type ReceivedUser, type Sandbox } from '../src/sandbox/index.js';
import { captureIo, FAST, markdownTableRows, workdir } from './helpers.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/events.jsonl', import.meta.url));
// The project's own copy of the mapping (tests never read outside the repository).
const MAPPING_MD = fileURLToPath(new URL('../docs/mapping.md', import.meta.url));
const fixtureLines = readFileSync(FIXTURE, 'utf8')
  .replace(/\r?\n$/, '')
  .split(/\r?\n/);
const nonBlankLines = fixtureLines.flatMap((text, i) => (text.trim() === '' ? [] : [i + 1]));

const ATTRIBUTE_NAMES = USER_ATTRIBUTES.map((row) => row.name);
const PARAM_NAMES = EVENT_PARAMS.map((row) => row.name);
const EXPECTED_USER_HEADER = ['status', 'reason', 'email', ...ATTRIBUTE_NAMES, 'source', 'omitted'];
const EXPECTED_EVENT_HEADER = [
  'line',
  'status',
  'reason',
  'email',
  'event_name',
  'timestamp',
  ...PARAM_NAMES.map((name) => `event.${name}`),
  ...ATTRIBUTE_NAMES,
  'omitted',
];

/** First-column names of the markdown table that follows `heading` (up to the next `## `). */
function markdownNames(markdown: string, heading: RegExp, header: RegExp): string[] {
  return markdownTableRows(markdown, heading, header).flatMap((cells) => /^`([^`]+)`$/.exec(cells[0] ?? '')?.slice(1, 2) ?? []);
}

const mappingMd = existsSync(MAPPING_MD) ? readFileSync(MAPPING_MD, 'utf8') : undefined;

function readCsv(text: string): string[][] {
  return parse(text, { relax_column_count: false }) as string[][];
}

/** Rows as objects keyed by the header. */
function records(text: string): Record<string, string>[] {
  return parse(text, { columns: true }) as Record<string, string>[];
}

/** The value a delivered user holds for a MAPPING §2 attribute. */
function deliveredValue(user: ReceivedUser, name: string): unknown {
  const row = USER_ATTRIBUTES.find((r) => r.name === name)!;
  return row.where === 'default' ? user.attributes?.[name] : user.attributes?.custom?.[name];
}

const withoutInsider = (env: Record<string, string>) =>
  Object.fromEntries(Object.entries(env).filter(([name]) => !name.startsWith('INSIDER_')));

function fixtureDir(): string {
  const cwd = workdir();
  copyFileSync(FIXTURE, join(cwd, 'events.jsonl'));
  return cwd;
}

describe('cell() and neutralise()', () => {
  test('every value type, as it is sent', () => {
    assert.equal(cell(undefined), '');
    assert.equal(cell(null), '');
    assert.equal(cell(''), '');
    assert.equal(cell(0), '0');
    assert.equal(cell(1250), '1250');
    assert.equal(cell(4.65), '4.65');
    assert.equal(cell(-120), '-120', 'a negative number stays a number');
    assert.equal(cell(-0.5), '-0.5');
    assert.equal(cell(true), 'true');
    assert.equal(cell(false), 'false');
    assert.equal(cell(['fit', 'quality', 'shipping']), 'fit|quality|shipping');
    assert.equal(cell(['only']), 'only');
    assert.equal(cell([]), '');
    assert.equal(cell('2026-11-20T14:03:11Z'), '2026-11-20T14:03:11Z');
    assert.equal(cell('$12.50'), '$12.50');
    assert.equal(cell('Gölď 🥇 金'), 'Gölď 🥇 金');
    assert.equal(cell('a=b'), 'a=b', 'only a leading formula character counts');
  });

  test('every formula prefix is neutralised with a quote, in text and in joined arrays', () => {
    for (const prefix of ['=', '+', '-', '@', '\t', '\r']) {
      const text = `${prefix}HYPERLINK("http://evil.example","x")`;
      assert.equal(cell(text), `'${text}`, JSON.stringify(prefix));
      assert.equal(neutralise(text), `'${text}`);
      assert.equal(cell([`${prefix}cmd`, 'safe']), `'${prefix}cmd|safe`, `array starting with ${JSON.stringify(prefix)}`);
    }
    assert.equal(cell('-5'), "'-5", 'text that looks negative is text');
    assert.equal(cell(-5), '-5');
  });
});

describe('RFC 4180 round-trip', () => {
  test('quotes, commas, newlines and unicode survive csv-parse; formulas neutralised; CRLF records', async () => {
    const cwd = workdir();
    const path = join(cwd, 'audit.csv');
    const csv = new AuditCsv(path, USER_COLUMNS, process.stdout);
    const tricky = {
      name: 'O"Brien, "Jr."',
      surname: 'line1\nline2\r\nline3',
      yotpo_vip_tier_name: 'Gölď 🥇 金',
      yotpo_credit_balance: '€9,20',
      yotpo_point_balance: -120,
      yotpo_coupon_expired: false,
      yotpo_top_topics: ['fit, size', 'qu"ote', 'new\nline'],
    };
    const formulas = {
      name: '=HYPERLINK("http://evil.example","click")',
      surname: '+SUM(A1:A9)',
      yotpo_vip_tier_name: '@evil',
      yotpo_credit_balance: '-$5.00',
      yotpo_referral_link: '\tcmd',
      yotpo_top_topics: ['=1+1', 'b'],
      yotpo_total_avg_sentiment: -0.75,
    };
    csv.write(userRow('would_send', '', 'tricky@example.com', tricky));
    csv.write(userRow('skipped', 'invalid email, "quoted"', '=bad@example', formulas));
    await csv.close();

    const text = readFileSync(path, 'utf8');
    assert.ok(text.startsWith(`${EXPECTED_USER_HEADER.join(',')}\r\n`), 'header first, CRLF');
    const [header, first, second, ...rest] = readCsv(text);
    assert.deepEqual(header, EXPECTED_USER_HEADER);
    assert.equal(rest.length, 0);
    const at = (row: string[], name: string) => row[EXPECTED_USER_HEADER.indexOf(name)];
    assert.equal(at(first!, 'status'), 'would_send');
    assert.equal(at(first!, 'email'), 'tricky@example.com');
    assert.equal(at(first!, 'name'), 'O"Brien, "Jr."');
    assert.equal(at(first!, 'surname'), 'line1\nline2\r\nline3');
    assert.equal(at(first!, 'yotpo_vip_tier_name'), 'Gölď 🥇 金');
    assert.equal(at(first!, 'yotpo_credit_balance'), '€9,20');
    assert.equal(at(first!, 'yotpo_point_balance'), '-120');
    assert.equal(at(first!, 'yotpo_coupon_expired'), 'false');
    assert.equal(at(first!, 'yotpo_top_topics'), 'fit, size|qu"ote|new\nline');
    assert.equal(at(first!, 'birthday'), '', 'missing values are empty cells');

    assert.equal(at(second!, 'status'), 'skipped');
    assert.equal(at(second!, 'reason'), 'invalid email, "quoted"');
    assert.equal(at(second!, 'email'), "'=bad@example");
    assert.equal(at(second!, 'name'), `'=HYPERLINK("http://evil.example","click")`);
    assert.equal(at(second!, 'surname'), "'+SUM(A1:A9)");
    assert.equal(at(second!, 'yotpo_vip_tier_name'), "'@evil");
    assert.equal(at(second!, 'yotpo_credit_balance'), "'-$5.00");
    assert.equal(at(second!, 'yotpo_referral_link'), "'\tcmd");
    assert.equal(at(second!, 'yotpo_top_topics'), "'=1+1|b");
    assert.equal(at(second!, 'yotpo_total_avg_sentiment'), '-0.75');
  });

  test('a replay dry run neutralises formulas in names from the payload; numbers stay numbers', async () => {
    const cwd = workdir();
    const payload = {
      topic: 'swell/points/earned',
      customer: {
        email: 'formula@example.com',
        first_name: '=HYPERLINK("http://evil.example","x")',
        last_name: '@Smith, "the" \nsecond',
        credit_balance: '-$5.00',
        vip_tier_name: '+Gold',
        points_balance: -120,
      },
      perk: { id: 7, reward_points: -200, history_title: '-adjusted', completed_at: '2026-11-20T10:00:00Z' },
    };
    writeFileSync(join(cwd, 'f.jsonl'), `${JSON.stringify(payload)}\n`);
    const summary = await runReplay('f.jsonl', { dryRun: true, out: 'f.csv' }, captureIo({}, cwd));
    assert.equal(summary.exit_code, 0);
    const [row] = records(readFileSync(join(cwd, 'f.csv'), 'utf8'));
    assert.equal(row!.status, 'would_send');
    assert.equal(row!.name, `'=HYPERLINK("http://evil.example","x")`);
    assert.equal(row!.surname, `'@Smith, "the" \nsecond`);
    assert.equal(row!.yotpo_credit_balance, "'-$5.00");
    assert.equal(row!.yotpo_vip_tier_name, "'+Gold");
    assert.equal(row!.yotpo_point_balance, '-120');
    assert.equal(row!['event.yotpo_event_reward_point'], '-200');
    assert.equal(row!['event.yotpo_history_title'], "'-adjusted");
  });
});

describe('audit CSV over the sandbox', () => {
  const SEED = 9;
  let sandbox: Sandbox;
  before(async () => {
    sandbox = await startSandbox({ customers: 180, reviews: 260, seed: SEED });
  });
  after(() => sandbox.close());

  test('backfill and retry header: status,reason,email + MAPPING §2 attributes in table order', async (t) => {
    const cwd = workdir();
    const summary = await runBackfill({ ...FAST, dryRun: true, out: 'dry.csv' }, captureIo(withoutInsider(sandbox.env), cwd));
    assert.equal(summary.exit_code, 0);
    const text = readFileSync(join(cwd, 'dry.csv'), 'utf8');
    const [header] = readCsv(text);
    assert.deepEqual(header, EXPECTED_USER_HEADER);
    assert.ok(text.startsWith('status,reason,email,name,surname,birthday,yotpo_points_earned,yotpo_point_balance,'));

    // retry: a failed file of two users, dry run.
    const users = [
      {
        identifiers: { email: 'r1@example.com' },
        attributes: { email: 'r1@example.com', name: 'R', custom: { yotpo_point_balance: 10, yotpo_top_topics: ['a', 'b'] } },
      },
      { identifiers: { email: 'r2@example.com' }, attributes: { email: 'r2@example.com', custom: { yotpo_loyalty_opt_in: true } } },
    ];
    writeFileSync(
      join(cwd, 'failed.jsonl'),
      users.map((user) => JSON.stringify({ user, error: 'x', status: 500, attempts: 6 })).join('\n'),
    );
    const retried = await runRetry('failed.jsonl', { dryRun: true, out: 'retry.csv' }, captureIo({}, cwd));
    assert.equal(retried.exit_code, 0);
    const retryRows = readCsv(readFileSync(join(cwd, 'retry.csv'), 'utf8'));
    assert.deepEqual(retryRows[0], EXPECTED_USER_HEADER);
    const byEmail = new Map(records(readFileSync(join(cwd, 'retry.csv'), 'utf8')).map((r) => [r.email, r]));
    assert.equal(byEmail.get('r1@example.com')?.status, 'would_send');
    assert.equal(byEmail.get('r1@example.com')?.name, 'R');
    assert.equal(byEmail.get('r1@example.com')?.yotpo_point_balance, '10');
    assert.equal(byEmail.get('r1@example.com')?.yotpo_top_topics, 'a|b');
    assert.equal(byEmail.get('r2@example.com')?.yotpo_loyalty_opt_in, 'true');

    if (!mappingMd) return t.skip('docs/mapping.md not present');
    const documented = markdownNames(mappingMd, /^## 2\. User attributes/, /^Insider attribute$/);
    assert.equal(documented.length, 42, 'MAPPING §2 parsed');
    assert.deepEqual(header!.slice(3, -2), documented, 'CSV columns = MAPPING §2 rows in order, then source and omitted');
  });

  test('replay header: line,status,reason,email,event_name,timestamp + event.<params> + attributes; a row per line', async (t) => {
    const cwd = fixtureDir();
    const summary = await runReplay('events.jsonl', { dryRun: true, out: 'replay.csv' }, captureIo({}, cwd));
    assert.equal(summary.exit_code, 1);
    const text = readFileSync(join(cwd, 'replay.csv'), 'utf8');
    const [header] = readCsv(text);
    assert.deepEqual(header, EXPECTED_EVENT_HEADER);
    assert.ok(text.startsWith('line,status,reason,email,event_name,timestamp,event.yotpo_event_reward_point,'));
    assert.ok(
      header!.includes('event.yotpo_points_earned') && header!.includes('yotpo_points_earned'),
      'a shared name appears twice, once prefixed',
    );

    const rows = records(text);
    assert.deepEqual(
      rows.map((r) => Number(r.line)).sort((a, b) => a - b),
      nonBlankLines,
      'every non-blank line has one row',
    );
    const byLine = new Map(rows.map((r) => [Number(r.line), r]));
    const statusOf = (line: number) => byLine.get(line)!.status;
    for (const line of [12, 25]) {
      assert.equal(statusOf(line), 'skipped', `line ${line}`);
      assert.notEqual(byLine.get(line)!.reason, '');
    }
    assert.match(byLine.get(25)!.reason ?? '', /duplicate/);
    const rejects: Record<number, string> = {
      27: 'invalid json',
      28: 'not an object',
      29: 'no email',
      30: 'unknown event',
      31: 'no timestamp',
      32: 'invalid timestamp',
    };
    for (const [line, reason] of Object.entries(rejects)) {
      assert.equal(statusOf(Number(line)), 'rejected', `line ${line}`);
      assert.ok((byLine.get(Number(line))!.reason ?? '').startsWith(reason), `line ${line}: ${byLine.get(Number(line))!.reason}`);
    }
    assert.equal(rows.filter((r) => r.status === 'would_send').length, 23);

    // Attributes as mapped from each line's own payload (not the newest event's).
    const line1 = byLine.get(1)!;
    assert.equal(line1.email, 'ava.martin@example.com');
    assert.equal(line1.event_name, 'points_earned');
    assert.equal(line1.timestamp, '2026-11-20T14:03:11Z');
    assert.equal(line1['event.yotpo_event_reward_point'], '50');
    assert.equal(line1['event.yotpo_campaign_id'], '90211');
    assert.equal(line1.yotpo_point_balance, '1250');
    assert.equal(byLine.get(24)!.yotpo_point_balance, '600');
    assert.equal(byLine.get(24)!.yotpo_vip_tier_name, 'Silver');
    assert.equal(byLine.get(10)!['event.yotpo_event_reward_point'], '-200', 'a negative number stays a number');

    if (!mappingMd) return t.skip('docs/mapping.md not present');
    const params = markdownNames(mappingMd, /^## 5\. Events/, /^Insider event param$/);
    assert.equal(params.length, 32, 'MAPPING §5 params parsed');
    assert.deepEqual(
      header!.slice(6, 6 + params.length),
      params.map((p) => `event.${p}`),
    );
    assert.deepEqual(header!.slice(6 + params.length, -1), markdownNames(mappingMd, /^## 2\. User attributes/, /^Insider attribute$/));
    assert.equal(header!.at(-1), 'omitted');
  });

  test('a backfill dry run sends nothing to Insider, and its rows are what the live run delivers', async () => {
    sandbox.reset();
    const cwd = workdir();
    const io = captureIo(withoutInsider(sandbox.env), cwd);
    const dry = await runBackfill({ ...FAST, dryRun: true, out: 'dry.csv' }, io);
    assert.equal(dry.exit_code, 0, io.err());
    assert.equal(dry.dry_run, true);
    assert.equal(dry.users.succeeded, 0);
    assert.ok(dry.users.sent > 100);
    assert.equal(sandbox.requests().filter((r) => r.api === 'insider').length, 0, 'no Insider request');
    assert.ok(sandbox.requests().some((r) => r.api === 'loyalty') && sandbox.requests().some((r) => r.api === 'reviews'), 'Yotpo was read');

    // Also with every Insider variable pointing at the sandbox.
    sandbox.reset();
    const dryWithKeys = await runBackfill({ ...FAST, dryRun: true, out: 'dry2.csv' }, captureIo(sandbox.env, cwd));
    assert.equal(dryWithKeys.users.sent, dry.users.sent);
    // With credentials, the dry run reads the panel schema (read-only) and never uploads.
    const insiderPaths = sandbox
      .requests()
      .filter((r) => r.api === 'insider')
      .map((r) => r.path);
    assert.deepEqual(
      insiderPaths,
      ['/api/user/v3/metadata/columns', '/api/user/v3/metadata/columns'],
      'only the read-only schema check, no upload',
    );

    sandbox.reset();
    const live = await runBackfill({ ...FAST }, captureIo(sandbox.env, workdir()));
    assert.equal(live.exit_code, 0);
    const delivered = new Map(sandbox.received().map((user) => [String(user.identifiers?.email), user]));
    assert.equal(delivered.size, sandbox.received().length, 'each user once');

    const rows = records(readFileSync(join(cwd, 'dry.csv'), 'utf8'));
    const wouldSend = rows.filter((r) => r.status === 'would_send');
    assert.equal(wouldSend.length, dry.users.sent);
    assert.deepEqual(new Set(wouldSend.map((r) => r.email)), new Set(delivered.keys()), 'the same users');
    for (const row of wouldSend) {
      const user = delivered.get(row.email!)!;
      assert.equal(row.reason, '');
      for (const name of ATTRIBUTE_NAMES) {
        assert.equal(row[name], cell(deliveredValue(user, name)), `${row.email} ${name}`);
      }
    }
    const skipped = rows.filter((r) => r.status === 'skipped');
    assert.equal(skipped.length, dry.users.skipped);
    assert.ok(skipped.length > 0, 'the sandbox has customers without a valid email');
    for (const row of skipped) assert.ok(row.reason && row.reason in dry.skipped_reasons, `skipped row with reason ${row.reason}`);
    assert.equal(rows.length, dry.users.sent + dry.users.skipped, 'one row per user read');
    assert.deepEqual(
      rows.filter((r) => r.status !== 'would_send' && r.status !== 'skipped'),
      [],
      'no other status in a dry run',
    );
  });

  test('a live run with --out: sent, failed (with the reason) and skipped rows match what happened', async () => {
    sandbox.reset();
    const cwd = workdir();
    sandbox.setFaults({ rejectRate: 0.1 });
    let summary;
    try {
      summary = await runBackfill({ ...FAST, reviews: false, out: 'live.csv', failed: 'failed.jsonl' }, captureIo(sandbox.env, cwd));
    } finally {
      sandbox.setFaults({ rejectRate: 0 });
    }
    assert.equal(summary.exit_code, 1);
    const rows = records(readFileSync(join(cwd, 'live.csv'), 'utf8'));
    const delivered = new Map(sandbox.received().map((user) => [String(user.identifiers?.email), user]));
    const sent = rows.filter((r) => r.status === 'sent');
    const failed = rows.filter((r) => r.status === 'failed');
    const skipped = rows.filter((r) => r.status === 'skipped');
    assert.equal(rows.length, sent.length + failed.length + skipped.length, 'only sent, failed and skipped in a live run');
    assert.equal(sent.length, summary.users.succeeded);
    assert.deepEqual(new Set(sent.map((r) => r.email)), new Set(delivered.keys()));
    for (const row of sent) {
      for (const name of ATTRIBUTE_NAMES)
        assert.equal(row[name], cell(deliveredValue(delivered.get(row.email!)!, name)), `${row.email} ${name}`);
    }
    assert.ok(failed.length > 0);
    assert.equal(failed.length, summary.users.failed);
    const failedFile = readFileSync(join(cwd, 'failed.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    assert.deepEqual(new Set(failed.map((r) => r.email)), new Set(failedFile.map((f) => f.user.identifiers.email)));
    for (const row of failed) assert.match(row.reason!, /sandbox rejected this user/);
    assert.equal(skipped.length, summary.users.skipped);
    for (const row of skipped) assert.notEqual(row.reason, '');
  });

  test('the same input gives byte-identical CSVs', async () => {
    const cwd = workdir();
    const env = withoutInsider(sandbox.env);
    await runBackfill({ ...FAST, dryRun: true, out: 'a.csv' }, captureIo(env, cwd));
    await runBackfill({ ...FAST, dryRun: true, out: 'b.csv' }, captureIo(env, cwd));
    const a = readFileSync(join(cwd, 'a.csv'));
    assert.ok(a.length > 10_000);
    assert.ok(a.equals(readFileSync(join(cwd, 'b.csv'))), 'backfill dry runs differ');

    const replayDir = fixtureDir();
    await runReplay('events.jsonl', { dryRun: true, out: 'a.csv' }, captureIo({}, replayDir));
    await runReplay('events.jsonl', { dryRun: true, out: 'b.csv', concurrency: 1 }, captureIo({}, replayDir));
    const ra = readFileSync(join(replayDir, 'a.csv'));
    assert.ok(ra.length > 1000);
    assert.ok(ra.equals(readFileSync(join(replayDir, 'b.csv'))), 'replay dry runs differ');
  });
});

test('replay --dry-run --out - writes the CSV to stdout and nothing else', async () => {
  const cwd = fixtureDir();
  const io = captureIo({}, cwd);
  const code = await main(['node', 'yotpo-insider', 'replay', 'events.jsonl', '--dry-run', '--out', '-'], io);
  assert.equal(code, 1, io.err());
  const out = io.out();
  assert.ok(out.startsWith(`${EXPECTED_EVENT_HEADER.join(',')}\r\n`), out.slice(0, 200));
  const rows = readCsv(out);
  assert.deepEqual(rows[0], EXPECTED_EVENT_HEADER);
  assert.equal(rows.length, 1 + nonBlankLines.length, 'header + one row per non-blank line, nothing more');
  assert.deepEqual(
    rows
      .slice(1)
      .map((r) => Number(r[0]))
      .sort((a, b) => a - b),
    nonBlankLines,
  );
  assert.match(io.err(), /dry run/, 'the summary goes to stderr');
  assert.doesNotMatch(out, /dry run|finished|warning/);
});
