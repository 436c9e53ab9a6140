// Backfill end to end over real HTTP against the sandbox (no mocking of got).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runBackfill } from '../src/commands/backfill.js';
import { mapAttributes, toInsiderUser, type FlatAttributes } from '../src/core/transform.js';
import { startSandbox, type Sandbox } from '../src/sandbox/index.js';
import { captureIo, expectedAggregates, FAST, normalised, REVIEW_ATTRIBUTES, sandboxCustomers, sandboxReviews } from './helpers.js';

const SEED = 7;
const CUSTOMERS = 450;
const REVIEWS = 700;

describe('backfill over the sandbox', () => {
  let sandbox: Sandbox;
  const customers = sandboxCustomers(SEED, CUSTOMERS);
  const reviews = sandboxReviews(SEED, REVIEWS, CUSTOMERS);
  const aggregates = expectedAggregates(reviews);

  before(async () => {
    sandbox = await startSandbox({ customers: CUSTOMERS, reviews: REVIEWS, seed: SEED });
  });
  after(() => sandbox.close());

  const received = () => {
    const byEmail = new Map<string, Record<string, unknown>[]>();
    for (const user of sandbox.received()) {
      const email = String(user.identifiers?.email);
      byEmail.set(email, [...(byEmail.get(email) ?? []), user]);
    }
    return byEmail;
  };

  test('every sendable user arrives exactly once with the mapped loyalty and review attributes', async () => {
    sandbox.reset();
    const io = captureIo(sandbox.env);
    const summary = await runBackfill({ ...FAST, batchSize: 100 }, io);
    assert.equal(summary.exit_code, 0, io.err());

    const byEmail = received();
    const loyaltyEmails = new Set<string>();
    let skippedNoEmail = 0;
    let skippedInvalid = 0;
    for (const customer of customers) {
      const email = normalised(customer.email);
      if (!email) {
        if (typeof customer.email === 'string' && customer.email.trim() !== '') skippedInvalid++;
        else skippedNoEmail++;
        continue;
      }
      loyaltyEmails.add(email);
      const users = byEmail.get(email);
      assert.equal(users?.length, 1, `${email} arrived ${users?.length ?? 0} times`);
      // Loyalty attributes through the mapping table; review attributes computed independently.
      const expected = toInsiderUser(email, {
        ...mapAttributes([customer], undefined, {}, new Map()),
        ...((aggregates.get(email) ?? { yotpo_total_reviews: 0 }) as FlatAttributes),
      });
      const { skip_hook, ...user } = users![0]!;
      assert.equal(skip_hook, true);
      assert.deepEqual(user, expected);
    }
    // Reviewers who are not loyalty customers arrive with their review attributes alone.
    const reviewerOnly = [...aggregates].filter(
      ([email, values]) => !loyaltyEmails.has(email) && (values.yotpo_total_reviews as number) > 0,
    );
    assert.ok(reviewerOnly.length > 10);
    for (const [email, values] of reviewerOnly) {
      const users = byEmail.get(email);
      assert.equal(users?.length, 1, `reviewer ${email}`);
      assert.deepEqual(users![0]!.attributes, { email, custom: values });
    }
    assert.equal(byEmail.size, loyaltyEmails.size + reviewerOnly.length, 'nobody else arrives');
    assert.deepEqual(summary.skipped_reasons, { 'no email': skippedNoEmail, 'invalid email': skippedInvalid });
    assert.equal(summary.users.sent, byEmail.size);
    assert.equal(summary.users.succeeded, byEmail.size);
    assert.equal(summary.reviews?.duplicates, 1, 'the review repeated across pages 1 and 2 counts once');

    const insiderRequests = sandbox.requests().filter((r) => r.api === 'insider');
    assert.equal(insiderRequests.length, summary.requests.insider);
    const upserts = insiderRequests.filter((r) => r.path === '/api/user/v1/upsert');
    assert.deepEqual(
      insiderRequests.filter((r) => !upserts.includes(r)).map((r) => r.path),
      ['/api/user/v3/metadata/columns', '/api/user/v3/metadata/columns'],
      'besides the upserts, only the read-only schema check',
    );
    for (const request of upserts) {
      assert.ok(request.users! <= 100, `batch of ${request.users}`);
      assert.equal(request.headers['x-partner-name'], 'sandboxbrand');
      assert.match(request.headers['content-type'] ?? '', /^application\/json/);
      assert.equal(request.skipHook, true);
    }
    const loyaltyRequests = sandbox.requests().filter((r) => r.api === 'loyalty');
    assert.equal(loyaltyRequests.length, Math.ceil(CUSTOMERS / 100));
    assert.ok(loyaltyRequests.slice(1).every((r) => /^\/api\/v2\/customers\/recent\?per_page=100&page_info=[^&]+$/.test(r.path)));
  });

  test('--trigger-journeys sends skip_hook: false', async () => {
    sandbox.reset();
    const summary = await runBackfill({ ...FAST, triggerJourneys: true, limit: 50, reviews: false, fresh: true }, captureIo(sandbox.env));
    assert.equal(summary.exit_code, 0);
    assert.ok(sandbox.received().length > 0);
    assert.ok(sandbox.received().every((user) => user.skip_hook === false));
  });

  test('a batch that would pass the byte limit is split before sending', async () => {
    sandbox.reset();
    const maxRequestBytes = 20_000;
    const summary = await runBackfill({ ...FAST, maxRequestBytes, reviews: false, batchSize: 1000 }, captureIo(sandbox.env));
    assert.equal(summary.exit_code, 0);
    const requests = sandbox.requests().filter((r) => r.api === 'insider');
    assert.ok(requests.length > Math.ceil(CUSTOMERS / 1000), `${requests.length} requests`);
    assert.ok(
      requests.every((r) => r.bytes! <= maxRequestBytes),
      'no request over the limit',
    );
    assert.equal(sandbox.received().length, summary.users.sent);
  });

  test('--no-reviews sends loyalty attributes only; --no-loyalty sends reviewers only', async () => {
    sandbox.reset();
    const noReviews = await runBackfill({ ...FAST, reviews: false }, captureIo(sandbox.env));
    assert.equal(noReviews.exit_code, 0);
    assert.equal(noReviews.requests.reviews, 0);
    assert.ok(sandbox.received().every((u) => REVIEW_ATTRIBUTES.every((name) => !(name in (u.attributes?.custom ?? {})))));

    sandbox.reset();
    const noLoyalty = await runBackfill({ ...FAST, loyalty: false }, captureIo(sandbox.env));
    assert.equal(noLoyalty.exit_code, 0);
    assert.equal(noLoyalty.requests.loyalty, 0);
    const withReviews = [...aggregates].filter(([, v]) => (v.yotpo_total_reviews as number) > 0);
    assert.equal(sandbox.received().length, withReviews.length);
  });

  test('per-user rejections in a 200 body are counted as failed and exit 1', async () => {
    sandbox.reset();
    sandbox.setFaults({ rejectRate: 0.1 });
    try {
      const io = captureIo(sandbox.env);
      const summary = await runBackfill({ ...FAST, reviews: false }, io);
      assert.equal(summary.exit_code, 1);
      assert.ok(summary.users.failed > 0);
      assert.equal(summary.users.succeeded + summary.users.failed, summary.users.sent);
      assert.equal(sandbox.received().length, summary.users.succeeded);
      assert.ok(summary.failed_file);
    } finally {
      sandbox.setFaults({ rejectRate: 0 });
    }
  });

  test('a wrong Insider key stops the run with exit 3 after a handful of requests', async () => {
    sandbox.reset();
    const io = captureIo({ ...sandbox.env, INSIDER_API_KEY: 'wrong-key-0000' });
    const summary = await runBackfill({ ...FAST, reviews: false }, io);
    assert.equal(summary.exit_code, 3);
    assert.match(io.err(), /Insider API rejected the credentials \(HTTP 401\); check INSIDER_PARTNER_NAME, INSIDER_API_KEY/);
    assert.ok(summary.requests.insider <= 4, `${summary.requests.insider} Insider requests`);
    assert.doesNotMatch(io.err() + io.out(), /wrong-key-0000/);
  });
});
