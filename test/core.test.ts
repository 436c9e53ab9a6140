import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Batcher, batchBytes, requestBody, toBatchItem } from '../src/core/batcher.js';
import { readUpsertResponse } from '../src/insider/upsert.js';
import { ReviewAggregator } from '../src/core/review-aggregates.js';
import { toInsiderUser } from '../src/core/transform.js';
import { BackfillCheckpoint, type BackfillScope } from '../src/pipeline/backfill-checkpoint.js';
import { PageTracker } from '../src/pipeline/checkpoint.js';
import { parseRetryAfter, retryDelayMs, DEFAULT_RETRY_POLICY, isRetryableStatus } from '../src/io/retry.js';
import { RateLimiter } from '../src/io/rate-limit.js';
import { redact, registerSecret } from '../src/io/redact.js';

const user = (i: number, padding = 0) =>
  toInsiderUser(`user${i}@example.com`, padding ? { name: 'x'.repeat(padding) } : { name: `U${i}` });

describe('batcher', () => {
  test('closes a batch at maxUsers', () => {
    const batcher = new Batcher<number>(3);
    const closed = [];
    for (let i = 0; i < 7; i++) {
      const batch = batcher.add(toBatchItem(user(i), i));
      if (batch) closed.push(batch.items.map((item) => item.tag));
    }
    const rest = batcher.flush();
    assert.deepEqual(closed, [[0, 1, 2], [3, 4, 5]]);
    assert.deepEqual(rest?.items.map((item) => item.tag), [6]);
    assert.equal(batcher.flush(), undefined);
  });

  test('closes a batch before it would pass maxBytes, and the body measures what was counted', () => {
    const maxBytes = 1000;
    const batcher = new Batcher<number>(1000, maxBytes);
    const batches = [];
    for (let i = 0; i < 20; i++) {
      const batch = batcher.add(toBatchItem(user(i, 150), i));
      if (batch) batches.push(batch);
    }
    const last = batcher.flush();
    if (last) batches.push(last);
    assert.ok(batches.length > 1);
    assert.deepEqual(batches.flatMap((b) => b.items.map((item) => item.tag)), [...Array(20).keys()]);
    for (const batch of batches) {
      const body = requestBody(batch.items, true);
      assert.ok(Buffer.byteLength(body) <= maxBytes, `${Buffer.byteLength(body)} > ${maxBytes}`);
      assert.ok(batchBytes(batch.items) >= Buffer.byteLength(body));
      assert.deepEqual(JSON.parse(body).users.length, batch.items.length);
    }
  });

  test('the request body is the users array and skip_hook', () => {
    const body = JSON.parse(requestBody([toBatchItem(user(1), 0)], false));
    assert.deepEqual(body, { users: [user(1)], skip_hook: false });
  });
});

describe('Insider 200 body', () => {
  test('per-user failures are mapped back by index; {} counts are 0', () => {
    const reading = readUpsertResponse(
      {
        data: {
          successful: {},
          fail: {
            count: 2,
            errors: {
              'users.0.identifiers.*.regexp(^.+@.+\\..+$)': ['not a valid email address: x'],
              'users.2.events.0.event_name.*.regexp(x)': ['invalid event name: A'],
              'users.2.attributes.birthday': ['must end with Z'],
              'users.9.attributes': ['out of range index is ignored'],
            },
          },
        },
      },
      3,
    );
    assert.equal(reading.succeeded, 0);
    assert.equal(reading.failed, 2);
    assert.deepEqual([...reading.errorsByIndex.keys()], [0, 2]);
    assert.deepEqual(reading.errorsByIndex.get(2), ['events.0.event_name.*.regexp(x): invalid event name: A', 'attributes.birthday: must end with Z']);
    assert.deepEqual(readUpsertResponse({ data: { successful: { count: 5 }, fail: {} } }, 5), {
      readable: true,
      succeeded: 5,
      failed: 0,
      errorsByIndex: new Map(),
    });
  });
});

describe('page tracker (checkpoint low-water mark)', () => {
  test('never passes a page with an unconfirmed user', () => {
    const tracker = new PageTracker();
    tracker.addUser(1);
    tracker.addUser(2);
    tracker.pageRead(1, 'c2');
    tracker.pageRead(2, 'c3');
    tracker.addUser(3);
    tracker.pageRead(3, null);
    assert.equal(tracker.confirmed, undefined);
    tracker.settleUser(2);
    assert.equal(tracker.confirmed, undefined, 'page 2 done but page 1 is not');
    tracker.settleUser(1);
    assert.deepEqual(tracker.confirmed, { seq: 2, resumeAfter: 'c3' });
    tracker.settleUser(3);
    assert.deepEqual(tracker.confirmed, { seq: 3, resumeAfter: null });
  });

  test('a page without users counts as confirmed once read; numbering can start later (resume)', () => {
    const tracker = new PageTracker(5);
    tracker.pageRead(5, 'c6');
    assert.deepEqual(tracker.confirmed, { seq: 5, resumeAfter: 'c6' });
  });
});

describe('backfill checkpoint', () => {
  const scope: BackfillScope = { loyalty: true, reviews: true, since: null, endpoint: 'recent' };
  const stateFile = () => join(mkdtempSync(join(tmpdir(), 'yotpo-insider-core-')), 'state.json');
  const readBackfill = (path: string) => JSON.parse(readFileSync(path, 'utf8')).backfill;

  test('the cursor moves only over settled pages; the last page settled ends the loyalty phase', () => {
    const path = stateFile();
    const checkpoint = new BackfillCheckpoint(path, scope);
    checkpoint.addUser(1);
    checkpoint.addUser(2);
    checkpoint.pageRead(1, 'c2');
    checkpoint.pageRead(2, null);
    checkpoint.settle({ page: 2 });
    assert.equal(checkpoint.state.pages_confirmed, 0, 'page 1 still has a user in flight');
    checkpoint.settle({ page: 1 });
    assert.equal(checkpoint.state.pages_confirmed, 2);
    assert.equal(checkpoint.state.phase, 'reviewers', 'a null cursor after the last page is not "from the start"');
    checkpoint.save();
    assert.equal(readBackfill(path).phase, 'reviewers');
  });

  test('reviewers confirm as a contiguous prefix of the snapshot, whatever the order of outcomes', () => {
    const checkpoint = new BackfillCheckpoint(undefined, { ...scope, loyalty: false });
    assert.equal(checkpoint.state.phase, 'reviewers');
    checkpoint.settle({ reviewer: 1 });
    checkpoint.settle({ reviewer: 2 });
    assert.equal(checkpoint.state.reviewers_confirmed, 0);
    checkpoint.settle({ reviewer: 0 });
    assert.equal(checkpoint.state.reviewers_confirmed, 3);
  });

  test('resumes the same scope, refuses another, keeps the sections of other commands', () => {
    const path = stateFile();
    writeFileSync(path, JSON.stringify({ replay: { events_delivered: 3 } }));
    const first = new BackfillCheckpoint(path, scope);
    first.addUser(1);
    first.pageRead(1, 'c2');
    first.settle({ page: 1 });
    first.save();
    const resumed = new BackfillCheckpoint(path, scope);
    assert.equal(resumed.resumed, true);
    assert.equal(resumed.pagesBefore, 1);
    assert.equal(resumed.state.cursor, 'c2');
    assert.throws(() => new BackfillCheckpoint(path, { ...scope, since: '2026-01-01T00:00:00.000Z' }), /this run asks for .*--since/);
    assert.equal(new BackfillCheckpoint(path, { ...scope, reviews: false }, true).resumed, false, '--fresh ignores it');
    assert.equal(JSON.parse(readFileSync(path, 'utf8')).replay.events_delivered, 3);
  });
});

describe('review aggregates (MAPPING §4)', () => {
  const review = (over: Record<string, unknown>) => ({
    id: Math.random(),
    email: 'a@example.com',
    score: 5,
    sku: 'p1',
    sentiment: null,
    deleted: false,
    ...over,
  });

  test('product / site means, review-weighted total, sentiment nulls skipped, rounding', () => {
    const aggregator = new ReviewAggregator();
    aggregator.add(review({ id: 1, score: 5, sentiment: 0.9 }));
    aggregator.add(review({ id: 2, score: 4, sentiment: null }));
    aggregator.add(review({ id: 3, score: 4, sentiment: 0.5 }));
    aggregator.add(review({ id: 4, score: 1, sku: 'yotpo_site_reviews', sentiment: 0.1 }));
    assert.deepEqual(aggregator.attributesFor('a@example.com'), {
      yotpo_total_reviews: 4,
      yotpo_avg_product_rating: 4.33,
      yotpo_avg_site_rating: 1,
      // (5+4+4+1)/4 = 3.5, not the mean of the means (4.33+1)/2 = 2.67
      yotpo_total_avg_rating: 3.5,
      yotpo_avg_sentiment_product: 0.7,
      yotpo_avg_sentiment_site: 0.1,
      yotpo_total_avg_sentiment: 0.5,
    });
  });

  test('deleted and email-less reviews excluded, duplicate ids counted once, emails normalised', () => {
    const aggregator = new ReviewAggregator();
    assert.equal(aggregator.add(review({ id: 1, email: ' A@Example.com ', score: 2 })), 'included');
    assert.equal(aggregator.add(review({ id: 1, email: 'a@example.com', score: 2 })), 'duplicate');
    assert.equal(aggregator.add(review({ id: 2, score: 5, deleted: true })), 'deleted');
    assert.equal(aggregator.add(review({ id: 3, email: null })), 'no email');
    assert.equal(aggregator.add(review({ id: 4, email: 'b@example.com', deleted: true })), 'deleted');
    assert.deepEqual(aggregator.attributesFor('a@example.com'), {
      yotpo_total_reviews: 1,
      yotpo_avg_product_rating: 2,
      yotpo_total_avg_rating: 2,
    });
    assert.equal(aggregator.includedCount('b@example.com'), 0);
    assert.deepEqual(aggregator.attributesFor('b@example.com'), { yotpo_total_reviews: 0 });
    assert.deepEqual(aggregator.attributesFor('nobody@example.com'), { yotpo_total_reviews: 0 });
    assert.deepEqual(aggregator.verdicts, { included: 1, duplicate: 1, deleted: 2, 'no email': 1, 'invalid score': 0 });
  });

  test('top topics: most frequent first, ties by name, at most 5, only from topics arrays', () => {
    const aggregator = new ReviewAggregator();
    aggregator.add(review({ id: 1, topics: ['shipping', 'quality', 'zeal'], content: 'price price price' }));
    aggregator.add(review({ id: 2, topics: ['quality', 'fit', 'apple'] }));
    aggregator.add(review({ id: 3, topics: ['quality', 'shipping', 'box'] }));
    aggregator.add(review({ id: 4 }));
    assert.deepEqual(aggregator.attributesFor('a@example.com').yotpo_top_topics, ['quality', 'shipping', 'apple', 'box', 'fit']);
    const none = new ReviewAggregator();
    none.add(review({ id: 1 }));
    assert.equal('yotpo_top_topics' in none.attributesFor('a@example.com'), false);
  });

  test('matched reviewers are not listed as reviewer-only; grows past its first capacity', () => {
    const aggregator = new ReviewAggregator();
    for (let i = 0; i < 3000; i++) aggregator.add(review({ id: i, email: `r${i}@example.com` }));
    aggregator.markMatched('r1@example.com');
    const unmatched = [...aggregator.unmatched()];
    assert.equal(unmatched.length, 2999);
    assert.equal(unmatched.includes('r1@example.com'), false);
    assert.equal(aggregator.attributesFor('r2999@example.com').yotpo_total_reviews, 1);
  });
});

describe('retry policy and pacing', () => {
  test('Retry-After in seconds or as an HTTP date, honoured as given and capped', () => {
    const now = Date.parse('2026-11-28T12:00:00Z');
    assert.equal(parseRetryAfter('3', now), 3000);
    assert.equal(parseRetryAfter('Sat, 28 Nov 2026 12:00:07 GMT', now), 7000);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(retryDelayMs(DEFAULT_RETRY_POLICY, 5, 3000), 3000);
    assert.equal(retryDelayMs({ ...DEFAULT_RETRY_POLICY, maxRetryAfterMs: 1000 }, 1, 3000), 1000);
  });

  test('full jitter: a random share of an exponentially growing ceiling', () => {
    assert.equal(retryDelayMs(DEFAULT_RETRY_POLICY, 3, undefined, () => 0.999), 3996);
    assert.equal(retryDelayMs(DEFAULT_RETRY_POLICY, 20, undefined, () => 0.5), 30_000);
    assert.deepEqual([408, 429, 500, 503, 400, 401, 404].map(isRetryableStatus), [true, true, true, true, false, false, false]);
  });

  test('the pacer spaces starts by 1/rps and a 429 pauses the whole pool', async () => {
    let now = 0;
    const limiter = new RateLimiter(10, () => now);
    const started: number[] = [];
    // Drive the clock by hand: take() only sleeps when startAt > now.
    for (let i = 0; i < 3; i++) {
      const promise = limiter.take();
      started.push(now);
      await promise;
      now += 100;
    }
    assert.deepEqual(started, [0, 100, 200]);
    limiter.throttled(now + 5000);
    assert.equal(limiter.effectiveRps, 5);
    for (let i = 0; i < 100; i++) limiter.succeeded();
    assert.equal(limiter.effectiveRps, 10);
  });
});

describe('redaction', () => {
  test('registered secrets and token query values never survive', () => {
    registerSecret('super-secret-key-123');
    assert.equal(redact('GET /v1/apps/x/reviews?utoken=abc.def&page=2 key super-secret-key-123'), 'GET /v1/apps/x/reviews?utoken=[REDACTED]&page=2 key [REDACTED]');
    assert.equal(redact('{"access_token":"tok"}'), '{"access_token":"[REDACTED]"}');
    assert.equal(redact("headers: { 'x-api-key': 'k1' }"), "headers: { 'x-api-key': '[REDACTED]' }");
  });
});

describe('compact structures behind the aggregates', () => {
  test('StringIndex: dense rows in insertion order, found again after many rehashes, unicode intact', async () => {
    const { StringIndex } = await import('../src/core/compact.js');
    const index = new StringIndex();
    const words = Array.from({ length: 50_000 }, (_, i) => (i % 7 === 0 ? `zoë.${i}@例え.jp` : `user.${i}@example.com`));
    words.forEach((word, i) => assert.equal(index.intern(word), i));
    assert.equal(index.intern(words[123]!), 123, 'interning again gives the same row');
    assert.equal(index.size, words.length);
    for (const i of [0, 1, 7, 4096, 49_999]) {
      assert.equal(index.find(words[i]!), i);
      assert.equal(index.get(i), words[i]);
    }
    assert.equal(index.find('nobody@example.com'), -1);
    assert.equal(index.find('user.1@example.co'), -1, 'a prefix is not a match');
  });

  test('IdSet: numbers (large and sequential) and strings, each once', async () => {
    const { IdSet } = await import('../src/core/compact.js');
    const ids = new IdSet();
    for (let i = 0; i < 20_000; i++) assert.equal(ids.add(460_312_221 + i), true);
    assert.equal(ids.add(460_312_221), false);
    assert.equal(ids.add(2 ** 40 + 5), true);
    assert.equal(ids.add('5'), true, 'the string "5" is not the number 5');
    assert.equal(ids.add(5), true);
    assert.equal(ids.add(5), false);
    assert.equal(ids.add(2 ** 40 + 5), false);
    assert.equal(ids.add('r-1'), true);
    assert.equal(ids.add('r-1'), false);
  });

  test('PairCounts: counts per row and id', async () => {
    const { PairCounts } = await import('../src/core/compact.js');
    const counts = new PairCounts();
    counts.add(5000, 1);
    counts.add(5000, 1);
    counts.add(5000, 2);
    counts.add(3, 2);
    assert.deepEqual(counts.of(5000).sort(), [[1, 2], [2, 1]]);
    assert.deepEqual(counts.of(3), [[2, 1]]);
    assert.deepEqual(counts.of(4), []);
    assert.deepEqual(counts.of(999_999), []);
  });
});
