// verify (SPEC §9): the comparison rules, the reservoir's uniformity, the profile client and its
// quota pacer, the uncertain-event decisions, and the command end to end over HTTP on loopback.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, describe, test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { runVerify, type VerifyDeps, type VerifyOptions } from '../src/commands/verify.js';
import { Reservoir } from '../src/core/reservoir.js';
import {
  auditCellValue,
  compareUser,
  profileHasEvent,
  resolveUncertain,
  sentUserFromAuditRow,
  summarise,
  type SentUser,
  type UncertainEntry,
  type UncertainResolution,
  type UserCheck,
} from '../src/core/verify.js';
import { AuthError } from '../src/errors.js';
import { normaliseProfileAttributes, ProfilePacer, readProfile, type ProfileQuota } from '../src/insider/profile.js';
import { USER_COLUMNS, userRow } from '../src/core/audit-row.js';
import { AuditCsv } from '../src/io/csv.js';
import { ApiClient, newRequestCounters } from '../src/io/http.js';
import { DEFAULT_RETRY_POLICY } from '../src/io/retry.js';
import { startSandbox, type Sandbox, type SandboxOptions } from '../src/sandbox/index.js';
import { mulberry32 } from '../src/sandbox/prng.js';
import { captureIo, workdir } from './helpers.js';

describe('compareUser', () => {
  test('dates are compared as instants, with or without milliseconds or an offset', () => {
    const sent = {
      yotpo_last_purchase_at: '2026-03-04T05:06:07Z',
      birthday: '1990-02-03T00:00:00Z',
      anniversary_date: '2020-01-01T00:00:00Z',
    };
    const stored = {
      yotpo_last_purchase_at: '2026-03-04T05:06:07.000Z',
      birthday: '1990-02-03T01:00:00+01:00',
      anniversary_date: '2020-01-01T00:00:00Z',
    };
    assert.deepEqual(compareUser(sent, stored), { verdict: 'match', differs: [], missing: [], matched: Object.keys(sent) });
    const later = compareUser({ yotpo_last_purchase_at: '2026-03-04T05:06:07Z' }, { yotpo_last_purchase_at: '2026-03-04T05:06:08.000Z' });
    assert.equal(later.verdict, 'differs');
    assert.deepEqual(later.differs, [
      { attribute: 'yotpo_last_purchase_at', sent: '2026-03-04T05:06:07Z', stored: '2026-03-04T05:06:08.000Z' },
    ]);
  });

  test('arrays are the same members in any order, not a subset or a superset', () => {
    assert.equal(
      compareUser({ yotpo_top_topics: ['fit', 'size', 'color'] }, { yotpo_top_topics: ['color', 'fit', 'size'] }).verdict,
      'match',
    );
    assert.equal(compareUser({ yotpo_top_topics: ['fit', 'size'] }, { yotpo_top_topics: ['fit'] }).verdict, 'differs');
    assert.equal(compareUser({ yotpo_top_topics: ['fit'] }, { yotpo_top_topics: ['fit', 'size'] }).verdict, 'differs');
    assert.equal(compareUser({ yotpo_top_topics: ['fit'] }, { yotpo_top_topics: 'fit' }).verdict, 'differs');
  });

  test('numbers are numbers: a numeric string is equal, another number is not', () => {
    assert.equal(
      compareUser(
        { yotpo_point_balance: 120, yotpo_avg_product_rating: 4.33 },
        { yotpo_point_balance: '120', yotpo_avg_product_rating: 4.33 },
      ).verdict,
      'match',
    );
    assert.equal(compareUser({ yotpo_point_balance: -5 }, { yotpo_point_balance: ' -5.0 ' }).verdict, 'match');
    assert.equal(compareUser({ yotpo_point_balance: 120 }, { yotpo_point_balance: 121 }).verdict, 'differs');
    assert.equal(compareUser({ yotpo_point_balance: 120 }, { yotpo_point_balance: '120 points' }).verdict, 'differs');
  });

  test('strings exactly, booleans as booleans; absent or null is missing, and missing names the verdict', () => {
    assert.equal(compareUser({ name: 'Ava' }, { name: 'ava' }).verdict, 'differs');
    assert.equal(compareUser({ yotpo_credit_balance: '$12.50' }, { yotpo_credit_balance: '$12.50' }).verdict, 'match');
    assert.equal(compareUser({ yotpo_is_affiliate: false }, { yotpo_is_affiliate: false }).verdict, 'match');
    assert.equal(compareUser({ yotpo_is_affiliate: false }, { yotpo_is_affiliate: true }).verdict, 'differs');
    const result = compareUser({ name: 'Ava', surname: 'Martin', yotpo_vip_tier_name: 'Gold' }, { name: 'Eve', surname: null });
    assert.equal(result.verdict, 'missing attributes');
    assert.deepEqual(result.missing, ['surname', 'yotpo_vip_tier_name']);
    assert.deepEqual(result.differs, [{ attribute: 'name', sent: 'Ava', stored: 'Eve' }]);
  });

  test('the identifier is not compared', () => {
    assert.equal(compareUser({ email: 'a@example.com', name: 'A' }, { name: 'A' }).verdict, 'match');
  });
});

describe('summarise', () => {
  const user = (email: string, sent: Record<string, string | number>, stored: Record<string, unknown>): UserCheck => ({
    email,
    ...compareUser(sent, stored),
  });

  test('an attribute missing in every user is a panel problem; a few differing values were changed since; invisible users need --wait', () => {
    const results: UserCheck[] = [
      user('a@example.com', { name: 'A', yotpo_point_balance: 1 }, { name: 'A' }),
      user('b@example.com', { name: 'B', yotpo_point_balance: 2 }, { name: 'Bee' }),
      user('c@example.com', { name: 'C', yotpo_point_balance: 3 }, { name: 'C' }),
      { email: 'd@example.com', verdict: 'not visible yet' },
    ];
    const summary = summarise(results);
    assert.deepEqual(summary.users, { match: 0, differs: 0, missing_attributes: 3, not_visible_yet: 1 });
    assert.equal(summary.checked, 4);
    assert.deepEqual(summary.attributes.name, { matched: 2, differed: 1, missing: 0 });
    assert.deepEqual(summary.attributes.yotpo_point_balance, { matched: 0, differed: 0, missing: 3 });
    const cause = (start: string) => summary.causes.find((line) => line.startsWith(start)) ?? '';
    assert.match(
      cause('yotpo_point_balance'),
      /missing in all 3 .*does not exist in the Insider panel or has another type.*create it in InOne.*`yotpo-insider mapping`.*\(number\).*fixed once created/,
    );
    assert.match(cause('name'), /differs in 1 of 3 .*changed since by another source/);
    assert.match(cause('1 user'), /not visible yet .*asynchronously.*verify --wait <minutes>/);
  });

  test('every user matching names no cause', () => {
    const summary = summarise([user('a@example.com', { name: 'A' }, { name: 'A' })]);
    assert.deepEqual(summary.users, { match: 1, differs: 0, missing_attributes: 0, not_visible_yet: 0 });
    assert.deepEqual(summary.causes, []);
  });
});

describe('Reservoir', () => {
  test('over 20,000 offers, each tenth of the stream holds about a tenth of a 1,000 sample', () => {
    const reservoir = new Reservoir<number>(1000, mulberry32(42));
    for (let i = 0; i < 20_000; i++) reservoir.offer(i);
    const items = reservoir.items();
    assert.equal(items.length, 1000);
    assert.equal(new Set(items).size, 1000);
    const perTenth = Array.from({ length: 10 }, (_, tenth) => items.filter((i) => Math.floor(i / 2000) === tenth).length);
    for (const count of perTenth) assert.ok(count >= 70 && count <= 130, `tenths ${perTenth.join(', ')}`);
  });

  test('keeps everything while it has room; restores a saved sample and goes on', () => {
    const small = new Reservoir<string>(5, mulberry32(1));
    for (const letter of 'abc') small.offer(letter);
    assert.deepEqual(small.items().sort(), ['a', 'b', 'c']);
    const saved = new Reservoir<number>(10, mulberry32(7));
    for (let i = 0; i < 100; i++) saved.offer(i);
    const restored = Reservoir.restore(10, saved.state(), mulberry32(7));
    assert.equal(restored.seen, 100);
    restored.offer(100);
    assert.equal(restored.seen, 101);
    assert.equal(restored.items().length, 10);
    assert.throws(() => Reservoir.restore(2, { seen: 5, items: [1, 2, 3] }), RangeError);
  });
});

describe('resolveUncertain', () => {
  const now = Date.parse('2026-12-01T12:00:00Z');
  const hours = (h: number) => new Date(now - h * 3_600_000).toISOString();
  const entry = (key: string, sentHoursAgo: number, eventHoursAgo = sentHoursAgo): UncertainEntry => ({
    key,
    email: `${key}@example.com`,
    event_name: 'points_earned',
    timestamp: hours(eventHoursAgo),
    sent_at: hours(sentHoursAgo),
  });

  test('found → delivered, absent past the lag → released, absent too soon → retry after, too old → never released', () => {
    const entries = [
      entry('found-recent', 1),
      entry('found-old', 10),
      entry('absent-old', 7),
      entry('absent-recent', 2),
      entry('invisible-old', 8),
      entry('invisible-recent', 1),
      entry('ancient', 1, 91 * 24),
      entry('unreadable-sent-at', 100),
    ];
    entries.at(-1)!.sent_at = 'yesterday';
    const found = new Map<string, boolean | undefined>([
      ['found-recent', true],
      ['found-old', true],
      ['absent-old', false],
      ['absent-recent', false],
      ['ancient', false],
      ['unreadable-sent-at', false],
    ]);
    const resolution = resolveUncertain(entries, (e) => found.get(e.key), { now });
    assert.deepEqual(resolution.delivered, ['found-recent', 'found-old']);
    assert.deepEqual(resolution.released, ['absent-old', 'invisible-old']);
    assert.deepEqual(resolution.beyondRetention, ['ancient']);
    assert.deepEqual(resolution.tooRecent, [
      { key: 'absent-recent', retry_after: new Date(now + 4 * 3_600_000).toISOString() },
      { key: 'invisible-recent', retry_after: new Date(now + 5 * 3_600_000).toISOString() },
      { key: 'unreadable-sent-at', retry_after: new Date(now + 6 * 3_600_000).toISOString() },
    ]);
  });

  test('the lag and the retention are options', () => {
    const resolution = resolveUncertain([entry('a', 2), entry('b', 1, 48)], () => false, {
      now,
      olderThanMs: 1.5 * 3_600_000,
      retentionMs: 24 * 3_600_000,
    });
    assert.deepEqual(resolution.released, ['a']);
    assert.deepEqual(resolution.beyondRetention, ['b']);
    assert.deepEqual(resolution.tooRecent, []);
  });

  test('an event is found by name and instant (to the second) in either shape of the events part', () => {
    const events = { points_earned: [{ created_date: '2026-11-20T14:03:11Z' }, { timestamp: '2026-11-21T00:00:00.000Z' }] };
    assert.ok(profileHasEvent(events, 'points_earned', '2026-11-20T14:03:11.449Z'));
    assert.ok(profileHasEvent(events, 'points_earned', '2026-11-21T01:00:00+01:00'));
    assert.ok(!profileHasEvent(events, 'points_earned', '2026-11-20T14:03:12Z'));
    assert.ok(!profileHasEvent(events, 'tier_earned', '2026-11-20T14:03:11Z'));
    assert.ok(profileHasEvent([{ event_name: 'tier_earned', timestamp: 1_763_647_391 }], 'tier_earned', '2025-11-20T14:03:11Z'));
    assert.ok(!profileHasEvent(undefined, 'tier_earned', '2025-11-20T14:03:11Z'));
  });
});

describe('the audit CSV as what was sent', () => {
  test('cells become typed values; the formula guard is undone; only sent rows count', () => {
    assert.equal(auditCellValue('yotpo_point_balance', '-5'), -5);
    assert.equal(auditCellValue('yotpo_is_affiliate', 'false'), false);
    assert.deepEqual(auditCellValue('yotpo_top_topics', "'-fit|size"), ['-fit', 'size']);
    assert.equal(auditCellValue('name', "'=cmd"), '=cmd');
    assert.equal(auditCellValue('yotpo_credit_balance', '12'), '12');
    const row = {
      status: 'sent',
      reason: '',
      email: 'a@example.com',
      name: 'Ava',
      surname: '',
      yotpo_point_balance: '7',
      source: 'loyalty',
      omitted: 'birthday: no year',
    };
    assert.deepEqual(sentUserFromAuditRow(row), { email: 'a@example.com', attributes: { name: 'Ava', yotpo_point_balance: 7 } });
    assert.equal(sentUserFromAuditRow({ ...row, status: 'would_send' }), undefined);
    assert.equal(sentUserFromAuditRow({ ...row, status: 'failed' }), undefined);
  });
});

describe('ProfilePacer', () => {
  /** A clock that only moves when the pacer sleeps. */
  function fakeClock() {
    let at = 0;
    return { now: () => at, sleep: async (ms: number) => void (at += ms), advance: (ms: number) => void (at += ms) };
  }

  function maxInAnyWindow(times: number[], costs: number[], windowMs: number): number {
    let max = 0;
    for (let i = 0; i < times.length; i++) {
      let sum = 0;
      for (let j = i; j < times.length && times[j]! < times[i]! + windowMs; j++) sum += costs[j]!;
      max = Math.max(max, sum);
    }
    return max;
  }

  test('calls are spaced at the quota pace and no minute ever spends more than the total', async () => {
    const clock = fakeClock();
    const pacer = new ProfilePacer({ now: clock.now, sleep: clock.sleep });
    const starts: number[] = [];
    const costs: number[] = [];
    for (let i = 0; i < 1000; i++) {
      const settle = await pacer.take();
      starts.push(clock.now());
      const cost = i < 500 ? 2.5 : 5; // the account's answers say calls got dearer
      costs.push(cost);
      settle({ cost, used: 0, total: 1000 });
    }
    assert.ok(maxInAnyWindow(starts, costs, 60_000) <= 1000, `max ${maxInAnyWindow(starts, costs, 60_000)}`);
    assert.equal(starts[1]! - starts[0]!, 150);
    assert.ok(starts[999]! - starts[998]! >= 300);
  });

  test('units the answers report that this process did not spend hold it back', async () => {
    const clock = fakeClock();
    const pacer = new ProfilePacer({ now: clock.now, sleep: clock.sleep, marginMs: 0 });
    const settle = await pacer.take();
    settle({ cost: 2.5, used: 999, total: 1000 } satisfies ProfileQuota);
    await pacer.take();
    assert.equal(clock.now(), 60_000);
  });
});

// ---- over HTTP -----------------------------------------------------------------------------------

interface FakeInsider {
  url: string;
  /** Profile requests received, as parsed bodies. */
  bodies: Record<string, unknown>[];
  close(): Promise<void>;
}

/** A tiny Insider profile endpoint: stored users keyed by email, answers shaped as SPEC §3 says. */
async function fakeInsider(answer: (body: Record<string, unknown>, res: ServerResponse) => void): Promise<FakeInsider> {
  const bodies: Record<string, unknown>[] = [];
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    let text = '';
    for await (const chunk of req) text += chunk;
    if (req.url !== '/api/user/v1/profile' || req.headers['x-request-token'] !== 'token-secret-123') {
      res.writeHead(req.url === '/api/user/v1/profile' ? 401 : 404).end();
      return;
    }
    const body = JSON.parse(text) as Record<string, unknown>;
    bodies.push(body);
    answer(body, res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, bodies, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

const emailOf = (body: Record<string, unknown>) => (body.identifiers as { email: string }).email;
const quota = { cost: 2.5, used: 2.5, total: 1000 };

function client(url: string): ApiClient {
  return new ApiClient({
    api: 'insider',
    baseUrl: url,
    headers: { 'x-partner-name': 'brand', 'x-request-token': 'token-secret-123', 'content-type': 'application/json' },
    rps: 0,
    retry: { ...DEFAULT_RETRY_POLICY, maxAttempts: 2, baseDelayMs: 1 },
    timeoutMs: 5000,
    counters: newRequestCounters(),
  });
}

describe('readProfile', () => {
  test('asks for the attributes c_-prefixed where custom and answers them under the mapping names', async (t) => {
    const insider = await fakeInsider((_body, res) =>
      send(res, 200, {
        attributes: { name: 'Ava', c_yotpo_point_balance: 12, iid: 'x1', custom: { c_yotpo_vip_tier_name: 'Gold' } },
        events: {},
        quota,
      }),
    );
    t.after(() => insider.close());
    const profile = await readProfile(client(insider.url), 'ava@example.com', {
      attributes: ['name', 'yotpo_point_balance', 'yotpo_vip_tier_name'],
    });
    assert.deepEqual(profile, {
      found: true,
      attributes: { name: 'Ava', yotpo_point_balance: 12, iid: 'x1', yotpo_vip_tier_name: 'Gold' },
      events: {},
      quota,
    });
    assert.deepEqual(insider.bodies[0], {
      identifiers: { email: 'ava@example.com' },
      attributes: ['name', 'c_yotpo_point_balance', 'c_yotpo_vip_tier_name'],
      quota: true,
    });
    assert.deepEqual(normaliseProfileAttributes({ c_amount_cents_in_customer_c_to_mt_vip: 1 }), {
      amount_cents_in_customer_c_to_mt_vip: 1,
    });
  });

  test('an events window is sent in epoch seconds with the events wanted', async (t) => {
    const insider = await fakeInsider((_body, res) => send(res, 200, { attributes: {}, events: { points_earned: [] }, quota }));
    t.after(() => insider.close());
    await readProfile(client(insider.url), 'ava@example.com', {
      attributes: ['email'],
      eventsWindow: { from: '2026-11-20T00:00:00Z', to: '2026-11-21T00:00:00Z' },
      eventNames: ['points_earned'],
    });
    assert.deepEqual(insider.bodies[0]!.events, {
      start_date: 1_795_132_800,
      end_date: 1_795_219_200,
      wanted: [{ event_name: 'points_earned', params: ['timestamp'] }],
    });
  });

  test('404 no such user is not found; another 404, or a 400 naming the partner, stops', async (t) => {
    let reply: [number, unknown] = [404, { error: 'no such user for these identifiers: no data' }];
    const insider = await fakeInsider((_body, res) => send(res, reply[0], reply[1]));
    t.after(() => insider.close());
    assert.deepEqual(await readProfile(client(insider.url), 'nobody@example.com'), { found: false });
    reply = [404, 'Not Found'];
    await assert.rejects(readProfile(client(insider.url), 'nobody@example.com'), /profile lookup/);
    reply = [400, { success: false, message: 'Partner is invalid.' }];
    await assert.rejects(readProfile(client(insider.url), 'nobody@example.com'), AuthError);
  });
});

describe('runVerify against a fake Insider', () => {
  const env = (url: string) => ({ INSIDER_PARTNER_NAME: 'brand', INSIDER_API_KEY: 'token-secret-123', INSIDER_API_URL: url });
  const base: VerifyOptions = { sample: 100, json: true, quiet: false, verbose: false, retryBaseMs: 1, maxAttempts: 2 };
  const folders: string[] = [];
  after(() => {
    for (const folder of folders) rmSync(folder, { recursive: true, force: true });
  });
  const cwd = () => {
    const folder = workdir();
    folders.push(folder);
    return folder;
  };

  /** Stored profiles by email; answers what was asked for (c_-prefixed custom names). */
  function profileServer(stored: Map<string, Record<string, unknown>>) {
    return fakeInsider((body, res) => {
      const user = stored.get(emailOf(body));
      if (!user) return send(res, 404, { error: 'no such user for these identifiers: no data' });
      const attributes: Record<string, unknown> = {};
      for (const [name, value] of Object.entries(user)) attributes[name.startsWith('yotpo_') ? `c_${name}` : name] = value;
      send(res, 200, { attributes, events: {}, quota });
    });
  }

  test('no live run yet: exit 2 naming the command to run first; no credential in any output', async () => {
    const io = captureIo(env('http://127.0.0.1:9'), cwd());
    const { exitCode, summary } = await runVerify({ ...base, json: true }, io, { loadSample: () => undefined });
    assert.equal(exitCode, 2);
    assert.match(summary.error ?? '', /no live run .*yotpo-insider backfill/);
    assert.equal(JSON.parse(io.out()).exit_code, 2);
    assert.doesNotMatch(io.out() + io.err(), /token-secret-123/);
  });

  test('every user matching exits 0; --sample n checks n users, one call each', async (t) => {
    const stored = new Map(Array.from({ length: 30 }, (_, i) => [`u${i}@example.com`, { name: `U${i}`, yotpo_point_balance: i }] as const));
    const insider = await profileServer(new Map(stored));
    t.after(() => insider.close());
    const io = captureIo(env(insider.url), cwd());
    const sample = [...stored].map(([email, attributes]) => ({ email, attributes }));
    const { exitCode, summary } = await runVerify({ ...base, sample: 10 }, io, { loadSample: () => sample, random: mulberry32(3) });
    assert.equal(exitCode, 0);
    assert.equal(summary.mode, 'sample');
    assert.equal(insider.bodies.length, 10);
    assert.equal(new Set(insider.bodies.map(emailOf)).size, 10);
    assert.deepEqual(JSON.parse(io.out()).users, { match: 10, differs: 0, missing_attributes: 0, not_visible_yet: 0 });
  });

  test('--from reads the sent rows of an audit CSV; a difference exits 1 with both values', async (t) => {
    const insider = await profileServer(
      new Map<string, Record<string, unknown>>([
        ['a@example.com', { name: 'Ava', yotpo_top_topics: ['size', 'fit'], yotpo_point_balance: '-5' }],
        ['b@example.com', { name: 'Ben', yotpo_top_topics: ['fit'], yotpo_point_balance: 99 }],
      ]),
    );
    t.after(() => insider.close());
    const dir = cwd();
    const csv = join(dir, 'audit.csv');
    writeFileSync(
      csv,
      'status,reason,email,name,yotpo_point_balance,yotpo_top_topics,source,omitted\r\n' +
        'sent,,a@example.com,Ava,-5,fit|size,loyalty,\r\n' +
        'sent,,b@example.com,Ben,7,fit,loyalty,\r\n' +
        'failed,HTTP 400,c@example.com,Cy,1,,loyalty,\r\n',
    );
    const io = captureIo(env(insider.url), dir);
    const { exitCode, summary } = await runVerify({ ...base, from: csv, json: false }, io, {});
    assert.equal(exitCode, 1);
    assert.equal(insider.bodies.length, 2);
    assert.ok(summary.mode === 'sample');
    assert.deepEqual(summary.differences, [{ email: 'b@example.com', attribute: 'yotpo_point_balance', sent: 7, stored: 99 }]);
    assert.match(io.err(), /b@example\.com: yotpo_point_balance differs: sent 7, stored 99/);
    assert.equal(io.out(), '');

    const unreadable = await runVerify({ ...base, from: join(dir, 'no-such.csv') }, captureIo(env(insider.url), dir), {});
    assert.equal(unreadable.exitCode, 2);
    assert.match(unreadable.summary.error ?? '', /cannot read the audit CSV .*no-such\.csv/);
    const dryRun = join(dir, 'dry.csv');
    writeFileSync(dryRun, 'status,reason,email,name,source,omitted\r\nwould_send,,a@example.com,Ava,loyalty,\r\n');
    const nothing = await runVerify({ ...base, from: dryRun }, captureIo(env(insider.url), dir), {});
    assert.equal(nothing.exitCode, 2);
    assert.match(nothing.summary.error ?? '', /no `sent` rows .*dry run/);
    assert.equal(insider.bodies.length, 2);
  });

  test('--wait checks the users not visible yet again until they are', async (t) => {
    const stored = new Map<string, Record<string, unknown>>([['a@example.com', { name: 'Ava' }]]);
    const insider = await profileServer(stored);
    t.after(() => insider.close());
    const io = captureIo(env(insider.url), cwd());
    let clock = 0;
    const deps: VerifyDeps = {
      loadSample: () => [
        { email: 'a@example.com', attributes: { name: 'Ava' } },
        { email: 'late@example.com', attributes: { name: 'Late' } },
      ],
      now: () => clock,
      pause: async (ms) => {
        clock += ms;
        // Insider finishes writing the late user while verify waits.
        stored.set('late@example.com', { name: 'Late' });
      },
    };
    const { exitCode, summary } = await runVerify({ ...base, wait: 5 }, io, deps);
    assert.equal(exitCode, 0);
    assert.ok(summary.mode === 'sample');
    assert.equal(summary.rounds, 2);
    assert.deepEqual(insider.bodies.map(emailOf), ['a@example.com', 'late@example.com', 'late@example.com']);
    assert.match(io.err(), /1 user of 2 not visible yet; checking again in 60 s/);
  });

  test('an interrupt during --wait stops with exit 130 and the summary so far', async (t) => {
    const insider = await profileServer(new Map());
    t.after(() => insider.close());
    const io = captureIo(env(insider.url), cwd());
    const controller = new AbortController();
    const { exitCode, summary } = await runVerify({ ...base, wait: 10 }, io, {
      loadSample: () => [{ email: 'late@example.com', attributes: { name: 'Late' } }],
      signal: controller.signal,
      pause: (ms) => {
        controller.abort(); // SIGINT arrives while verify waits for the next round
        return sleep(ms, undefined, { signal: controller.signal });
      },
    });
    assert.equal(exitCode, 130);
    assert.equal(summary.error, 'interrupted');
    assert.equal(JSON.parse(io.out()).exit_code, 130);
    assert.equal(insider.bodies.length, 1);
  });

  test('without --wait, users not visible exit 1 with the --wait hint; rejected credentials exit 3', async (t) => {
    const insider = await profileServer(new Map());
    t.after(() => insider.close());
    const io = captureIo(env(insider.url), cwd());
    const { exitCode, summary } = await runVerify({ ...base }, io, {
      loadSample: () => [{ email: 'a@example.com', attributes: { name: 'A' } }],
    });
    assert.equal(exitCode, 1);
    assert.ok(summary.mode === 'sample');
    assert.deepEqual(summary.not_visible, ['a@example.com']);
    assert.match(summary.causes.join('\n'), /1 user not visible yet → .*verify --wait/);
    const waited = summarise([{ email: 'a@example.com', verdict: 'not visible yet' }], { waitedMinutes: 30 });
    assert.match(waited.causes[0]!, /after waiting 30 min .*failed file/);

    const wrong = captureIo({ ...env(insider.url), INSIDER_API_KEY: 'wrong-key-456' }, cwd());
    const denied = await runVerify({ ...base }, wrong, { loadSample: () => [{ email: 'a@example.com', attributes: { name: 'A' } }] });
    assert.equal(denied.exitCode, 3);
    assert.match(JSON.parse(wrong.out()).error, /rejected the credentials/);
    assert.doesNotMatch(wrong.out() + wrong.err(), /wrong-key-456/);
  });

  test('--uncertain: found events are recorded delivered, old absent ones released, recent ones told when to retry', async (t) => {
    const now = Date.parse('2026-12-01T12:00:00Z');
    const iso = (hoursAgo: number) => new Date(now - hoursAgo * 3_600_000).toISOString().replace('.000', '');
    const insider = await fakeInsider((body, res) => {
      if (emailOf(body) === 'gone@example.com') return send(res, 404, { error: 'no such user for these identifiers: no data' });
      send(res, 200, { attributes: { email: emailOf(body) }, events: { points_earned: [{ created_date: iso(30) }] }, quota });
    });
    t.after(() => insider.close());
    const entries: UncertainEntry[] = [
      { key: 'k-found', email: 'a@example.com', event_name: 'points_earned', timestamp: iso(30), sent_at: iso(1) },
      { key: 'k-absent-old', email: 'a@example.com', event_name: 'points_earned', timestamp: iso(31), sent_at: iso(7) },
      { key: 'k-absent-recent', email: 'gone@example.com', event_name: 'tier_earned', timestamp: iso(2), sent_at: iso(2) },
      { key: 'k-ancient', email: 'old@example.com', event_name: 'tier_earned', timestamp: iso(24 * 100), sent_at: iso(24 * 99) },
      { key: 'k-no-user', email: '', event_name: 'tier_earned', timestamp: iso(30), sent_at: iso(29) },
    ];
    const recorded: unknown[] = [];
    const io = captureIo(env(insider.url), cwd());
    const { exitCode, summary } = await runVerify({ ...base, uncertain: true }, io, {
      uncertainEntries: () => entries,
      recordResolution: async (resolution) => void recorded.push(resolution),
      now: () => now,
    });
    assert.equal(exitCode, 1);
    assert.ok(summary.mode === 'uncertain');
    const resolution = {
      delivered: ['k-found'],
      released: ['k-absent-old'],
      tooRecent: [{ key: 'k-absent-recent', retry_after: new Date(now + 4 * 3_600_000).toISOString() }],
      beyondRetention: ['k-ancient'],
    };
    assert.deepEqual(recorded, [resolution]);
    assert.equal(summary.run_again_after, resolution.tooRecent[0]!.retry_after);
    assert.equal(summary.users_not_visible, 1);
    assert.deepEqual(summary.unresolvable, ['k-no-user']);
    assert.match(io.err(), /1 uncertain event recorded without the user.*retry --force/);
    // One call per user, none for the event past retention.
    assert.deepEqual(insider.bodies.map(emailOf), ['a@example.com', 'gone@example.com']);
    assert.deepEqual((insider.bodies[0]!.events as { wanted: unknown }).wanted, [{ event_name: 'points_earned', params: ['timestamp'] }]);
  });
});

// ---- against the sandbox's profile endpoint -------------------------------------------------------

describe('runVerify against the sandbox', () => {
  const folders: string[] = [];
  after(() => {
    for (const folder of folders) rmSync(folder, { recursive: true, force: true });
  });
  const cwd = () => {
    const folder = workdir();
    folders.push(folder);
    return folder;
  };
  const base: VerifyOptions = {
    sample: 100,
    json: true,
    quiet: false,
    verbose: false,
    retryBaseMs: 1,
    maxAttempts: 3,
    maxRetryAfter: 0.05,
  };

  /** Three users as the transform would send them: dates, numbers, booleans, an array. */
  const users: SentUser[] = ['ava', 'ben', 'cy'].map((name, i) => ({
    email: `${name}@example.com`,
    attributes: {
      name: name.toUpperCase(),
      birthday: `199${i}-0${i + 1}-1${i}T00:00:00Z`,
      yotpo_point_balance: 100 + i,
      yotpo_vip_tier_name: i === 0 ? 'Gold' : 'Silver',
      yotpo_is_affiliate: i === 1,
      yotpo_last_purchase_at: `2026-11-0${i + 1}T10:20:30Z`,
      yotpo_top_topics: ['fit', 'size', 'color'].slice(0, i + 1),
    },
  }));

  /** Upserts the users straight through the sandbox's Insider endpoint, as a live run would. */
  async function upsert(
    sandbox: Sandbox,
    list: readonly SentUser[],
    events: Record<string, { event_name: string; timestamp: string }[]> = {},
  ) {
    const body = {
      users: list.map((user) => {
        const attributes: Record<string, unknown> = { email: user.email, custom: {} };
        for (const [name, value] of Object.entries(user.attributes)) {
          if (name === 'name' || name === 'birthday') attributes[name] = value;
          else (attributes.custom as Record<string, unknown>)[name] = value;
        }
        return {
          identifiers: { email: user.email },
          attributes,
          not_append: true,
          ...(events[user.email] ? { events: events[user.email] } : {}),
        };
      }),
      skip_hook: true,
    };
    const response = await fetch(`${sandbox.url}/api/user/v1/upsert`, {
      method: 'POST',
      headers: {
        'x-partner-name': sandbox.env.INSIDER_PARTNER_NAME!.toLowerCase(),
        'x-request-token': sandbox.env.INSIDER_API_KEY!,
        'content-type': 'application/json',
      },
      body: JSON.stringify(body),
    });
    assert.equal(response.status, 200, await response.text());
  }

  async function withSandbox(t: TestContext, options: Partial<SandboxOptions> = {}): Promise<Sandbox> {
    const sandbox = await startSandbox({ customers: 0, reviews: 0, ...options });
    t.after(() => sandbox.close());
    return sandbox;
  }

  const profileRequests = (sandbox: Sandbox) => sandbox.requests().filter((r) => r.path.startsWith('/api/user/v1/profile'));
  const secrets = (sandbox: Sandbox) => [sandbox.env.INSIDER_API_KEY!, sandbox.env.INSIDER_PARTNER_NAME!];

  test('every user matching exits 0, though Insider shows dates with milliseconds and arrays in another order', async (t) => {
    const sandbox = await withSandbox(t);
    await upsert(sandbox, users);
    const io = captureIo(sandbox.env, cwd());
    const { exitCode, summary } = await runVerify(base, io, { loadSample: () => users });
    assert.equal(exitCode, 0, io.err());
    assert.deepEqual(JSON.parse(io.out()).users, { match: 3, differs: 0, missing_attributes: 0, not_visible_yet: 0 });
    assert.ok(summary.mode === 'sample');
    assert.deepEqual(summary.causes, []);
    assert.equal(profileRequests(sandbox).length, 3);
    for (const secret of secrets(sandbox)) assert.ok(!(io.out() + io.err()).includes(secret));
  });

  test('an attribute missing from the panel (or mistyped there) is missing in every user, with its cause; exit 1', async (t) => {
    const sandbox = await withSandbox(t, { missingAttributes: ['yotpo_vip_tier_name'], mistypedAttributes: ['yotpo_is_affiliate'] });
    await upsert(sandbox, users);
    const io = captureIo(sandbox.env, cwd());
    const { exitCode, summary } = await runVerify({ ...base, json: false }, io, { loadSample: () => users });
    assert.equal(exitCode, 1);
    assert.ok(summary.mode === 'sample');
    assert.deepEqual(summary.users, { match: 0, differs: 0, missing_attributes: 3, not_visible_yet: 0 });
    assert.deepEqual(summary.attributes.yotpo_vip_tier_name, { matched: 0, differed: 0, missing: 3 });
    assert.deepEqual(summary.attributes.yotpo_is_affiliate, { matched: 0, differed: 0, missing: 3 });
    assert.deepEqual(summary.attributes.yotpo_point_balance, { matched: 3, differed: 0, missing: 0 });
    assert.match(io.err(), /cause: yotpo_vip_tier_name: missing in all 3 .*create it in InOne .*\(string\)/);
    assert.match(io.err(), /cause: yotpo_is_affiliate: missing in all 3 .*has another type.*\(boolean\)/);
  });

  test('--from reads back an audit CSV written by the audit writer, formula guard and arrays included', async (t) => {
    const sandbox = await withSandbox(t);
    const guarded = users.map((user) => ({
      ...user,
      attributes: { ...user.attributes, yotpo_credit_balance: '-$5.00', yotpo_top_topics: ['=fit', 'size'] },
    }));
    await upsert(sandbox, guarded);
    const dir = cwd();
    const path = join(dir, 'backfill.csv');
    const csv = new AuditCsv(path, USER_COLUMNS, new PassThrough());
    for (const user of guarded) csv.write(userRow('sent', '', user.email, user.attributes, { source: 'loyalty' }));
    csv.write(userRow('failed', 'HTTP 400', 'failed@example.com', { name: 'F' }, { source: 'loyalty' }));
    await csv.close();
    assert.match(readFileSync(path, 'utf8'), /'-\$5\.00/);
    const io = captureIo(sandbox.env, dir);
    const { exitCode, summary } = await runVerify({ ...base, from: path }, io, {});
    assert.equal(exitCode, 0, io.err());
    assert.ok(summary.mode === 'sample');
    assert.equal(summary.checked, 3);
    assert.deepEqual(summary.attributes.yotpo_credit_balance, { matched: 3, differed: 0, missing: 0 });
    assert.deepEqual(summary.attributes.yotpo_top_topics, { matched: 3, differed: 0, missing: 0 });
  });

  test('a visibility delay: not visible yet (exit 1), then matched with --wait', async (t) => {
    const sandbox = await withSandbox(t, { visibilityDelayMs: 400 });
    await upsert(sandbox, users);
    const early = captureIo(sandbox.env, cwd());
    const first = await runVerify(base, early, { loadSample: () => users });
    assert.equal(first.exitCode, 1);
    assert.ok(first.summary.mode === 'sample');
    assert.equal(first.summary.users.not_visible_yet, 3);

    const io = captureIo(sandbox.env, cwd());
    // The wait between rounds lasts what the sandbox's visibility delay needs, not --wait's 60 s.
    const { exitCode, summary } = await runVerify({ ...base, wait: 1 }, io, { loadSample: () => users, pause: () => sleep(450) });
    assert.equal(exitCode, 0, io.err());
    assert.ok(summary.mode === 'sample');
    assert.ok(summary.rounds >= 2);
    assert.equal(summary.users.match, 3);
    assert.match(io.err(), /not visible yet; checking again/);
  });

  test('a value changed since through the control route differs, with both values', async (t) => {
    const sandbox = await withSandbox(t);
    await upsert(sandbox, users);
    const response = await fetch(`${sandbox.url}/__sandbox/insider/profile`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'ben@example.com', attributes: { custom: { yotpo_point_balance: 5 } } }),
    });
    assert.equal(response.status, 200);
    const io = captureIo(sandbox.env, cwd());
    const { exitCode, summary } = await runVerify(base, io, { loadSample: () => users });
    assert.equal(exitCode, 1);
    assert.ok(summary.mode === 'sample');
    assert.deepEqual(summary.differences, [{ email: 'ben@example.com', attribute: 'yotpo_point_balance', sent: 101, stored: 5 }]);
    assert.deepEqual(summary.users, { match: 2, differs: 1, missing_attributes: 0, not_visible_yet: 0 });
    assert.match(summary.causes.join('\n'), /yotpo_point_balance: differs in 1 of 3 .*changed since by another source/);
  });

  test('calls are paced by the quota the sandbox reports, and no minute spends more than it', async (t) => {
    const sandbox = await withSandbox(t, { profileQuotaPerMinute: 25 });
    await upsert(sandbox, users);
    // The pacer's clock is virtual: its waits are recorded (and pass at once), so the test reads the
    // spacing it chose from the sandbox's answers instead of timing anything.
    let clock = 0;
    const waits: number[] = [];
    const pacer = new ProfilePacer({
      now: () => clock,
      sleep: async (ms) => {
        waits.push(ms);
        clock += ms;
      },
    });
    const io = captureIo(sandbox.env, cwd());
    const { exitCode } = await runVerify(base, io, { loadSample: () => users, pacer });
    assert.equal(exitCode, 0, io.err());
    // 25 units a minute at 2.5 a call: after the first answer, a call every 6 s.
    assert.deepEqual(waits, [150, 6000]);
    const calls = profileRequests(sandbox);
    assert.equal(calls.length, 3);
    assert.ok(calls.every((call) => call.status !== 429));
  });

  test('--uncertain finds an event the sandbox stored and releases one it never got', async (t) => {
    const sandbox = await withSandbox(t);
    const now = Date.now();
    const hoursAgo = (h: number) => new Date(now - h * 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z');
    await upsert(sandbox, users.slice(0, 1), { 'ava@example.com': [{ event_name: 'points_earned', timestamp: hoursAgo(30) }] });
    const entries: UncertainEntry[] = [
      { key: 'stored', email: 'ava@example.com', event_name: 'points_earned', timestamp: hoursAgo(30), sent_at: hoursAgo(8) },
      { key: 'never-got', email: 'ava@example.com', event_name: 'points_earned', timestamp: hoursAgo(29), sent_at: hoursAgo(8) },
      { key: 'no-user', email: 'nobody@example.com', event_name: 'tier_earned', timestamp: hoursAgo(1), sent_at: hoursAgo(1) },
    ];
    let recorded: UncertainResolution | undefined;
    const io = captureIo(sandbox.env, cwd());
    const { exitCode, summary } = await runVerify({ ...base, uncertain: true }, io, {
      uncertainEntries: () => entries,
      recordResolution: async (resolution) => void (recorded = resolution),
    });
    assert.equal(exitCode, 1);
    assert.ok(summary.mode === 'uncertain');
    assert.deepEqual(recorded?.delivered, ['stored']);
    assert.deepEqual(recorded?.released, ['never-got']);
    assert.deepEqual(
      recorded?.tooRecent.map((r) => r.key),
      ['no-user'],
    );
    assert.equal(profileRequests(sandbox).length, 2);
  });
});
