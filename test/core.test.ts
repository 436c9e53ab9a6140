import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Batcher, batchBytes, requestBody, toBatchItem } from '../src/core/batcher.js';
import { ReviewAggregator } from '../src/core/review-aggregates.js';
import { toInsiderUser } from '../src/core/transform.js';
import { PageTracker } from '../src/core/page-tracker.js';
import { BackfillCheckpoint, yotpoSource, type BackfillScope } from '../src/state/checkpoint.js';
import { StateStore } from '../src/state/store.js';
import { parseRetryAfter, retryDelayMs, DEFAULT_RETRY_POLICY, isRetryableStatus } from '../src/io/retry.js';
import { RateLimiter } from '../src/io/rate-limit.js';
import { redact, registerSecret } from '../src/io/redact.js';

const user = (i: number, padding = 0) => toInsiderUser(`user${i}@example.com`, padding ? { name: 'x'.repeat(padding) } : { name: `U${i}` });

describe('batcher', () => {
  test('closes a batch at maxUsers', () => {
    const batcher = new Batcher<number>(3);
    const closed = [];
    for (let i = 0; i < 7; i++) {
      const batch = batcher.add(toBatchItem(user(i), i));
      if (batch) closed.push(batch.items.map((item) => item.tag));
    }
    const rest = batcher.flush();
    assert.deepEqual(closed, [
      [0, 1, 2],
      [3, 4, 5],
    ]);
    assert.deepEqual(
      rest?.items.map((item) => item.tag),
      [6],
    );
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
    assert.deepEqual(
      batches.flatMap((b) => b.items.map((item) => item.tag)),
      [...Array(20).keys()],
    );
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
  const scope: BackfillScope = { loyalty: true, reviews: true, since: null, endpoint: 'recent', withAnniversary: false };
  const source = yotpoSource({ url: 'https://loyalty.example', guid: 'guid-1' }, { url: 'https://api.example', appKey: 'app-1' });
  const account = { partner: 'brand', url: 'https://unification.example' };
  const openStore = (dir: string, writable = true) => StateStore.open({ account, dir, env: {}, cwd: dir, writable });
  const storeDir = () => mkdtempSync(join(tmpdir(), 'yotpo-insider-core-'));
  const saved = (checkpoint: BackfillCheckpoint) => JSON.parse(readFileSync(checkpoint.file, 'utf8'));

  test('the cursor moves only over settled pages; the last page settled ends the loyalty phase', (t) => {
    const dir = storeDir();
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const checkpoint = new BackfillCheckpoint(openStore(dir), source, scope, false);
    t.after(() => checkpoint.release());
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
    assert.equal(saved(checkpoint).phase, 'reviewers');
  });

  test('reviewers confirm as a contiguous prefix of the snapshot, whatever the order of outcomes', (t) => {
    const dir = storeDir();
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const checkpoint = new BackfillCheckpoint(openStore(dir), source, { ...scope, loyalty: false }, false);
    t.after(() => checkpoint.release());
    assert.equal(checkpoint.state.phase, 'reviewers');
    checkpoint.settle({ reviewer: 1 });
    checkpoint.settle({ reviewer: 2 });
    assert.equal(checkpoint.state.reviewers_confirmed, 0);
    checkpoint.settle({ reviewer: 0 });
    assert.equal(checkpoint.state.reviewers_confirmed, 3);
  });

  test('resumes the same source and scope; another scope or source is another checkpoint; --fresh ignores it', (t) => {
    const dir = storeDir();
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const store = openStore(dir);
    const first = new BackfillCheckpoint(store, source, scope, false);
    first.addUser(1);
    first.pageRead(1, 'c2');
    first.settle({ page: 1 });
    first.save();
    first.release();
    const resumed = new BackfillCheckpoint(openStore(dir), source, scope, false);
    assert.equal(resumed.resumed, true);
    assert.equal(resumed.pagesBefore, 1);
    assert.equal(resumed.state.cursor, 'c2');
    resumed.release();
    const otherScope = new BackfillCheckpoint(openStore(dir), source, { ...scope, since: '2026-01-01T00:00:00.000Z' }, false);
    assert.equal(otherScope.resumed, false);
    assert.notEqual(otherScope.file, first.file);
    otherScope.release();
    const otherSource = new BackfillCheckpoint(
      openStore(dir),
      yotpoSource({ url: 'https://loyalty.example', guid: 'guid-2' }),
      scope,
      false,
    );
    assert.equal(otherSource.resumed, false);
    otherSource.release();
    const fresh = new BackfillCheckpoint(openStore(dir), source, scope, true);
    assert.equal(fresh.resumed, false, '--fresh ignores it');
    fresh.release();
    assert.doesNotMatch(readFileSync(first.file, 'utf8'), /guid-1|app-1/, 'the Yotpo identifiers are hashed, never written');
  });

  test('a dry run reads the checkpoint and writes nothing', (t) => {
    const dir = storeDir();
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const dry = new BackfillCheckpoint(openStore(join(dir, 'account'), false), source, scope, false);
    dry.save();
    assert.equal(existsSync(join(dir, 'account')), false);
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
    assert.equal(
      retryDelayMs(DEFAULT_RETRY_POLICY, 3, undefined, () => 0.999),
      3996,
    );
    assert.equal(
      retryDelayMs(DEFAULT_RETRY_POLICY, 20, undefined, () => 0.5),
      30_000,
    );
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
    assert.equal(
      redact('GET /v1/apps/x/reviews?utoken=abc.def&page=2 key super-secret-key-123'),
      'GET /v1/apps/x/reviews?utoken=[REDACTED]&page=2 key [REDACTED]',
    );
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
    assert.deepEqual(counts.of(5000).sort(), [
      [1, 2],
      [2, 1],
    ]);
    assert.deepEqual(counts.of(3), [[2, 1]]);
    assert.deepEqual(counts.of(4), []);
    assert.deepEqual(counts.of(999_999), []);
  });
});
