// Replay end to end over real HTTP against the sandbox (SPEC §1 replay flags, §4; MAPPING §5):
// exactly-once delivery of the fixture, rejects and skips, ordering and newest-wins attributes,
// the ledger, stdin and .gz input, envelopes, filters, an interrupt with a resume, the 90-day
// warning and a dry run without any environment.

import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { main } from '../src/cli.js';
import { runReplay } from '../src/commands/replay.js';
import { runRetry } from '../src/commands/retry.js';
import { mapAttributes, toInsiderUser } from '../src/core/transform.js';
import { isRejectedEmail, startSandbox, type ReceivedUser, type Sandbox } from '../src/sandbox/index.js';
import { captureIo, FIXTURE_EVENTS, runCli, spawnCli, workdir } from './helpers.js';
import { Ledger } from '../src/state/ledger.js';
import { StateStore, type Account } from '../src/state/store.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/events.jsonl', import.meta.url));
const fixtureText = readFileSync(FIXTURE, 'utf8');
/** Physical lines of the fixture; index 0 is line 1. */
const fixtureLines = fixtureText.replace(/\r?\n$/, '').split(/\r?\n/);
const nonBlankLines = fixtureLines.flatMap((text, i) => (text.trim() === '' ? [] : [i + 1]));

/** Replay options that lift Insider pacing and shorten backoff. */
const QUICK = { insiderRps: 0, retryBaseMs: 5, maxRetryAfter: 0.05 } as const;

// Fixture line → [Insider event_name, timestamp, member email]; line 25 repeats line 1 (a duplicate, not sent).
const EXPECTED = Object.fromEntries(Object.entries(FIXTURE_EVENTS).filter(([line]) => line !== '25'));
const SENT_LINES = Object.keys(EXPECTED).map(Number);
const REJECTS: Record<number, string> = {
  27: 'invalid json',
  28: 'not an object',
  29: 'no email',
  30: 'unknown event',
  31: 'no timestamp',
  32: 'invalid timestamp',
};
const ENVELOPE_LINES = [5, 7, 9, 11, 15, 16, 17, 21, 22, 23];
const FRIENDS = [
  'uma.patel@example.com',
  'victor.lee@example.com',
  'sam.rivera@example.com',
  'tom.baker@example.com',
  'quinn.adams@example.com',
];

const keyOf = (email: string, eventName: string, timestamp: string) => `${email} ${eventName} ${timestamp}`;
const keyOfLine = (line: number) => {
  const [name, timestamp, email] = EXPECTED[line]!;
  return keyOf(email, name, timestamp);
};

interface Delivered {
  key: string;
  email: string;
  event: Record<string, unknown>;
  user: ReceivedUser;
}

function deliveredEvents(sandbox: Sandbox): Delivered[] {
  const out: Delivered[] = [];
  for (const user of sandbox.received()) {
    const email = String(user.identifiers?.email);
    for (const event of user.events ?? []) {
      out.push({ key: keyOf(email, String(event.event_name), String(event.timestamp)), email, event, user });
    }
  }
  return out;
}

function countKeys(events: Delivered[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const { key } of events) counts.set(key, (counts.get(key) ?? 0) + 1);
  return counts;
}

/** Every expected key exactly once, and nothing else. */
function assertExactlyOnce(events: Delivered[], expectedKeys: string[], label = ''): void {
  const counts = countKeys(events);
  for (const key of expectedKeys) assert.equal(counts.get(key), 1, `${label}${key} delivered ${counts.get(key) ?? 0} times`);
  const unexpected = [...counts.keys()].filter((key) => !expectedKeys.includes(key));
  assert.deepEqual(unexpected, [], `${label}nothing else is delivered`);
  assert.equal(events.length, expectedKeys.length, `${label}event count`);
}

function readJsonl(path: string): Record<string, unknown>[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line));
}

/** The payload of a fixture line with its envelope removed (test-side). */
function payloadOf(line: number): Record<string, unknown> {
  const object = JSON.parse(fixtureLines[line - 1]!) as Record<string, unknown>;
  if (!('topic' in object) && !('name' in object) && (object.body || object.payload)) {
    return (object.body ?? object.payload) as Record<string, unknown>;
  }
  return object;
}

/** MAPPING §2 applied to a line's member object, then its top level. */
function attributesOfLine(line: number): Record<string, unknown> {
  const payload = payloadOf(line);
  const member = [payload.customer, payload.referrer].find((m) => m && typeof m === 'object');
  const flat = mapAttributes(member ? [member, payload] : [payload], undefined, {}, new Map());
  return toInsiderUser(EXPECTED[line]![2], flat).attributes;
}

/** A sandbox reject rate that rejects some, not all, of the fixture's members, and whom it rejects. */
function partialRejection(): { rate: number; rejected: string[] } {
  const emails = [...new Set(SENT_LINES.map((line) => EXPECTED[line]![2]))];
  const rate = [0.2, 0.3, 0.5, 0.7].find((r) => {
    const n = emails.filter((email) => isRejectedEmail(email, r)).length;
    return n > 0 && n < emails.length;
  });
  assert.ok(rate, 'a reject rate that rejects some of the fixture members');
  return { rate, rejected: emails.filter((email) => isRejectedEmail(email, rate)) };
}

/** A private working folder holding a copy of the fixture as `events.jsonl`. */
function fixtureDir(): string {
  const cwd = workdir();
  copyFileSync(FIXTURE, join(cwd, 'events.jsonl'));
  return cwd;
}

/** Skip reasons other than the fixture's own two (duplicate, merchant-only). */
const filterReasons = (reasons: Record<string, number>) =>
  Object.entries(reasons).filter(([reason]) => reason !== 'duplicate' && !/merchant/i.test(reason));

/** The Insider account a sandbox's variables name. */
const accountOf = (sandbox: Sandbox): Account => ({ partner: sandbox.env.INSIDER_PARTNER_NAME!, url: sandbox.env.INSIDER_API_URL! });

describe('replay of the fixture over the sandbox', () => {
  let sandbox: Sandbox;
  before(async () => {
    sandbox = await startSandbox({ customers: 0, reviews: 0, seed: 1 });
  });
  after(() => sandbox.close());

  test('every valid event is delivered exactly once as its member; rejects and skips accounted for; exit 1', async () => {
    sandbox.reset();
    const cwd = fixtureDir();
    const io = captureIo(sandbox.env, cwd);
    const summary = await runReplay('events.jsonl', { ...QUICK }, io);

    assert.equal(summary.exit_code, 1, 'rejected lines make the exit code 1');
    assert.deepEqual(
      { ...summary.events },
      {
        read: nonBlankLines.length,
        sent: SENT_LINES.length,
        succeeded: SENT_LINES.length,
        failed: 0,
        skipped: 2,
        rejected: 6,
        uncertain: 0,
      },
    );
    assert.equal(summary.skipped_reasons.duplicate, 1, JSON.stringify(summary.skipped_reasons));
    const otherSkips = Object.entries(summary.skipped_reasons).filter(([reason]) => reason !== 'duplicate');
    assert.equal(otherSkips.length, 1, JSON.stringify(summary.skipped_reasons));
    assert.match(otherSkips[0]![0], /merchant/i, 'line 12 is skipped as merchant-only');
    assert.equal(otherSkips[0]![1], 1);
    assert.deepEqual(summary.rejected_reasons, Object.fromEntries(Object.values(REJECTS).map((reason) => [reason, 1])));
    assert.equal(summary.failed_file, null);

    const events = deliveredEvents(sandbox);
    assertExactlyOnce(events, SENT_LINES.map(keyOfLine));
    for (const line of ENVELOPE_LINES) {
      assert.ok(
        events.some((e) => e.key === keyOfLine(line)),
        `envelope line ${line} delivered at its received_at`,
      );
    }

    // The member is the identifier (never the friend of a share event), in both places.
    const emails = new Set(SENT_LINES.map((line) => EXPECTED[line]![2]));
    for (const user of sandbox.received()) {
      const email = user.identifiers?.email;
      assert.ok(emails.has(String(email)), `unexpected user ${email}`);
      assert.equal(user.attributes?.email, email);
      assert.equal(user.skip_hook, true, 'historical events are sent with skip_hook: true');
    }
    for (const friend of FRIENDS) assert.ok(!sandbox.received().some((u) => u.identifiers?.email === friend), `${friend} is not a user`);
    assert.equal(summary.users.succeeded, sandbox.received().length);

    // A few params as MAPPING §5 maps them.
    const at = (line: number) => events.find((e) => e.key === keyOfLine(line))!.event;
    assert.deepEqual((at(1).event_params as { custom: Record<string, unknown> }).custom, {
      yotpo_event_reward_point: 50,
      yotpo_earned_coupon_expired: false,
      yotpo_coupon_expires_at: '2026-12-20T14:03:11Z',
      yotpo_event_created_at: '2026-11-20T14:03:10Z',
      yotpo_referral_code_amount_cents: 1500,
      yotpo_referral_discount_code: 'AVA-FRIEND-15',
      yotpo_campaign_id: '90211',
      yotpo_is_completed: true,
      yotpo_completed_at: '2026-11-20T14:03:11Z',
      yotpo_history_title: 'Placed an order',
    });
    assert.equal((at(21).event_params as { custom: Record<string, unknown> }).custom.yotpo_email_referred, 'uma.patel@example.com');
    assert.equal((at(22).event_params as { custom: Record<string, unknown> }).custom.yotpo_product_id, '8123456789012');

    // The rejects file: one line per bad input line, 1-based, with its reason and the raw text.
    const rejectsPath = join(cwd, 'events.jsonl.rejects.jsonl');
    assert.equal(summary.rejects_file, rejectsPath);
    assert.deepEqual(
      readJsonl(rejectsPath),
      Object.entries(REJECTS).map(([line, reason]) => ({ line: Number(line), reason, raw: fixtureLines[Number(line) - 1] })),
    );
  });

  for (const batchSize of [500, 1]) {
    test(`events of a user are in timestamp order; attributes come from the newest event (--batch-size ${batchSize})`, async () => {
      sandbox.reset();
      const cwd = fixtureDir();
      const summary = await runReplay('events.jsonl', { ...QUICK, batchSize }, captureIo(sandbox.env, cwd));
      assert.equal(summary.events.succeeded, SENT_LINES.length);

      for (const user of sandbox.received()) {
        const times = (user.events ?? []).map((e) => Date.parse(String(e.timestamp)));
        assert.deepEqual(
          times,
          [...times].sort((a, b) => a - b),
          `${user.identifiers?.email}: events in timestamp order`,
        );
      }
      if (batchSize === 500) {
        const ava = sandbox.received().filter((u) => u.identifiers?.email === 'ava.martin@example.com');
        assert.equal(ava.length, 1, 'Ava travels as one user object');
        assert.deepEqual(
          ava[0]!.events!.map((e) => e.timestamp),
          [24, 15, 2, 1].map((line) => EXPECTED[line]![1]),
          'lines 24, 15, 2, 1: oldest first',
        );
      }

      // Per member: the newest event's line; every user object that carries more than the email
      // carries exactly the attributes of that line's payload, and at least one does.
      const newest = new Map<string, number>();
      for (const line of SENT_LINES) {
        const [, timestamp, email] = EXPECTED[line]!;
        const best = newest.get(email);
        if (best === undefined || Date.parse(timestamp) > Date.parse(EXPECTED[best]![1])) newest.set(email, line);
      }
      for (const [email, line] of newest) {
        const objects = sandbox.received().filter((u) => u.identifiers?.email === email);
        const withProfile = objects.filter((u) => Object.keys(u.attributes ?? {}).some((name) => name !== 'email'));
        assert.ok(
          withProfile.length >= 1,
          `${email}: the profile of line ${line} is sent (got only ${JSON.stringify(objects.map((o) => o.attributes))})`,
        );
        for (const object of withProfile)
          assert.deepEqual(object.attributes, attributesOfLine(line), `${email}: attributes of line ${line}`);
      }
      // Spelled out for Ava (newest = line 1, written first; older lines 2, 15, 24 come later).
      const avaProfile = sandbox.received().find((u) => u.identifiers?.email === 'ava.martin@example.com' && u.attributes?.custom);
      assert.equal(avaProfile?.attributes?.custom?.yotpo_point_balance, 1250, 'Ava: balance of line 1, not 750/1010/600');
      assert.equal(avaProfile?.attributes?.custom?.yotpo_points_earned, 2310);
      assert.equal(avaProfile?.attributes?.custom?.yotpo_vip_tier_name, 'Gold');
      // Ben: newest is line 23 (no vip tier there), so line 3's tier must not leak in.
      const benProfile = sandbox.received().find((u) => u.identifiers?.email === 'ben.okafor@example.com' && u.attributes?.custom);
      assert.equal(benProfile?.attributes?.custom?.yotpo_loyalty_next_points_expire_amount, 300);
      assert.equal(benProfile?.attributes?.custom?.yotpo_vip_tier_name, undefined);
    });
  }

  test('a second replay with the same state sends nothing (already delivered); --force sends again', async () => {
    sandbox.reset();
    const cwd = fixtureDir();
    const first = await runReplay('events.jsonl', { ...QUICK }, captureIo(sandbox.env, cwd));
    assert.equal(first.events.succeeded, SENT_LINES.length);
    assert.ok(first.state_dir?.startsWith(join(cwd, '.state')), `the account folder is in the state root: ${first.state_dir}`);
    assert.equal(first.state_file, join(first.state_dir!, 'ledger.log'), 'the account folder holds the ledger');
    assert.ok(existsSync(first.state_file!));

    sandbox.reset();
    const second = await runReplay('events.jsonl', { ...QUICK }, captureIo(sandbox.env, cwd));
    assert.equal(second.events.sent, 0);
    assert.equal(second.skipped_reasons['already delivered'], SENT_LINES.length, JSON.stringify(second.skipped_reasons));
    assert.equal(second.skipped_reasons.duplicate, 1);
    assert.equal(second.events.skipped, SENT_LINES.length + 2);
    assert.equal(second.events.rejected, 6);
    assert.equal(deliveredEvents(sandbox).length, 0, 'no event twice');
    assert.equal(sandbox.requests().filter((r) => r.path === '/api/user/v1/upsert').length, 0, 'not even an empty upsert');

    // An explicit --state folder elsewhere has no ledger yet: everything is sent.
    sandbox.reset();
    const other = await runReplay('events.jsonl', { ...QUICK, state: 'other' }, captureIo(sandbox.env, cwd));
    assert.equal(other.state_dir, join(cwd, 'other'));
    assert.equal(other.events.sent, SENT_LINES.length);
    assertExactlyOnce(deliveredEvents(sandbox), SENT_LINES.map(keyOfLine), '--state other: ');

    sandbox.reset();
    const forced = await runReplay('events.jsonl', { ...QUICK, force: true }, captureIo(sandbox.env, cwd));
    assert.equal(forced.events.sent, SENT_LINES.length);
    assert.equal(forced.skipped_reasons['already delivered'], undefined);
    assertExactlyOnce(deliveredEvents(sandbox), SENT_LINES.map(keyOfLine), '--force: ');
  });

  test('stdin (-) delivers the same events (spawned CLI, fixture piped in)', async () => {
    sandbox.reset();
    const cwd = workdir();
    const result = await runCli(['replay', '-', '--json', '--insider-rps', '0'], {
      cwd,
      env: { PATH: process.env.PATH ?? '', ...sandbox.env },
      stdin: fixtureText,
    });
    assert.equal(result.code, 1, result.stderr);
    const summary = JSON.parse(result.stdout);
    assert.equal(summary.events.sent, SENT_LINES.length);
    assert.equal(summary.events.rejected, 6);
    assertExactlyOnce(deliveredEvents(sandbox), SENT_LINES.map(keyOfLine), 'stdin: ');
    assert.ok(summary.rejects_file, 'a rejects file is named');
    assert.deepEqual(
      readJsonl(summary.rejects_file).map((r) => [r.line, r.reason, r.raw]),
      Object.entries(REJECTS).map(([line, reason]) => [Number(line), reason, fixtureLines[Number(line) - 1]]),
    );
  });

  test('a .gz copy of the fixture delivers the same events', async () => {
    sandbox.reset();
    const cwd = workdir();
    writeFileSync(join(cwd, 'events.jsonl.gz'), gzipSync(fixtureText));
    const summary = await runReplay('events.jsonl.gz', { ...QUICK, rejects: 'out/bad-lines.jsonl' }, captureIo(sandbox.env, cwd));
    assert.equal(summary.exit_code, 1);
    assert.equal(summary.rejects_file, join(cwd, 'out/bad-lines.jsonl'), '--rejects names the file');
    assert.equal(summary.events.read, nonBlankLines.length);
    assertExactlyOnce(deliveredEvents(sandbox), SENT_LINES.map(keyOfLine), '.gz: ');
    assert.deepEqual(
      readJsonl(summary.rejects_file!).map((r) => [r.line, r.raw]),
      Object.keys(REJECTS).map((line) => [Number(line), fixtureLines[Number(line) - 1]]),
      'raw lines are the gunzipped text',
    );
  });

  test('envelopes: body and payload unwrapped; received_at only as the last resort; same payload = duplicate', async () => {
    sandbox.reset();
    const cwd = workdir();
    const member = { email: 'Env.Test@Example.com', first_name: 'Env', points_balance: 5 };
    const raw = {
      topic: 'swell/points/earned',
      name: 'Swell Points Earned',
      customer: member,
      perk: { id: 1, reward_points: 5, completed: true, completed_at: '2026-11-10T08:00:00Z' },
    };
    const reordered = {
      perk: { completed_at: '2026-11-10T08:00:00Z', completed: true, reward_points: 5, id: 1 },
      customer: member,
      name: raw.name,
      topic: raw.topic,
    };
    const lines = [
      JSON.stringify(raw),
      JSON.stringify({ received_at: '2026-11-27T00:00:00Z', body: reordered }),
      JSON.stringify({
        received_at: '2026-11-20T10:00:00+01:00',
        headers: { 'x-yotpo-topic': 'swell/points/reminder' },
        payload: { topic: 'swell/points/reminder', email: 'env.test@example.com', customer: member, points_needed: 10 },
      }),
      JSON.stringify({
        received_at: '2026-11-21T00:00:00Z',
        body: {
          topic: 'swell/points/earned',
          customer: member,
          perk: { id: 2, reward_points: 1, completed_at: '2026-11-11T09:30:00.123456Z' },
        },
      }),
    ];
    writeFileSync(join(cwd, 'env.jsonl'), `${lines.join('\n')}\n`);
    const summary = await runReplay('env.jsonl', { ...QUICK }, captureIo(sandbox.env, cwd));
    assert.equal(summary.exit_code, 0, JSON.stringify(summary));
    assert.deepEqual(summary.skipped_reasons, { duplicate: 1 }, 'the enveloped copy of line 1 is the same event');
    const email = 'env.test@example.com';
    assertExactlyOnce(deliveredEvents(sandbox), [
      keyOf(email, 'points_earned', '2026-11-10T08:00:00Z'),
      keyOf(email, 'points_reminder', '2026-11-20T09:00:00Z'),
      keyOf(email, 'points_earned', '2026-11-11T09:30:00Z'),
    ]);
  });

  test('--from/--to and --only skip with counted reasons', async () => {
    sandbox.reset();
    const from = '2026-11-01T00:00:00Z';
    const to = '2026-11-20T23:59:59Z';
    const inWindow = SENT_LINES.filter((line) => {
      const t = Date.parse(EXPECTED[line]![1]);
      return t >= Date.parse(from) && t <= Date.parse(to);
    });
    assert.ok(inWindow.length > 3 && inWindow.length < SENT_LINES.length - 3);
    const windowed = await runReplay('events.jsonl', { ...QUICK, from, to }, captureIo(sandbox.env, fixtureDir()));
    assertExactlyOnce(deliveredEvents(sandbox), inWindow.map(keyOfLine), '--from/--to: ');
    assert.equal(windowed.events.sent, inWindow.length);
    const outside = filterReasons(windowed.skipped_reasons);
    assert.equal(outside.length, 1, JSON.stringify(windowed.skipped_reasons));
    assert.equal(outside[0]![1], SENT_LINES.length - inWindow.length);
    assert.equal(windowed.events.skipped, SENT_LINES.length - inWindow.length + 2, 'plus merchant-only and duplicate');
    assert.equal(
      windowed.events.read,
      windowed.events.sent + windowed.events.skipped + windowed.events.rejected,
      'every line accounted for',
    );

    // --only through the CLI (comma-separated Insider names).
    sandbox.reset();
    const cwd = fixtureDir();
    const io = captureIo(sandbox.env, cwd);
    const code = await main(
      ['node', 'yotpo-insider', 'replay', 'events.jsonl', '--only', 'points_earned,tier_earned', '--json', '--insider-rps', '0'],
      io,
    );
    assert.equal(code, 1, io.err());
    const only = JSON.parse(io.out());
    assertExactlyOnce(deliveredEvents(sandbox), [1, 15].map(keyOfLine), '--only: ');
    const notOnly = filterReasons(only.skipped_reasons as Record<string, number>);
    assert.equal(notOnly.length, 1, JSON.stringify(only.skipped_reasons));
    assert.equal(notOnly[0]![1], SENT_LINES.length - 2);
    assert.equal(only.events.skipped, SENT_LINES.length - 2 + 2);
    assert.equal(only.events.read, only.events.sent + only.events.skipped + only.events.rejected);
  });

  test('--allow-unknown-events, --timestamp-fallback now, --birthday-placeholder-year and --trigger-journeys', async () => {
    sandbox.reset();
    const cwd = fixtureDir();
    const started = Date.now();
    const summary = await runReplay(
      'events.jsonl',
      { ...QUICK, allowUnknownEvents: true, timestampFallback: 'now', birthdayPlaceholderYear: 1900, triggerJourneys: true },
      captureIo(sandbox.env, cwd),
    );
    const finished = Date.now();
    assert.equal(summary.events.sent, SENT_LINES.length + 2, 'lines 30 and 31 are sent too');
    assert.deepEqual(summary.rejected_reasons, { 'invalid json': 1, 'not an object': 1, 'no email': 1, 'invalid timestamp': 1 });
    const events = deliveredEvents(sandbox);
    assert.equal(events.length, SENT_LINES.length + 2);
    const unknown = events.find((e) => e.email === 'yara.kim@example.com');
    assert.equal(unknown?.event.event_name, 'swell_gift_card_created');
    assert.equal(unknown?.event.timestamp, '2026-11-21T12:00:00Z');
    const fallback = events.find((e) => e.email === 'zoe.clark@example.com');
    assert.equal(fallback?.event.event_name, 'points_reminder');
    const time = String(fallback?.event.timestamp);
    assert.match(time, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/, 'no fractional seconds');
    assert.ok(Date.parse(time) >= Math.floor(started / 1000) * 1000 - 1000 && Date.parse(time) <= finished, `${time} is the run's time`);
    const diego = sandbox.received().find((u) => u.identifiers?.email === 'diego.ramos@example.com');
    assert.equal(diego?.attributes?.birthday, '1900-03-22T00:00:00Z', 'line 5 has no birth year');
    assert.ok(
      sandbox.received().every((u) => u.skip_hook === false),
      'skip_hook: false with --trigger-journeys',
    );
  });

  test('users Insider rejects go to the failed file with their event keys; retry delivers them into the ledger; a re-run sends nothing', async () => {
    sandbox.reset();
    const { rate, rejected } = partialRejection();
    const rejectedLines = SENT_LINES.filter((line) => rejected.includes(EXPECTED[line]![2]));
    const cwd = fixtureDir();
    sandbox.setFaults({ rejectRate: rate });
    let first;
    try {
      first = await runReplay('events.jsonl', { ...QUICK, failed: 'failed.jsonl' }, captureIo(sandbox.env, cwd));
    } finally {
      sandbox.setFaults({ rejectRate: 0 });
    }
    assert.equal(first.exit_code, 1);
    assert.equal(first.events.failed, rejectedLines.length);
    assert.equal(first.events.succeeded, SENT_LINES.length - rejectedLines.length);
    assert.equal(first.failed_file, join(cwd, 'failed.jsonl'));
    const failed = readJsonl(join(cwd, 'failed.jsonl'));
    assert.deepEqual(failed.map((f) => (f.user as ReceivedUser).identifiers?.email).sort(), [...rejected].sort());
    assert.equal(
      failed.flatMap((f) => (f.user as ReceivedUser).events ?? []).length,
      rejectedLines.length,
      'the failed users carry their events',
    );
    assertExactlyOnce(deliveredEvents(sandbox), SENT_LINES.filter((line) => !rejectedLines.includes(line)).map(keyOfLine), 'first run: ');

    sandbox.reset();
    const retried = await runRetry('failed.jsonl', { ...QUICK }, captureIo(sandbox.env, cwd));
    assert.equal(retried.exit_code, 0);
    assertExactlyOnce(deliveredEvents(sandbox), rejectedLines.map(keyOfLine), 'retry: ');

    sandbox.reset();
    const again = await runReplay('events.jsonl', { ...QUICK }, captureIo(sandbox.env, cwd));
    assert.equal(again.events.sent, 0, JSON.stringify(again.skipped_reasons));
    assert.equal(again.skipped_reasons['already delivered'], SENT_LINES.length);
    assert.equal(deliveredEvents(sandbox).length, 0);
  });

  test('a failed file that cannot be written (full disk) loses no ledger key: the re-run sends no event twice', async () => {
    sandbox.reset();
    const { rate, rejected } = partialRejection();
    const accepted = SENT_LINES.filter((line) => !rejected.includes(EXPECTED[line]![2]));
    const cwd = fixtureDir();
    sandbox.setFaults({ rejectRate: rate });
    try {
      const io = captureIo(sandbox.env, cwd);
      const full = await runReplay('events.jsonl', { ...QUICK, failed: '/dev/full' }, io);
      assert.equal(full.exit_code, 3, io.err());
      assert.match(io.err(), /cannot write \/dev\/full/);
      const again = await runReplay('events.jsonl', { ...QUICK, failed: 'failed.jsonl' }, captureIo(sandbox.env, cwd));
      assert.equal(again.exit_code, 1);
    } finally {
      sandbox.setFaults({ rejectRate: 0 });
    }
    assertExactlyOnce(deliveredEvents(sandbox), accepted.map(keyOfLine), 'both runs: ');
  });

  test('events whose delivery Insider left uncertain are not replayed again without --force', async () => {
    const cwd = fixtureDir();
    sandbox.reset();
    // Insider stores the one batch, then answers 502: Insider may hold every event (it does).
    sandbox.setFaults({ afterStore: { mode: '502', count: 1 } });
    let first;
    try {
      first = await runReplay('events.jsonl', { ...QUICK, failed: 'failed.jsonl' }, captureIo(sandbox.env, cwd));
    } finally {
      sandbox.setFaults({ afterStore: null });
    }
    assert.equal(first.exit_code, 1);
    assert.equal(first.events.uncertain, SENT_LINES.length);
    assert.equal(first.events.succeeded, 0);
    const failed = readJsonl(join(cwd, 'failed.jsonl'));
    assert.ok(failed.length > 0 && failed.every((line) => line.delivery_uncertain === true), 'every failed line is marked uncertain');
    assert.deepEqual(failed.flatMap((line) => line.event_keys as string[]).length, SENT_LINES.length);

    sandbox.reset();
    const held = await runReplay('events.jsonl', { ...QUICK }, captureIo(sandbox.env, cwd));
    assert.equal(held.events.sent, 0);
    assert.equal(held.skipped_reasons['delivery uncertain'], SENT_LINES.length);
    assert.equal(deliveredEvents(sandbox).length, 0);

    const forced = await runReplay('events.jsonl', { ...QUICK, force: true }, captureIo(sandbox.env, cwd));
    assert.equal(forced.events.sent, SENT_LINES.length);
    assertExactlyOnce(deliveredEvents(sandbox), SENT_LINES.map(keyOfLine), 'forced: ');
    const ledger = await Ledger.open(forced.state_dir!, { runId: 'test-reader', writable: false });
    assert.deepEqual(
      ledger.counts(),
      { 'in flight': 0, delivered: SENT_LINES.length, uncertain: 0, released: 0 },
      'delivered since: no longer uncertain',
    );
  });

  test('retry holds back users whose events Insider may already hold unless --force; a plain failed file needs no state file', async () => {
    const cwd = workdir();
    // The account's ledger holds key-u as uncertain (an earlier run's ambiguous answer).
    const store = StateStore.open({
      account: accountOf(sandbox),
      env: { YOTPO_INSIDER_STATE_DIR: join(cwd, '.state') },
      cwd,
      writable: true,
    });
    const ledger = await store.ledger();
    await ledger.reserve([
      { key: 'key-u', email: 'uncertain-events@example.com', event_name: 'loyalty_points_earned', timestamp: '2026-11-01T10:00:00Z' },
    ]);
    await ledger.settle(['key-u'], 'uncertain');
    await ledger.close();
    const event = (id: number) => ({
      event_name: 'loyalty_points_earned',
      timestamp: '2026-11-01T10:00:00Z',
      event_params: { custom: { perk_id: id } },
    });
    const record = (email: string, extra: Record<string, unknown>, events?: unknown[]) =>
      JSON.stringify({
        user: { identifiers: { email }, attributes: { custom: {} }, ...(events ? { events } : {}) },
        error: 'x',
        status: 200,
        attempts: 1,
        ...extra,
      });
    writeFileSync(
      join(cwd, 'failed.jsonl'),
      [
        record('uncertain-events@example.com', { delivery_uncertain: true, event_keys: ['key-u'] }, [event(1)]),
        record('uncertain-user@example.com', { delivery_uncertain: true }),
        record('named@example.com', { event_keys: ['key-n'] }, [event(2)]),
      ].join('\n'),
    );
    sandbox.reset();
    const held = await runRetry('failed.jsonl', { ...QUICK, failed: 'held.jsonl' }, captureIo(sandbox.env, cwd));
    assert.equal(held.exit_code, 1, 'a held-back user needs the operator');
    assert.deepEqual(held.skipped_reasons, { 'delivery uncertain': 1 });
    assert.match(
      held.warnings.join('\n'),
      /1 user\(s\) not sent \(kept in the new failed file\): Insider may hold their events already.*--force/,
    );
    const kept = readFileSync(join(cwd, 'held.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    assert.deepEqual(
      kept.map((r) => [r.user.identifiers.email, r.event_keys, r.delivery_uncertain]),
      [['uncertain-events@example.com', ['key-u'], true]],
    );
    assert.deepEqual(
      sandbox
        .received()
        .map((user) => user.identifiers?.email)
        .sort(),
      ['named@example.com', 'uncertain-user@example.com'],
    );

    sandbox.reset();
    const forced = await runRetry('failed.jsonl', { ...QUICK, force: true }, captureIo(sandbox.env, cwd));
    assert.deepEqual(forced.skipped_reasons, { 'already delivered': 1 }, 'named@ is in the ledger since the first retry');
    assert.deepEqual(
      sandbox
        .received()
        .map((user) => user.identifiers?.email)
        .sort(),
      ['uncertain-events@example.com', 'uncertain-user@example.com'],
    );

    // A backfill's failed file (no event keys) never needs the ledger.
    writeFileSync(join(cwd, 'backfill-failed.jsonl'), record('plain@example.com', {}));
    sandbox.reset();
    const plain = await runRetry('backfill-failed.jsonl', { ...QUICK }, captureIo(sandbox.env, cwd));
    assert.equal(plain.exit_code, 0);
    assert.equal(plain.users.succeeded, 1);
    assert.equal(plain.state_file, null);
  });

  test('events older than 90 days give a warning in the summary; recent ones do not', async () => {
    sandbox.reset();
    const day = 24 * 3600 * 1000;
    const line = (email: string, ms: number, id: number) =>
      JSON.stringify({
        topic: 'swell/points/earned',
        customer: { email, first_name: 'Old' },
        perk: { id, reward_points: 1, completed_at: new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z') },
      });
    const now = Date.now();
    const cwd = workdir();
    writeFileSync(
      join(cwd, 'old.jsonl'),
      [line('a@example.com', now - 200 * day, 1), line('b@example.com', now - day, 2), line('a@example.com', now - 95 * day, 3)].join('\n'),
    );
    writeFileSync(
      join(cwd, 'recent.jsonl'),
      [line('c@example.com', now - 2 * day, 4), line('d@example.com', now - 80 * day, 5)].join('\n'),
    );

    const old = await runReplay('old.jsonl', { ...QUICK }, captureIo(sandbox.env, cwd));
    assert.equal(old.exit_code, 0);
    assert.equal(old.events.succeeded, 3, 'old events are still sent');
    const warning = old.warnings.find((w) => /90 days/.test(w));
    assert.ok(warning, JSON.stringify(old.warnings));
    assert.match(warning, /\b2\b/, 'names how many events are that old');

    const recent = await runReplay('recent.jsonl', { ...QUICK }, captureIo(sandbox.env, cwd));
    assert.equal(recent.exit_code, 0);
    assert.deepEqual(
      recent.warnings.filter((w) => /90 days/.test(w)),
      [],
    );

    // The fixture: the lines older than 90 days at the time of the run.
    const fixtureOld = SENT_LINES.filter((l) => Date.parse(EXPECTED[l]![1]) < Date.now() - 90 * day).length;
    const fixture = await runReplay('events.jsonl', { ...QUICK, dryRun: true, out: 'audit.csv' }, captureIo({}, fixtureDir()));
    const fixtureWarning = fixture.warnings.find((w) => /90 days/.test(w));
    if (fixtureOld > 0) assert.match(fixtureWarning ?? '', new RegExp(`\\b${fixtureOld}\\b`), JSON.stringify(fixture.warnings));
    else assert.equal(fixtureWarning, undefined);
  });

  test('a dry run needs no environment at all and makes no request', async () => {
    sandbox.reset();
    // In-process with an empty environment.
    const cwd = fixtureDir();
    const io = captureIo({}, cwd);
    const dry = await runReplay('events.jsonl', { ...QUICK, dryRun: true, out: 'audit.csv' }, io);
    assert.equal(dry.exit_code, 1, io.err());
    assert.equal(dry.dry_run, true);
    assert.equal(dry.events.sent, SENT_LINES.length, '`sent` counts what would be sent');
    assert.equal(dry.events.succeeded, 0);
    assert.equal(dry.requests.insider, 0);
    assert.ok(existsSync(join(cwd, 'audit.csv')));

    // With every credential pointing at the sandbox, a dry run still sends nothing: its only
    // requests are the read-only schema check.
    const withCredentials = await runReplay('events.jsonl', { ...QUICK, dryRun: true, out: 'audit2.csv' }, captureIo(sandbox.env, cwd));
    assert.equal(withCredentials.events.sent, SENT_LINES.length);
    assert.deepEqual(
      sandbox.requests().filter((r) => !r.path.startsWith('/api/user/v3/metadata/')),
      [],
      'the sandbox recorded no other request',
    );
    assert.equal(existsSync(join(cwd, '.state')), false, 'a dry run writes no state');

    // The dry runs left no ledger behind: a live run afterwards sends everything.
    const live = await runReplay('events.jsonl', { ...QUICK }, captureIo(sandbox.env, cwd));
    assert.equal(live.events.sent, SENT_LINES.length);
    assertExactlyOnce(deliveredEvents(sandbox), SENT_LINES.map(keyOfLine), 'live after dry: ');
  });

  test('a dry run of the spawned CLI with an empty environment', async () => {
    sandbox.reset();
    const cwd = fixtureDir();
    const result = await runCli(['replay', 'events.jsonl', '--dry-run', '--json'], { cwd, env: {} });
    assert.equal(result.code, 1, result.stderr);
    assert.doesNotMatch(result.stderr, /missing variable/);
    const summary = JSON.parse(result.stdout);
    assert.equal(summary.dry_run, true);
    assert.equal(summary.events.sent, SENT_LINES.length);
    assert.equal(summary.events.succeeded, 0);
    assert.ok(
      readdirSync(cwd).some((name) => /^yotpo-insider-replay-.*\.csv$/.test(name)),
      `default audit CSV in ${readdirSync(cwd)}`,
    );
    assert.deepEqual(sandbox.requests(), []);
  });
});

describe('replay interrupted and resumed', () => {
  test('SIGINT halfway exits 130; the second run delivers the rest, every event exactly once overall', async () => {
    const sandbox = await startSandbox({ customers: 0, reviews: 0, latencyMs: 10 });
    try {
      const cwd = workdir();
      // Fixture-shaped payloads (line 1), distinct perk ids and times, 1,000 members.
      const template = payloadOf(1);
      const total = 4000;
      const base = Date.UTC(2026, 10, 1);
      const expectedKeys: string[] = [];
      const lines: string[] = [];
      for (let i = 0; i < total; i++) {
        const email = `member.${i % 1000}@example.com`;
        const time = new Date(base + i * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
        const payload = structuredClone(template) as Record<string, any>;
        payload.email = email;
        payload.customer.email = email;
        payload.perk.id = 90_000_000 + i;
        payload.perk.completed_at = time;
        payload.perk.created_at = time;
        lines.push(JSON.stringify(payload));
        expectedKeys.push(keyOf(email, 'points_earned', time));
      }
      writeFileSync(join(cwd, 'big.jsonl'), `${lines.join('\n')}\n`);

      const live = spawnCli(['replay', 'big.jsonl', '--batch-size', '50', '--insider-rps', '0'], { cwd, env: sandbox.env });
      // Interrupted once eight batches were stored.
      await sandbox.waitForStored(8);
      live.child.kill('SIGINT');
      const { code } = await live.closed;
      assert.equal(code, 130, live.stderr);
      const firstRun = deliveredEvents(sandbox).length;
      assert.ok(firstRun >= 400 && firstRun < total, `interrupted halfway (${firstRun} of ${total} delivered)`);
      assert.equal(readdirSync(join(cwd, '.state')).length, 1, 'one account folder');

      sandbox.setFaults({ latencyMs: 0 });
      const io = captureIo(sandbox.env, cwd);
      const second = await runReplay('big.jsonl', { ...QUICK, batchSize: 50 }, io);
      assert.equal(second.exit_code, 0, io.err());
      assert.equal(second.skipped_reasons['already delivered'], firstRun, 'the ledger holds exactly what arrived');
      assert.equal(second.events.sent, total - firstRun);
      assertExactlyOnce(deliveredEvents(sandbox), expectedKeys, 'both runs: ');
    } finally {
      await sandbox.close();
    }
  });
});
