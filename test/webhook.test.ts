import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { EVENT_NAMES, EVENT_PARAMS, INSIDER_EVENT_NAME } from '../src/core/table.js';
import type { FieldWarnings } from '../src/core/transform.js';
import { COERCE, getPath, isAbsent } from '../src/core/values.js';
import { linesOf, readLines } from '../src/io/lines.js';
import { EVENT_KEY_FORMAT, eventKey, identifyEvent, parseWebhookLine, type ParsedLine, type ReplayOptions } from '../src/core/webhook.js';
import { FIXTURE_EVENTS } from './helpers.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/events.jsonl', import.meta.url));
const NOW = new Date('2026-11-28T10:00:00.789Z');
const OPTIONS: ReplayOptions = { allowUnknownEvents: false, now: NOW };
const UTC_SECONDS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

const fixtureText = readFileSync(FIXTURE, 'utf8');
const fixtureLines = linesOf(fixtureText);

type Parsed = { lineNumber: number; text: string; payload: Record<string, unknown> | undefined; result: ParsedLine };

/** The payload with its envelope removed (test-side, independent of the code under test). */
function payloadOf(text: string): Record<string, unknown> | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  const object = parsed as Record<string, unknown>;
  const inner = object['body'] ?? object['payload'];
  return inner && typeof inner === 'object' && !('topic' in object) ? (inner as Record<string, unknown>) : object;
}

function parseFixture(options: ReplayOptions = OPTIONS, warnings: FieldWarnings = new Map()): Parsed[] {
  return fixtureLines
    .filter((line) => line.text.trim() !== '')
    .map((line) => ({ ...line, payload: payloadOf(line.text), result: parseWebhookLine(line.text, options, warnings) }));
}

const parsed = parseFixture();
const byLine = new Map(parsed.map((p) => [p.lineNumber, p]));

function eventAt(lineNumber: number) {
  const result = byLine.get(lineNumber)?.result;
  assert.ok(result, `fixture line ${lineNumber} exists`);
  assert.equal(result.kind, 'event', `fixture line ${lineNumber} is an event: ${JSON.stringify(result)}`);
  return result as Extract<ParsedLine, { kind: 'event' }>;
}

function parseObject(payload: unknown, options: Partial<ReplayOptions> = {}, warnings: FieldWarnings = new Map()) {
  return parseWebhookLine(JSON.stringify(payload), { ...OPTIONS, ...options }, warnings);
}

function asEvent(result: ParsedLine) {
  assert.equal(result.kind, 'event', JSON.stringify(result));
  return result as Extract<ParsedLine, { kind: 'event' }>;
}

function asReject(result: ParsedLine) {
  assert.equal(result.kind, 'rejected', JSON.stringify(result));
  return result as Extract<ParsedLine, { kind: 'rejected' }>;
}

const member = { email: 'Ada.Lovelace@Example.com ', first_name: 'Ada', last_name: 'Lovelace', points_balance: 10 };
const earned = (extra: Record<string, unknown> = {}) => ({
  topic: 'swell/points/earned',
  name: 'Swell Points Earned',
  email: 'ada.lovelace@example.com',
  customer: member,
  perk: { reward_points: 10, completed: true, completed_at: '2026-11-01T10:00:00Z' },
  ...extra,
});

/** Topics the mapping gained after fixtures/events.jsonl was written: checked on a payload of their own. */
const ADDED_TOPICS = ['swell/redemption/reminder', 'swell/account/created'];

describe('fixture: every event type', () => {
  for (const [line, [name, timestamp, email]] of Object.entries(FIXTURE_EVENTS)) {
    test(`line ${line} → ${name} at ${timestamp}`, () => {
      const event = eventAt(Number(line));
      assert.equal(event.event.event_name, name);
      assert.equal(event.event.timestamp, timestamp);
      assert.equal(event.epochMs, Date.parse(timestamp));
      assert.equal(event.email, email);
      assert.match(event.event.event_name, INSIDER_EVENT_NAME);
      if (Object.keys(event.params).length > 0) assert.deepEqual(event.event.event_params, { custom: event.params });
      else assert.equal('event_params' in event.event, false, 'no empty event_params');
    });
  }

  test('every row of EVENT_NAMES appears in the fixture (or, added after it, in ADDED_TOPICS) and maps to its Insider name', () => {
    for (const row of EVENT_NAMES) {
      const label = row.yotpoName ?? row.topics.join(',');
      const lines = parsed.filter((p) => p.payload && identifyEvent(p.payload) === row);
      const added = ADDED_TOPICS.filter((topic) => row.topics.includes(topic));
      for (const topic of added) {
        const payload = { topic, email: 'new.topic@example.com', customer: member };
        const text = JSON.stringify({ received_at: '2026-11-27T08:00:00Z', body: payload });
        lines.push({ lineNumber: 0, text, payload, result: parseWebhookLine(text, OPTIONS, new Map()) });
      }
      assert.ok(lines.length > 0, `fixture has a ${label} line`);
      for (const line of lines) {
        if (row.insiderName === null) {
          assert.deepEqual(line.result, { kind: 'skipped', reason: row.skipReason, yotpoName: row.yotpoName });
        } else if (line.result.kind === 'event') {
          assert.equal(line.result.event.event_name, row.insiderName, label);
        }
      }
      if (row.insiderName !== null) {
        assert.ok(
          lines.some((l) => l.result.kind === 'event'),
          `fixture sends at least one ${label} event`,
        );
      }
    }
  });

  test('every event param of EVENT_PARAMS is present at least once, with its type', () => {
    const events = parsed.flatMap((p) => (p.result.kind === 'event' ? [p.result] : []));
    for (const row of EVENT_PARAMS) {
      const values = events.map((e) => e.params[row.name]).filter((v) => v !== undefined);
      assert.ok(values.length > 0, `param ${row.name} present in the fixture`);
      for (const value of values) {
        if (row.type === 'date') assert.match(String(value), UTC_SECONDS, row.name);
        else assert.equal(typeof value, row.type, `${row.name} is a ${row.type}`);
      }
    }
  });

  test('every source path of every param (both sides of each ??) wins somewhere in the fixture', () => {
    for (const row of EVENT_PARAMS) {
      const alternatives = [
        ...row.paths.map((p) => ({ path: p, share: false })),
        ...(row.shareEventPaths ?? []).map((p) => ({ path: p, share: true })),
      ];
      for (const { path, share } of alternatives) {
        const hit = parsed.find((p) => {
          if (p.result.kind !== 'event' || !p.payload) return false;
          const eventRow = identifyEvent(p.payload);
          const isShare = eventRow?.shareEvent === true;
          const usesSharePaths = isShare && row.shareEventPaths !== undefined;
          if (share !== usesSharePaths) return false;
          const paths = usesSharePaths ? row.shareEventPaths! : row.paths;
          const winner = paths.find((candidate) => !isAbsent(getPath(p.payload, candidate.split('.'))));
          return winner === path;
        });
        assert.ok(hit, `${row.name} is read from ${path}${share ? ' (share event)' : ''} in some fixture line`);
        const raw = getPath(hit.payload, path.split('.'));
        const coerced = COERCE[row.type](raw);
        assert.ok('ok' in coerced);
        assert.deepEqual((hit.result as Extract<ParsedLine, { kind: 'event' }>).params[row.name], coerced.ok, `${row.name} from ${path}`);
      }
    }
  });

  test('the fixture holds each reject reason once, one duplicate and one blank line', () => {
    const rejects = parsed.flatMap((p) => (p.result.kind === 'rejected' ? [[p.lineNumber, p.result.reason]] : []));
    assert.deepEqual(rejects, [
      [27, 'invalid json'],
      [28, 'not an object'],
      [29, 'no email'],
      [30, 'unknown event'],
      [31, 'no timestamp'],
      [32, 'invalid timestamp'],
    ]);
    assert.deepEqual(
      fixtureLines.filter((l) => l.text.trim() === '').map((l) => l.lineNumber),
      [26],
    );
    const keys = parsed.flatMap((p) => (p.result.kind === 'event' ? [p.result.key] : []));
    assert.equal(keys.length - new Set(keys).size, 1, 'exactly one duplicate payload');
    assert.equal(eventAt(25).key, eventAt(1).key);
  });

  test('timestamps stay in 2026, mostly within the last 90 days', () => {
    const today = Date.parse('2026-11-28T00:00:00Z');
    const times = parsed.flatMap((p) => (p.result.kind === 'event' ? [p.result.epochMs] : []));
    for (const t of times) assert.equal(new Date(t).getUTCFullYear(), 2026);
    const old = times.filter((t) => today - t > 90 * 86_400_000);
    assert.ok(old.length >= 2 && old.length < times.length / 4, `${old.length} events older than 90 days`);
  });

  test('the same member has events at several times, an older one later in the file', () => {
    const ava = parsed.flatMap((p) =>
      p.result.kind === 'event' && p.result.email === 'ava.martin@example.com' ? [{ line: p.lineNumber, ...p.result }] : [],
    );
    assert.ok(new Set(ava.map((e) => e.epochMs)).size >= 3);
    const newest = ava.reduce((a, b) => (b.epochMs > a.epochMs ? b : a));
    assert.equal(newest.attributes['yotpo_point_balance'], 1250);
    const olderLater = ava.find((e) => e.line > newest.line && e.epochMs < newest.epochMs && e.key !== newest.key);
    assert.ok(olderLater, 'an older event of the member comes later in the file');
    assert.notEqual(olderLater.attributes['yotpo_point_balance'], 1250);
  });
});

describe('params and fallbacks', () => {
  test('new_tier.amount_spent_cents ?? vip_stats.amountSpentCents (and purchases)', () => {
    assert.equal(eventAt(15).params['yotpo_amount_spent_cents'], 50000);
    assert.equal(eventAt(15).params['yotpo_purchases_made'], 5);
    assert.equal(eventAt(16).params['yotpo_amount_spent_cents'], 25000, 'numeric string sent as a number');
    assert.equal(eventAt(17).params['yotpo_amount_spent_cents'], 41000);
    assert.equal(eventAt(17).params['yotpo_purchases_made'], 4);
    const both = asEvent(
      parseObject(
        earned({ new_tier: { amount_spent_cents: 100, purchases_made: '' }, vip_stats: { amountSpentCents: 200, purchasesMade: 3 } }),
      ),
    );
    assert.equal(both.params['yotpo_amount_spent_cents'], 100, 'new_tier first');
    assert.equal(both.params['yotpo_purchases_made'], 3, 'an empty string falls back');
  });

  test('referred_customer.email ?? email_referred; referral_discount_code customer ?? top level', () => {
    assert.equal(eventAt(18).params['yotpo_email_referred'], 'tom.baker@example.com');
    assert.equal(eventAt(19).params['yotpo_email_referred'], 'quinn.adams@example.com');
    assert.equal(eventAt(1).params['yotpo_referral_discount_code'], 'AVA-FRIEND-15');
    assert.equal(eventAt(19).params['yotpo_referral_discount_code'], 'REF-PABLO-10');
  });

  test('ids sent as strings, booleans and dates normalised', () => {
    assert.equal(eventAt(22).params['yotpo_product_id'], '8123456789012');
    assert.equal(eventAt(1).params['yotpo_campaign_id'], '90211');
    assert.equal(eventAt(3).params['yotpo_campaign_id'], 'cmp_44821');
    assert.equal(eventAt(3).params['yotpo_is_completed'], false);
    assert.equal(eventAt(1).params['yotpo_event_created_at'], '2026-11-20T14:03:10Z');
    assert.equal(eventAt(10).params['yotpo_event_reward_point'], -200);
  });

  test('a param of the wrong type is omitted and counted as a field warning', () => {
    const warnings: FieldWarnings = new Map();
    const event = asEvent(parseObject(earned({ perk: { reward_points: 'lots', completed_at: '2026-11-01T10:00:00Z' } }), {}, warnings));
    assert.equal('yotpo_event_reward_point' in event.params, false);
    assert.equal(warnings.get('event.yotpo_event_reward_point: not a number'), 1);
  });

  test('attributes: member object first, birthday parts, placeholder year', () => {
    const ava = eventAt(1).attributes;
    assert.equal(ava['name'], 'Ava');
    assert.equal(ava['birthday'], '1990-05-08T00:00:00Z');
    assert.equal(ava['yotpo_loyalty_opt_in'], true);
    assert.equal(ava['yotpo_loyalty_opt_in_date'], '2026-01-14T09:12:00Z');
    assert.equal(ava['yotpo_vip_tier_ends_at'], '2027-09-15T00:00:00Z');
    assert.equal(ava['yotpo_referral_link'], 'https://rwrd.io/ava-m8k2');
    assert.equal(ava['yotpo_coupon_expires_at'], '2026-12-20T14:03:11Z', 'perk.expires_at from the payload');

    const warnings: FieldWarnings = new Map();
    const diego = byLine.get(5)!.text;
    const noYear = asEvent(parseWebhookLine(diego, OPTIONS, warnings));
    assert.equal('birthday' in noYear.attributes, false, 'a missing year is never invented');
    assert.equal(warnings.get('birthday: no year'), 1);
    const placeholder = asEvent(parseWebhookLine(diego, { ...OPTIONS, placeholderYear: 1900 }, new Map()));
    assert.equal(placeholder.attributes['birthday'], '1900-03-22T00:00:00Z');

    assert.equal(eventAt(23).attributes['yotpo_loyalty_next_points_expire_on'], '2026-12-24T00:00:00Z');
    assert.equal(eventAt(23).attributes['yotpo_days_to_point_expiration'], 30);
    assert.equal(eventAt(7).attributes['anniversary_date'], '2025-06-01T00:00:00Z');
  });
});

describe('member identity', () => {
  const friends: Record<number, string> = {
    20: 'sam.rivera@example.com',
    21: 'uma.patel@example.com',
    22: 'victor.lee@example.com',
  };
  for (const [line, friend] of Object.entries(friends)) {
    test(`share event on line ${line}: the friend is never the user`, () => {
      const event = eventAt(Number(line));
      assert.notEqual(event.email, friend);
      assert.equal(event.params['yotpo_email_referred'], friend);
      assert.equal(Object.values(event.attributes).includes(friend), false, 'no attribute holds the friend');
    });
  }

  test('a share event uses the member link shared at the top level, not the friend', () => {
    assert.equal(eventAt(20).attributes['yotpo_referral_link'], 'https://rwrd.io/olivia5');
    assert.equal(eventAt(20).attributes['yotpo_referral_code_expired'], false);
    assert.equal(eventAt(21).attributes['yotpo_referral_link'], 'https://rwrd.io/ruby22');
    assert.equal(eventAt(21).attributes['name'], 'Ruby');
  });

  test('a share event with only the friend email is rejected, not sent to the friend', () => {
    const result = asReject(
      parseObject({ topic: 'swell/referral/share', email: 'friend@example.com', perk: { created_at: '2026-11-01T00:00:00Z' } }),
    );
    assert.equal(result.reason, 'no email');
    assert.match(result.detail, /friend/);
    // The same payload as a non-share event uses the top-level email.
    const notShare = asEvent(
      parseObject({ topic: 'swell/points/earned', email: 'friend@example.com', perk: { created_at: '2026-11-01T00:00:00Z' } }),
    );
    assert.equal(notShare.email, 'friend@example.com');
  });

  test('referral completed: the member is the referrer, the referred customer is the param', () => {
    const event = eventAt(18);
    assert.equal(event.email, 'olivia.chen@example.com');
    assert.equal(event.attributes['name'], 'Olivia');
    assert.equal(event.attributes['yotpo_successful_referrals'], 3);
    assert.equal(event.attributes['yotpo_referral_link'], 'https://rwrd.io/olivia5');
    assert.equal(Object.values(event.attributes).includes('Tom'), false);
  });

  test('attributes read the member object before the payload top level', () => {
    const event = asEvent(
      parseObject(
        earned({
          customer: { ...member, points_balance: 10, referral_link: 'https://rwrd.io/member' },
          points_balance: 99,
          referral_link: 'https://rwrd.io/other',
          first_name: 'Friend',
        }),
      ),
    );
    assert.equal(event.attributes['yotpo_point_balance'], 10);
    assert.equal(event.attributes['yotpo_referral_link'], 'https://rwrd.io/member');
    assert.equal(event.attributes['name'], 'Ada');
  });

  test('email precedence customer.email ?? referrer.email ?? from ?? email, normalised', () => {
    const both = asEvent(parseObject(earned({ email: 'other@example.com', referrer: { email: 'ref@example.com' } })));
    assert.equal(both.email, 'ada.lovelace@example.com');
    const fromOnly = asEvent(parseObject({ ...earned(), customer: undefined, email: 'top@example.com', from: ' From@Example.com' }));
    assert.equal(fromOnly.email, 'from@example.com');
  });
});

describe('rejects', () => {
  const cases: [number, string, RegExp][] = [
    [27, 'invalid json', /not valid JSON/],
    [28, 'not an object', /array/],
    [29, 'no email', /customer\.email.*email is present/],
    [30, 'unknown event', /swell\/gift_card\/created.*--allow-unknown-events.*swell_gift_card_created/],
    [31, 'no timestamp', /perk\.completed_at.*received_at.*--timestamp-fallback now/],
    [32, 'invalid timestamp', /perk\.completed_at "next Tuesday"/],
  ];
  for (const [line, reason, detail] of cases) {
    test(`line ${line}: ${reason}`, () => {
      const result = asReject(byLine.get(line)!.result);
      assert.equal(result.reason, reason);
      assert.match(result.detail, detail);
    });
  }

  test('not an object: scalars, null, and an envelope whose body is not an object', () => {
    for (const text of ['"hello"', 'null', '42', 'true', '{"received_at":"2026-11-01T00:00:00Z","body":[1]}']) {
      const result = asReject(parseWebhookLine(text, OPTIONS, new Map()));
      assert.equal(result.reason, 'not an object', text);
    }
    assert.equal(asReject(parseWebhookLine('', OPTIONS, new Map())).reason, 'invalid json');
  });

  test('an invalid member email is rejected naming the path and value', () => {
    const result = asReject(parseObject(earned({ customer: { email: 'n/a' }, email: 'ada@example.com' })));
    assert.equal(result.reason, 'no email');
    assert.match(result.detail, /customer\.email "n\/a"/);
  });

  test('unknown events: no topic nor name; a topic of the wrong type', () => {
    assert.equal(asReject(parseObject({ email: 'a@example.com', perk: { created_at: '2026-11-01' } })).reason, 'unknown event');
    assert.equal(asReject(parseObject({ ...earned(), topic: 42, name: undefined })).reason, 'unknown event');
  });

  test('a present but invalid timestamp is not skipped over for a later one', () => {
    const result = asReject(parseObject(earned({ perk: { completed_at: '2026-02-30T10:00:00Z', created_at: '2026-02-01T00:00:00Z' } })));
    assert.equal(result.reason, 'invalid timestamp');
    assert.match(result.detail, /perk\.completed_at/);
    const envelope = { received_at: 'yesterday', body: { topic: 'loyalty/opt_out', customer: member } };
    const bad = asReject(parseObject(envelope));
    assert.equal(bad.reason, 'invalid timestamp');
    assert.match(bad.detail, /received_at "yesterday"/);
  });

  test('the rejected line adds no field warnings', () => {
    const warnings: FieldWarnings = new Map();
    parseObject(earned({ customer: {}, email: undefined, perk: { reward_points: 'x' } }), {}, warnings);
    assert.equal(warnings.size, 0);
  });
});

describe('identification', () => {
  test('merchant-only below-threshold is skipped, by topic or by name, even with allow-unknown-events', () => {
    assert.deepEqual(byLine.get(12)!.result, {
      kind: 'skipped',
      reason: 'merchant-only event',
      yotpoName: 'Swell Redemption Code Below Threshold',
    });
    const byName = parseObject({ name: 'Swell Redemption Code Below Threshold', number_of_unused_codes: 3 }, { allowUnknownEvents: true });
    assert.equal(byName.kind, 'skipped');
  });

  test('topic first, then the name exactly, case-insensitively and trimmed', () => {
    assert.equal(asEvent(parseObject(earned({ topic: 'swell/tier/lost', name: 'Swell Points Earned' }))).event.event_name, 'tier_lost');
    assert.equal(asEvent(parseObject(earned({ topic: 'swell/points/earned/v9' }))).event.event_name, 'points_earned');
    assert.equal(asEvent(parseObject(earned({ topic: undefined, name: '  swell   POINTS earned ' }))).event.event_name, 'points_earned');
    assert.equal(eventAt(18).event.event_name, 'referral_completed', 'the renamed "Yotpo Referral completed" by its topic');
  });

  test('--allow-unknown-events sends the snake_case of the name', () => {
    const options = { ...OPTIONS, allowUnknownEvents: true };
    const event = asEvent(parseWebhookLine(byLine.get(30)!.text, options, new Map()));
    assert.equal(event.event.event_name, 'swell_gift_card_created');
    assert.equal(event.event.timestamp, '2026-11-21T12:00:00Z');
    assert.equal(event.yotpoName, 'Swell Gift Card Created');
    const odd = asEvent(parseObject(earned({ topic: 'x/y', name: '  Custom: Spin-the-Wheel Won!! v2.1 ' }), { allowUnknownEvents: true }));
    assert.equal(odd.event.event_name, 'custom_spin-the-wheel_won_v2.1');
    const bad = asReject(parseObject(earned({ topic: 'x/y', name: '--' }), { allowUnknownEvents: true }));
    assert.equal(bad.reason, 'unknown event');
    const topicOnly = asEvent(parseObject(earned({ topic: 'loyalty/gift/sent', name: undefined }), { allowUnknownEvents: true }));
    assert.equal(topicOnly.event.event_name, 'loyalty_gift_sent');
  });
});

describe('timestamps and envelopes', () => {
  test('envelopes: body and payload, received_at only as the last resort', () => {
    assert.equal(eventAt(5).event.timestamp, '2026-10-05T18:22:47Z');
    assert.equal(eventAt(7).event.timestamp, '2026-09-12T05:45:10Z');
    const raw = JSON.parse(byLine.get(1)!.text);
    const wrapped = asEvent(parseObject({ received_at: '2026-11-27T00:00:00Z', payload: raw, headers: { 'x-a': 'b' } }));
    assert.equal(wrapped.event.timestamp, '2026-11-20T14:03:11Z', "the payload's own time wins");
    assert.equal(asReject(parseObject({ received_at: '2026-11-27T00:00:00Z', body: '{nope' })).reason, 'invalid json');
  });

  test('opt-in date times opt-in events only', () => {
    assert.equal(eventAt(8).event.timestamp, '2026-09-03T10:22:41Z');
    assert.notEqual(eventAt(9).event.timestamp, '2026-02-11T12:00:00Z');
    const optInElsewhere = asReject(
      parseObject({ topic: 'swell/points/reminder', customer: { ...member, loyalty_opt_in_date: '2026-01-01T00:00:00Z' } }),
    );
    assert.equal(optInElsewhere.reason, 'no timestamp');
  });

  test('timestampFallback now uses the run start, formatted without fractions', () => {
    const event = asEvent(parseWebhookLine(byLine.get(31)!.text, { ...OPTIONS, timestampFallback: 'now' }, new Map()));
    assert.equal(event.event.timestamp, '2026-11-28T10:00:00Z');
    assert.equal(event.epochMs, Date.parse('2026-11-28T10:00:00Z'));
    assert.equal(event.email, 'zoe.clark@example.com');
    // An invalid timestamp is still rejected with the fallback.
    assert.equal(parseWebhookLine(byLine.get(32)!.text, { ...OPTIONS, timestampFallback: 'now' }, new Map()).kind, 'rejected');
  });
});

describe('event identity (MAPPING §5)', () => {
  const HASH_KEY = /^h1:[0-9a-f]{64}$/;
  const keyOf = (line: unknown, options: Partial<ReplayOptions> = {}) => asEvent(parseObject(line, options)).key;
  /** A payload whose topic carries no time: only an envelope's received_at times it. */
  const untimed = (topic: string) => ({ topic, email: 'ada.lovelace@example.com', customer: member });
  const delivery = (receivedAt: string, body: unknown, headers?: Record<string, unknown>) => ({
    received_at: receivedAt,
    ...(headers ? { headers } : {}),
    body,
  });

  test('versioned formats: h1:<sha256> for a hash, e1:<eventid> for an id, e1#<sha256> for an id that is not a plain token', () => {
    assert.match(eventKey({ payload: earned() }), HASH_KEY);
    assert.equal(eventKey({ eventId: 'b7c1-42.x:9', payload: earned() }), 'e1:b7c1-42.x:9');
    assert.match(eventKey({ eventId: 'two words\nand a line', payload: earned() }), /^e1#[0-9a-f]{64}$/);
    assert.notEqual(eventKey({ eventId: 'a b', payload: {} }), eventKey({ eventId: 'a  b', payload: {} }));
    assert.deepEqual(EVENT_KEY_FORMAT, { eventId: 'e1', hash: 'h1' });
  });

  test('a hash is stable across key order (recursively) and envelopes, and differs for different payloads', () => {
    const a = { topic: 't', perk: { id: 1, created_at: 'x', list: [{ b: 1, a: 2 }] }, email: 'e@example.com' };
    const b = { email: 'e@example.com', perk: { list: [{ a: 2, b: 1 }], created_at: 'x', id: 1 }, topic: 't' };
    assert.equal(eventKey({ payload: a }), eventKey({ payload: b }));
    assert.notEqual(eventKey({ payload: a }), eventKey({ payload: { ...a, perk: { ...a.perk, id: 2 } } }));
    assert.notEqual(eventKey({ payload: { list: [1, 2] } }), eventKey({ payload: { list: [2, 1] } }), 'array order matters');
    const raw = JSON.parse(byLine.get(1)!.text);
    const wrapped = delivery('2026-11-27T00:00:00Z', raw, { 'x-a': 'b' });
    assert.equal(keyOf(wrapped), eventAt(1).key, "the payload's own time wins, so received_at is not in the key");
    assert.equal(keyOf({ ...wrapped, body: JSON.stringify(raw) }), eventAt(1).key, 'a body saved as a string');
    assert.equal(eventAt(1).key, eventKey({ payload: raw }));
  });

  test('a birthday whose body is the same a year later is a new event; the same delivery repeated that day is not', () => {
    const body = untimed('swell/customer/birthday');
    const lastYear = keyOf(delivery('2025-11-14T08:00:00Z', body));
    const thisYear = keyOf(delivery('2026-11-14T08:00:00Z', body));
    const retried = keyOf(delivery('2026-11-14T21:59:00+01:00', body)); // 20:59 UTC, the same UTC day
    assert.match(thisYear, HASH_KEY);
    assert.notEqual(lastYear, thisYear);
    assert.equal(retried, thisYear);
    assert.equal(thisYear, eventKey({ payload: body, receivedOn: '2026-11-14' }));
    assert.notEqual(keyOf(delivery('2026-11-14T23:30:00-01:00', body)), thisYear, 'the UTC date: 00:30 on the 15th');
  });

  test('a reminder whose body is the same a month later is a new event', () => {
    const body = { ...untimed('swell/points/reminder'), points_needed: 80 };
    const october = keyOf(delivery('2026-10-25T17:00:00Z', body));
    const november = keyOf(delivery('2026-11-25T17:00:00Z', body));
    assert.notEqual(october, november);
    assert.equal(keyOf(delivery('2026-11-25T17:00:09.5Z', body)), november);
  });

  test('--timestamp-fallback now never puts the run date in the key: the same file is not new every day', () => {
    const body = untimed('swell/points/reminder');
    const monday = keyOf(body, { timestampFallback: 'now', now: new Date('2026-11-30T09:00:00Z') });
    const tuesday = keyOf(body, { timestampFallback: 'now', now: new Date('2026-12-01T09:00:00Z') });
    assert.equal(monday, tuesday);
    assert.equal(monday, eventKey({ payload: body }));
  });

  test("the envelope's eventid is the key: the same id twice is one event whatever the body, two ids are two", () => {
    const first = keyOf(delivery('2026-11-14T08:00:00Z', untimed('swell/tier/earned'), { EventId: 'evt_123' }));
    const again = keyOf(delivery('2026-12-20T08:00:00Z', { ...earned(), points_earned: 5 }, { eventid: 'evt_123' }));
    assert.equal(first, 'e1:evt_123');
    assert.equal(again, first);
    const other = keyOf(delivery('2026-11-14T08:00:00Z', untimed('swell/tier/earned'), { eventid: 'evt_124' }));
    assert.equal(other, 'e1:evt_124');
    const numericId = JSON.stringify(delivery('2026-11-14T08:00:00Z', earned(), { eventid: 0 })).replace(
      '"eventid":0',
      '"eventid":98765432109876543210',
    );
    assert.equal(asEvent(parseWebhookLine(numericId, OPTIONS, new Map())).key, 'e1:98765432109876543210', 'a numeric id keeps every digit');
    assert.match(keyOf(delivery('2026-11-14T08:00:00Z', earned(), { eventid: '  ' })), HASH_KEY, 'a blank id is no id');
    assert.match(keyOf({ ...earned(), headers: { eventid: 'x' } }), HASH_KEY, 'only an envelope carries headers');
  });

  test('the fixture keys follow the rule: received_at-timed lines carry their date', () => {
    const line15 = JSON.parse(byLine.get(15)!.text);
    assert.equal(eventAt(15).key, eventKey({ payload: line15.payload, receivedOn: '2026-09-15' }));
    assert.notEqual(eventAt(15).key, eventKey({ payload: line15.payload }));
    assert.equal(eventAt(25).key, eventAt(1).key, 'the repeated delivery');
  });
});

describe('hostile lines', () => {
  const nest = (levels: number) => `${'{"a":'.repeat(levels - 1)}{}${'}'.repeat(levels - 1)}`;
  const withJunk = (junkLevels: number) =>
    `{"topic":"swell/points/earned","customer":{"email":"a@example.com"},"perk":{"completed_at":"2026-11-01T00:00:00Z"},"junk":${nest(junkLevels)}}`;

  test('a line nested more than 64 levels is rejected as too deeply nested; 64 levels are fine', () => {
    assert.equal(parseWebhookLine(withJunk(63), OPTIONS, new Map()).kind, 'event', '64 levels with the line itself');
    const deep = asReject(parseWebhookLine(withJunk(64), OPTIONS, new Map()));
    assert.equal(deep.reason, 'too deeply nested');
    assert.match(deep.detail, /64 levels/);
    const body = JSON.stringify({ received_at: '2026-11-01T00:00:00Z', body: withJunk(63) });
    assert.equal(asReject(parseWebhookLine(body, OPTIONS, new Map())).reason, 'too deeply nested', 'a string body sits one level down');
  });

  test('a hundred thousand levels are refused without a stack overflow, invalid or not', () => {
    assert.equal(asReject(parseWebhookLine('['.repeat(100_000) + ']'.repeat(100_000), OPTIONS, new Map())).reason, 'too deeply nested');
    assert.equal(asReject(parseWebhookLine('{"a":'.repeat(100_000), OPTIONS, new Map())).reason, 'too deeply nested');
    assert.equal(eventKey({ payload: earned() }).length, 67);
  });

  test('a replay of a file with a deep line rejects that line by number and reads on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'yotpo-insider-deep-'));
    try {
      const file = join(dir, 'events.jsonl');
      writeFileSync(
        file,
        [JSON.stringify(earned()), withJunk(200), JSON.stringify(earned({ perk: { completed_at: '2026-11-02T00:00:00Z' } }))].join('\n'),
      );
      const outcomes: [number, string][] = [];
      for await (const line of readLines(file)) {
        const result = parseWebhookLine(line.text, OPTIONS, new Map());
        outcomes.push([line.lineNumber, result.kind === 'rejected' ? result.reason : result.kind]);
      }
      assert.deepEqual(outcomes, [
        [1, 'event'],
        [2, 'too deeply nested'],
        [3, 'event'],
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('1e400 is omitted with a field warning, never sent as null', () => {
    const warnings: FieldWarnings = new Map();
    const text = JSON.stringify(earned({ points_needed: 7 }))
      .replace('"reward_points":10', '"reward_points":1e400')
      .replace('"points_needed":7', '"points_needed":-1E999');
    const event = asEvent(parseWebhookLine(text, OPTIONS, warnings));
    assert.equal('yotpo_event_reward_point' in event.params, false);
    assert.equal('yotpo_points_needed' in event.params, false);
    assert.equal(JSON.stringify(event.event).includes('null'), false);
    assert.equal(warnings.get('event.yotpo_event_reward_point: not a finite number'), 1);
    assert.equal(warnings.get('event.yotpo_points_needed: not a finite number'), 1);
    const other = asEvent(parseWebhookLine(text.replace('1e400', '1e401'), OPTIONS, new Map()));
    assert.notEqual(other.key, event.key, 'the literal as written is part of the identity');
  });

  test('an id beyond 2^53 keeps every digit, and two events differing only in it have two keys', () => {
    const line = (id: string) => JSON.stringify(earned({ product: { id: 0, name: 'Tote' } })).replace('"id":0', `"id":${id}`);
    const a = asEvent(parseWebhookLine(line('123456789012345678901'), OPTIONS, new Map()));
    const b = asEvent(parseWebhookLine(line('123456789012345678902'), OPTIONS, new Map()));
    assert.equal(
      JSON.parse(line('123456789012345678901')).product.id,
      JSON.parse(line('123456789012345678902')).product.id,
      'JSON.parse cannot tell them apart',
    );
    assert.equal(a.params['yotpo_product_id'], '123456789012345678901');
    assert.equal(b.params['yotpo_product_id'], '123456789012345678902');
    assert.notEqual(a.key, b.key);
    const safe = asEvent(parseWebhookLine(line('8123456789012'), OPTIONS, new Map()));
    assert.equal(safe.params['yotpo_product_id'], '8123456789012');
    assert.equal(safe.key, eventKey({ payload: JSON.parse(line('8123456789012')) }), 'an ordinary line hashes as JSON.parse reads it');
  });

  test('invalid UTF-8 (U+FFFD the reader put in, not an escape) is a field warning; in the member email, a reject', () => {
    const warnings: FieldWarnings = new Map();
    const mangled = JSON.stringify(earned({ customer: { ...member, first_name: 'Zo\uFFFD', last_name: 'Doe' } }));
    assert.ok(mangled.includes('\uFFFD'), 'the text holds the character itself');
    const event = asEvent(parseWebhookLine(mangled, OPTIONS, warnings));
    assert.equal('name' in event.attributes, false);
    assert.equal(event.attributes['surname'], 'Doe');
    assert.equal(warnings.get('name: invalid UTF-8'), 1);

    const escaped = mangled.replace('\uFFFD', '\\ufffd');
    const kept = asEvent(parseWebhookLine(escaped, OPTIONS, new Map()));
    assert.equal(kept.attributes['name'], 'Zo\uFFFD', 'an escape is what the sender wrote');

    const badEmail = asReject(
      parseWebhookLine(JSON.stringify(earned({ customer: { email: 'ad\uFFFD@example.com' } })), OPTIONS, new Map()),
    );
    assert.equal(badEmail.reason, 'no email');
    assert.match(badEmail.detail, /customer\.email is not valid UTF-8/);
  });

  test('bytes that are not UTF-8 in a file arrive through readLines as a field warning', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'yotpo-insider-utf8-'));
    try {
      const file = join(dir, 'events.jsonl');
      const [before, after] = JSON.stringify(earned({ customer: { ...member, last_name: 'XX' } })).split('XX');
      writeFileSync(file, Buffer.concat([Buffer.from(before!), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from(after!)]));
      const warnings: FieldWarnings = new Map();
      const lines = [];
      for await (const line of readLines(file)) lines.push(parseWebhookLine(line.text, OPTIONS, warnings));
      const event = asEvent(lines[0]!);
      assert.equal('surname' in event.attributes, false);
      assert.equal(warnings.get('surname: invalid UTF-8'), 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('topics added to the mapping', () => {
  test('swell/redemption/reminder → redemption_reminder, swell/account/created → account_created', () => {
    const at = (topic: string) => asEvent(parseObject({ received_at: '2026-11-20T10:00:00Z', body: { topic, customer: member } }));
    assert.equal(at('swell/redemption/reminder').event.event_name, 'redemption_reminder');
    assert.equal(at('swell/account/created').event.event_name, 'account_created');
    assert.equal(at('swell/account/created').event.timestamp, '2026-11-20T10:00:00Z');
  });

  test('an untimed topic without an envelope is rejected saying so, naming received_at (as listen writes) and --timestamp-fallback now', () => {
    for (const topic of ['swell/tier/earned', 'swell/redemption/reminder', 'swell/referral/share/reminder']) {
      const result = asReject(parseObject({ topic, customer: member }));
      assert.equal(result.reason, 'no timestamp');
      assert.match(result.detail, /carries no time of its own/, topic);
      assert.match(result.detail, /received_at.*listen.*--timestamp-fallback now/, topic);
    }
    const timed = asReject(parseObject({ topic: 'swell/points/earned', customer: member }));
    assert.doesNotMatch(timed.detail, /carries no time of its own/);
    assert.match(timed.detail, /received_at.*--timestamp-fallback now/);
  });
});

describe('readLines', () => {
  async function collect(input: string) {
    const out: { lineNumber: number; text: string }[] = [];
    for await (const line of readLines(input)) out.push(line);
    return out;
  }

  test('a plain file: every physical line, blank ones counted, same as linesOf', async () => {
    const lines = await collect(FIXTURE);
    assert.deepEqual(lines, fixtureLines);
    assert.equal(lines.length, 32);
    assert.deepEqual(lines[25], { lineNumber: 26, text: '' });
  });

  test('a .gz file, CRLF, blank lines and a last line without newline; gzip also found by magic bytes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'yotpo-insider-lines-'));
    try {
      const content = '{"a":1}\r\n\r\n  \n{"b":2}\n{"c":3}';
      const expected = [
        { lineNumber: 1, text: '{"a":1}' },
        { lineNumber: 2, text: '' },
        { lineNumber: 3, text: '  ' },
        { lineNumber: 4, text: '{"b":2}' },
        { lineNumber: 5, text: '{"c":3}' },
      ];
      const gz = join(dir, 'events.jsonl.gz');
      writeFileSync(gz, gzipSync(content));
      assert.deepEqual(await collect(gz), expected);
      const disguised = join(dir, 'events.jsonl');
      writeFileSync(disguised, gzipSync(content));
      assert.deepEqual(await collect(disguised), expected);
      assert.deepEqual(linesOf(content), expected);
      const corrupt = join(dir, 'broken.jsonl.gz');
      writeFileSync(corrupt, Buffer.concat([gzipSync(content).subarray(0, 12), Buffer.from('garbage')]));
      await assert.rejects(collect(corrupt), (error: Error) => error.message.includes(corrupt));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a missing file fails before yielding, naming the path', async () => {
    const missing = join(tmpdir(), 'yotpo-insider-no-such-dir', 'missing.jsonl');
    const iterator = readLines(missing);
    await assert.rejects(iterator.next(), (error: Error) => {
      assert.match(error.message, /missing\.jsonl/);
      assert.ok(error.message.includes(missing));
      assert.equal((error as Error & { exitCode?: number }).exitCode, 2);
      return true;
    });
  });

  test('linesOf: empty text, trailing newline, BOM', () => {
    assert.deepEqual(linesOf(''), []);
    assert.deepEqual(linesOf('\n'), [{ lineNumber: 1, text: '' }]);
    assert.deepEqual(linesOf('\uFEFF{"a":1}\n'), [{ lineNumber: 1, text: '{"a":1}' }]);
  });
});
