// The Yotpo side: the ordered read-ahead, the Reviews token and listing checks, the Loyalty
// listings' checks, the anniversary lookup and the doctor probes, over real HTTP against the
// sandbox (or a tiny node:http server where the sandbox cannot say what is needed).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiError, AuthError, exitCodeOf } from '../src/errors.js';
import { ApiClient, newRequestCounters, type ApiClientOptions } from '../src/io/http.js';
import { readAhead } from '../src/io/read-ahead.js';
import {
  SANDBOX_CREDENTIALS as C,
  customerAt,
  customerEmail,
  reviewMeta,
  startSandbox,
  type Sandbox,
  type SandboxOptions,
} from '../src/sandbox/index.js';
import { customerAnniversary, instantOf } from '../src/sandbox/data.js';
import { postWebhooks } from '../src/sandbox/webhooks.js';
import {
  allCustomerPages,
  anniversaryOf,
  loyaltyHeaders,
  recentCustomerPages,
  withAnniversaries,
  type LoyaltyPage,
} from '../src/yotpo/loyalty.js';
import { probeLoyalty, probeReviews } from '../src/yotpo/probes.js';
import { ReviewsApi, reviewPages } from '../src/yotpo/reviews.js';

/** A task the test settles by hand, so that order and overlap are decided by the test, not by timing. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('readAhead', () => {
  test('yields in task order whatever order the tasks finish in', async () => {
    const gates = Array.from({ length: 6 }, () => deferred<number>());
    const tasks = gates.map((gate) => () => gate.promise);
    const results: number[] = [];
    const reading = (async () => {
      for await (const value of readAhead(tasks, 3)) results.push(value);
    })();
    for (const index of [2, 1, 0, 5, 4, 3]) {
      gates[index]!.resolve(index);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await reading;
    assert.deepEqual(results, [0, 1, 2, 3, 4, 5]);
  });

  test('never runs more than inFlight tasks at once, and does run that many', async () => {
    let running = 0;
    let most = 0;
    const tasks = Array.from({ length: 40 }, (_, index) => async () => {
      running++;
      most = Math.max(most, running);
      await new Promise((resolve) => setImmediate(resolve));
      running--;
      return index;
    });
    const results: number[] = [];
    for await (const value of readAhead(tasks, 4)) results.push(value);
    assert.equal(most, 4);
    assert.deepEqual(
      results,
      Array.from({ length: 40 }, (_, index) => index),
    );
  });

  test('an endless source is pulled only a bounded way ahead; an early return starts no new task', async () => {
    let started = 0;
    function* endless() {
      for (let index = 0; ; index++) {
        yield async () => {
          started++;
          return index;
        };
      }
    }
    const results: number[] = [];
    for await (const value of readAhead(endless(), 3)) {
      results.push(value);
      if (value === 4) break;
    }
    const startedAtReturn = started;
    for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(results, [0, 1, 2, 3, 4]);
    assert.ok(startedAtReturn <= 5 + 2 * 3, `started ${startedAtReturn}`);
    assert.equal(started, startedAtReturn, 'nothing started after the consumer stopped');
  });

  test('a rejection surfaces at its own turn, after the results before it', async () => {
    const tasks = [0, 1, 2, 3].map((index) => async () => {
      if (index === 2) throw new Error('task 2 failed');
      return index;
    });
    const results: number[] = [];
    await assert.rejects(async () => {
      for await (const value of readAhead(tasks, 4)) results.push(value);
    }, /task 2 failed/);
    assert.deepEqual(results, [0, 1]);
  });

  test('an aborted signal starts no further task', async () => {
    const controller = new AbortController();
    let started = 0;
    const tasks = Array.from({ length: 20 }, (_, index) => async () => {
      started++;
      if (index === 1) controller.abort();
      return index;
    });
    const results: number[] = [];
    await assert.rejects(
      async () => {
        for await (const value of readAhead(tasks, 1, controller.signal)) results.push(value);
      },
      { name: 'AbortError' },
    );
    assert.equal(started, 2);
    assert.deepEqual(results, [0, 1]);
  });

  test('an async source that is slow to give its next task does not hold back a ready result', async () => {
    const more = deferred<void>();
    async function* source() {
      yield async () => 'first';
      await more.promise;
      yield async () => 'second';
    }
    const iterator = readAhead(source(), 2);
    assert.deepEqual(await iterator.next(), { value: 'first', done: false });
    more.resolve();
    assert.deepEqual(await iterator.next(), { value: 'second', done: false });
    assert.equal((await iterator.next()).done, true);
  });
});

// ---------------------------------------------------------------------------------------------
// against the sandbox

const LOYALTY_CONFIG = { url: '', apiKey: C.loyaltyApiKey, guid: C.loyaltyGuid };
const REVIEWS_CONFIG = { url: '', appKey: C.appKey, secret: C.apiSecret };

function client(api: 'loyalty' | 'reviews', baseUrl: string, headers: Record<string, string> = {}): ApiClient {
  const options: ApiClientOptions = {
    api,
    baseUrl,
    headers: api === 'loyalty' ? { ...loyaltyHeaders({ ...LOYALTY_CONFIG, url: baseUrl }), ...headers } : headers,
    rps: 0,
    retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5, maxRetryAfterMs: 5 },
    timeoutMs: 10_000,
    counters: newRequestCounters(),
  };
  return new ApiClient(options);
}

async function withSandbox(options: SandboxOptions, run: (sandbox: Sandbox) => Promise<void>): Promise<void> {
  const sandbox = await startSandbox(options);
  try {
    await run(sandbox);
  } finally {
    await sandbox.close();
  }
}

async function collect<T>(pages: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const page of pages) out.push(page);
  return out;
}

const emailsOf = (pages: LoyaltyPage[]) => pages.flatMap((page) => page.customers.map((c) => (c as { email?: unknown }).email));
const expectedEmails = (seed: number, customers: number) => Array.from({ length: customers }, (_, i) => customerAt(seed, i).email);

/** An error that stops the run with exit 3 and whose message matches. */
function stopsWith(pattern: RegExp) {
  return (error: unknown) => error instanceof ApiError && exitCodeOf(error) === 3 && pattern.test(error.message);
}

describe('Reviews', () => {
  test('tokens that expire every 3 requests, 8 pages in flight: every page read, one token request per renewal', async () => {
    await withSandbox({ customers: 30, reviews: 2_450, seed: 4, tokenTtl: 3 }, async (sandbox) => {
      const api = new ReviewsApi(client('reviews', sandbox.url), REVIEWS_CONFIG);
      const pages = await collect(reviewPages(api, 8));
      const ids = new Set(pages.flatMap((page) => page.reviews.map((r) => (r as { id: number }).id)));
      assert.deepEqual([...ids].sort(), Array.from({ length: 2_450 }, (_, j) => reviewMeta(4, j).id).sort());
      const honoured = sandbox.requests().filter((r) => r.path.startsWith('/v1/apps/') && r.status === 200).length;
      const refused = sandbox.requests().filter((r) => r.path.startsWith('/v1/apps/') && r.status === 401).length;
      assert.ok(refused > 0, 'tokens did expire with pages in flight');
      // Every token but the last was honoured for its 3 requests before it was renewed.
      assert.ok(
        sandbox.stats().tokensIssued <= Math.ceil(honoured / 3) + 1,
        `${sandbox.stats().tokensIssued} tokens for ${honoured} pages`,
      );
    });
  });

  test('a wrong secret is a credential failure at once: one token request, no data request', async () => {
    await withSandbox({ customers: 0, reviews: 300 }, async (sandbox) => {
      const api = new ReviewsApi(client('reviews', sandbox.url), { ...REVIEWS_CONFIG, secret: 'wrong' });
      await assert.rejects(collect(reviewPages(api, 8)), (error: unknown) => error instanceof AuthError && error.api === 'reviews');
      assert.deepEqual(
        sandbox.requests().map((r) => r.path),
        ['/oauth/token'],
      );
    });
  });

  test('a token refused at its first use is a credential failure, not a renewal loop', async () => {
    let tokenRequests = 0;
    const server = createServer((req, res) => {
      if (req.url === '/oauth/token') tokenRequests++;
      res.writeHead(req.url === '/oauth/token' ? 200 : 401, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify(
          req.url === '/oauth/token' ? { access_token: `t${tokenRequests}`, token_type: 'bearer' } : { status: { code: 401 } },
        ),
      );
    });
    const url = await listen(server);
    try {
      const api = new ReviewsApi(client('reviews', url), REVIEWS_CONFIG);
      await assert.rejects(collect(reviewPages(api, 8)), (error: unknown) => error instanceof AuthError);
      assert.equal(tokenRequests, 1);
    } finally {
      server.close();
    }
  });

  test('/oauth/token refusing the app key (400 invalid_client, 404 JSON) is a credential failure; an HTML 404 is not', async () => {
    const answers = [
      { status: 400, type: 'application/json', body: '{"error":"invalid_client"}', auth: true },
      {
        status: 404,
        type: 'application/json',
        body: '{"status":{"code":404,"message":"Couldn\'t find Account with app_key"}}',
        auth: true,
      },
      { status: 404, type: 'text/html', body: '<html>Not Found</html>', auth: false },
    ];
    for (const answer of answers) {
      const server = createServer((_req, res) => res.writeHead(answer.status, { 'content-type': answer.type }).end(answer.body));
      const url = await listen(server);
      try {
        const api = new ReviewsApi(client('reviews', url), REVIEWS_CONFIG);
        await assert.rejects(api.authenticate(), (error: unknown) =>
          answer.auth ? error instanceof AuthError : error instanceof ApiError && !(error instanceof AuthError) && exitCodeOf(error) === 3,
        );
      } finally {
        server.close();
      }
    }
  });

  test('a hole (an empty page before full ones) is asked again 3 times, then stops the run with exit 3', async () => {
    await withSandbox({ customers: 10, reviews: 450, reviewsFault: 'hole', reviewsHolePage: 2 }, async (sandbox) => {
      const api = new ReviewsApi(client('reviews', sandbox.url), REVIEWS_CONFIG);
      await assert.rejects(collect(reviewPages(api, 4)), stopsWith(/hole in the reviews list: page 2/));
      assert.equal(sandbox.requests().filter((r) => /[?&]page=2(&|$)/.test(r.path)).length, 4);
    });
  });

  test('a hole that fills when asked again loses nothing', async () => {
    await withSandbox({ customers: 10, reviews: 450, reviewsFault: 'hole', reviewsHolePage: 3, reviewsHoleAsks: 2 }, async (sandbox) => {
      const api = new ReviewsApi(client('reviews', sandbox.url), REVIEWS_CONFIG);
      const pages = await collect(reviewPages(api, 4));
      assert.deepEqual(
        pages.map((page) => page.page),
        [1, 2, 3, 4, 5],
      );
      assert.equal(new Set(pages.flatMap((page) => page.reviews.map((r) => (r as { id: number }).id))).size, 450);
    });
  });

  test('a list that never answers an empty page ends at the repeated page, with a warning', async () => {
    await withSandbox({ customers: 10, reviews: 450, reviewsFault: 'never-empty' }, async (sandbox) => {
      const api = new ReviewsApi(client('reviews', sandbox.url), REVIEWS_CONFIG);
      const warnings: string[] = [];
      const pages = await collect(reviewPages(api, 4, { onWarning: (text) => warnings.push(text) }));
      assert.equal(pages.length, 5);
      assert.equal(new Set(pages.flatMap((page) => page.reviews.map((r) => (r as { id: number }).id))).size, 450);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]!, /page 6 repeats reviews already read/);
    });
  });

  test('past the page bound the run stops with exit 3', async () => {
    await withSandbox({ customers: 10, reviews: 450 }, async (sandbox) => {
      const api = new ReviewsApi(client('reviews', sandbox.url), REVIEWS_CONFIG);
      await assert.rejects(collect(reviewPages(api, 4, { maxPages: 3 })), stopsWith(/past 3 pages/));
      assert.equal((await collect(reviewPages(api, 4, { maxPages: 5 }))).length, 5, 'a list that ends at the bound is whole');
    });
  });
});

describe('Loyalty listings', () => {
  test('customers/all sends last_seen_at on every call: the floor by default, the --since date when given', async () => {
    await withSandbox({ customers: 450, reviews: 0, seed: 6 }, async (sandbox) => {
      const loyalty = client('loyalty', sandbox.url);
      const all = await collect(allCustomerPages(loyalty, 3));
      assert.deepEqual(emailsOf(all), expectedEmails(6, 450));
      const calls = sandbox.requests().filter((r) => r.path.startsWith('/api/v2/customers/all'));
      assert.equal(calls.length, 5);
      assert.ok(calls.every((r) => new URL(r.path, sandbox.url).searchParams.get('last_seen_at') === '2000-01-01'));

      sandbox.reset();
      const since = '2025-07-01';
      const recent = await collect(allCustomerPages(loyalty, 3, 1, { lastSeenAt: since }));
      const kept = Array.from({ length: 450 }, (_, i) => customerAt(6, i)).filter((c) => {
        const seen = instantOf(c.last_seen_at);
        return seen === undefined || seen >= Date.parse(`${since}T00:00:00Z`);
      });
      assert.ok(kept.length > 0 && kept.length < 450);
      assert.deepEqual(
        emailsOf(recent),
        kept.map((c) => c.email),
      );
      assert.ok(sandbox.requests().every((r) => new URL(r.path, sandbox.url).searchParams.get('last_seen_at') === since));
    });
  });

  for (const [fault, cursor] of [
    ['repeat', 'the second cursor again'],
    ['cycle', 'the first cursor again (A→B→A)'],
  ] as const) {
    test(`a cursor returned twice (${fault}: ${cursor}) stops the run with exit 3, naming the cursor`, async () => {
      await withSandbox({ customers: 450, reviews: 0, loyaltyCursorFault: fault }, async (sandbox) => {
        const seen: string[] = [];
        await assert.rejects(
          (async () => {
            for await (const page of recentCustomerPages(client('loyalty', sandbox.url))) if (page.nextCursor) seen.push(page.nextCursor);
          })(),
          (error: unknown) =>
            stopsWith(/returned the cursor .* a second time/)(error) && (error as Error).message.includes(JSON.stringify(seen[0])),
        );
        assert.equal(seen.length, fault === 'repeat' ? 1 : 2);
      });
    });
  }

  test('an empty page that carries a next cursor is followed: every customer is read', async () => {
    await withSandbox({ customers: 450, reviews: 0, seed: 2, loyaltyCursorFault: 'empty-with-cursor' }, async (sandbox) => {
      const pages = await collect(recentCustomerPages(client('loyalty', sandbox.url)));
      assert.ok(pages.some((page) => page.customers.length === 0 && page.nextCursor !== null));
      assert.deepEqual(emailsOf(pages), expectedEmails(2, 450));
    });
  });

  test('a numeric cursor is a cursor, not the end', async () => {
    await withSandbox({ customers: 450, reviews: 0, seed: 2, loyaltyCursorFault: 'numeric' }, async (sandbox) => {
      const pages = await collect(recentCustomerPages(client('loyalty', sandbox.url)));
      assert.deepEqual(
        pages.map((page) => page.nextCursor),
        ['100', '200', '300', '400', null],
      );
      assert.deepEqual(emailsOf(pages), expectedEmails(2, 450));
    });
  });

  test('past the page bound a listing stops with exit 3', async () => {
    await withSandbox({ customers: 450, reviews: 0 }, async (sandbox) => {
      await assert.rejects(collect(recentCustomerPages(client('loyalty', sandbox.url), null, { maxPages: 4 })), stopsWith(/past 4 pages/));
      await assert.rejects(collect(allCustomerPages(client('loyalty', sandbox.url), 2, 1, { maxPages: 4 })), stopsWith(/past 4 pages/));
      assert.equal((await collect(recentCustomerPages(client('loyalty', sandbox.url), null, { maxPages: 5 }))).length, 5);
    });
  });
});

describe('Anniversary lookups', () => {
  test('anniversaryOf reads the fields at the root or under a wrapping key; 404 is none', async () => {
    await withSandbox({ customers: 60, reviews: 0, seed: 8 }, async (sandbox) => {
      const loyalty = client('loyalty', sandbox.url);
      let found = 0;
      for (let i = 0; i < 60; i++) {
        const email = customerEmail(i);
        if (!email) continue;
        const expected = customerAnniversary(8, i);
        const fields = expected ? Object.fromEntries(Object.entries(expected.fields).filter(([, v]) => v !== null)) : undefined;
        assert.deepEqual(await anniversaryOf(loyalty, email), fields, `customer ${i}`);
        if (expected) found++;
      }
      assert.ok(found > 10);
      assert.equal(await anniversaryOf(loyalty, 'nobody@example.com'), undefined);
      const shapes = new Set(Array.from({ length: 60 }, (_, i) => customerAnniversary(8, i)?.shape));
      assert.deepEqual([...shapes].filter(Boolean).sort(), ['customer_anniversary', 'data', 'root']);
    });
  });

  test('withAnniversaries: the endpoint wins over the record, every customer kept in order, lookups read ahead', async () => {
    await withSandbox({ customers: 250, reviews: 0, seed: 8 }, async (sandbox) => {
      const loyalty = client('loyalty', sandbox.url);
      const pages = await collect(withAnniversaries(loyalty, recentCustomerPages(loyalty), { inFlight: 6 }));
      assert.deepEqual(
        pages.map((page) => page.customers.length),
        [100, 100, 50],
      );
      pages.forEach((page) =>
        page.customers.forEach((customer, position) => {
          const i = (page.seq - 1) * 100 + position;
          const expected = customerAnniversary(8, i);
          const record = customerAt(8, i);
          const got = customer as Record<string, unknown>;
          assert.equal(got.email, record.email);
          if (expected?.fields.anniversary_month !== undefined) assert.equal(got.anniversary_month, expected.fields.anniversary_month);
          else assert.equal(got.anniversary_month, record.anniversary_month);
        }),
      );
      const lookups = sandbox.requests().filter((r) => r.path.startsWith('/api/v2/customer_anniversary')).length;
      assert.equal(lookups, Array.from({ length: 250 }, (_, i) => customerEmail(i)).filter(Boolean).length);
    });
  });
});

describe('doctor probes', () => {
  let sandbox: Sandbox;
  let html: Server;
  let htmlUrl: string;
  before(async () => {
    sandbox = await startSandbox({ customers: 5, reviews: 5 });
    html = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html><body>Welcome to nginx!</body></html>');
    });
    htmlUrl = await listen(html);
  });
  after(async () => {
    await sandbox.close();
    html.close();
  });

  test('ok: credentials accepted, both listings answer', async () => {
    const loyalty = await probeLoyalty(client('loyalty', sandbox.url));
    assert.equal(loyalty.status, 'ok', loyalty.detail);
    assert.deepEqual(loyalty.listings, { recent: 'ok', all: 'ok' });
    assert.equal((await probeReviews(client('reviews', sandbox.url), REVIEWS_CONFIG)).status, 'ok');
    assert.ok(
      sandbox.requests().every((r) => r.method === 'GET' || r.path === '/oauth/token'),
      'read-only',
    );
  });

  test('rejected: wrong credentials', async () => {
    const loyalty = await probeLoyalty(client('loyalty', sandbox.url, { 'x-api-key': 'wrong' }));
    assert.equal(loyalty.status, 'rejected');
    assert.equal(loyalty.listings, undefined);
    assert.equal((await probeReviews(client('reviews', sandbox.url), { ...REVIEWS_CONFIG, secret: 'wrong' })).status, 'rejected');
  });

  test('unreachable: nothing listening', async () => {
    const url = await listen(createServer());
    await closeUrl(url);
    assert.equal((await probeLoyalty(client('loyalty', url))).status, 'unreachable');
    assert.equal((await probeReviews(client('reviews', url), REVIEWS_CONFIG)).status, 'unreachable');
  });

  test('unexpected: a server answering HTML is never ok', async () => {
    const loyalty = await probeLoyalty(client('loyalty', htmlUrl));
    assert.equal(loyalty.status, 'unexpected', loyalty.detail);
    assert.equal((await probeReviews(client('reviews', htmlUrl), REVIEWS_CONFIG)).status, 'unexpected');
  });
});

const servers = new Map<string, Server>();

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  servers.set(url, server);
  return url;
}

async function closeUrl(url: string): Promise<void> {
  await new Promise<void>((resolve) => servers.get(url)!.close(() => resolve()));
}

describe('sandbox webhooks poster', () => {
  const lines = [
    JSON.stringify({
      received_at: '2026-11-01T10:00:00Z',
      headers: { eventid: 'evt-1' },
      body: { topic: 'swell/points/earned', email: 'a@example.com' },
    }),
    '',
    JSON.stringify({ topic: 'swell/redemption/created', email: 'b@example.com' }),
    JSON.stringify({ received_at: '2026-11-01T10:00:01Z', payload: { topic: 'loyalty/opt_in', email: 'c@example.com' } }),
    'not json',
  ];
  let dir: string;
  let file: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'yotpo-webhooks-'));
    file = join(dir, 'webhooks.jsonl');
    writeFileSync(file, `${lines.join('\n')}\n`);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('posts each line as Yotpo would, retrying 5xx and dropped connections until a 2xx', async () => {
    const received: { body: string; eventid?: string; authorization?: string }[] = [];
    const seen = new Map<string, number>();
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      req.on('end', () => {
        const tries = (seen.get(body) ?? 0) + 1;
        seen.set(body, tries);
        if (tries === 1) return void res.socket?.destroy(); // no answer at all
        if (tries === 2) return void res.writeHead(503).end();
        received.push({ body, eventid: req.headers.eventid as string | undefined, authorization: req.headers.authorization });
        res.writeHead(200).end('{}');
      });
    });
    const url = await listen(server);
    try {
      const result = await postWebhooks({
        file,
        url: `${url}/webhooks/yotpo`,
        ratePerSecond: 0,
        concurrency: 2,
        token: 'hook-secret',
        maxAttempts: 3,
        backoffMs: 1,
      });
      assert.deepEqual(result, { delivered: 4, attempts: 12, failed: 0 });
      assert.deepEqual(
        received.map((r) => [r.body, r.eventid]).sort(),
        [
          [JSON.stringify({ topic: 'swell/points/earned', email: 'a@example.com' }), 'evt-1'],
          [JSON.stringify({ topic: 'swell/redemption/created', email: 'b@example.com' }), undefined],
          [JSON.stringify({ topic: 'loyalty/opt_in', email: 'c@example.com' }), undefined],
          ['not json', undefined],
        ].sort(),
      );
      assert.ok(received.every((r) => r.authorization === 'Bearer hook-secret'));
    } finally {
      server.close();
    }
  });

  test('a listener that is not there: every delivery tried maxAttempts times, then failed', async () => {
    const url = await listen(createServer());
    await closeUrl(url);
    const result = await postWebhooks({ file, url, ratePerSecond: 0, maxAttempts: 2, backoffMs: 1 });
    assert.deepEqual(result, { delivered: 0, attempts: 8, failed: 4 });
  });
});

describe('sandbox Yotpo modes at run time', () => {
  test('POST /__sandbox/faults switches the hostile modes; Yotpo 429s carry ratelimit-reset, not Retry-After', async () => {
    await withSandbox({ customers: 250, reviews: 0 }, async (sandbox) => {
      const answer = await fetch(`${sandbox.url}/__sandbox/faults`, {
        method: 'POST',
        body: JSON.stringify({ loyaltyCursorFault: 'repeat', tokenTtl: 2, reviewsFault: 'hole', reviewsHoleAsks: 1 }),
      });
      const state = (await answer.json()) as Record<string, unknown>;
      assert.deepEqual([state.loyaltyCursorFault, state.tokenTtl, state.reviewsFault, state.reviewsHoleAsks], ['repeat', 2, 'hole', 1]);
      await assert.rejects(collect(recentCustomerPages(client('loyalty', sandbox.url))), stopsWith(/a second time/));
      sandbox.setFaults({ loyaltyCursorFault: null, rateLimitRps: 1 });
      const answers = await Promise.all(
        [1, 2, 3].map(() => fetch(`${sandbox.url}/api/v2/customers/recent?per_page=1`, { headers: loyaltyHeaders(LOYALTY_CONFIG) })),
      );
      const limited = answers.filter((r) => r.status === 429);
      assert.ok(limited.length > 0);
      for (const r of limited) {
        assert.equal(r.headers.get('retry-after'), null);
        assert.equal(r.headers.get('ratelimit-reset'), '1');
      }
      await Promise.all(answers.map((r) => r.arrayBuffer()));
    });
  });

  test('customers/all without last_seen_at is a 400, as public taps treat it', async () => {
    await withSandbox({ customers: 5, reviews: 0 }, async (sandbox) => {
      const headers = loyaltyHeaders(LOYALTY_CONFIG);
      const without = await fetch(`${sandbox.url}/api/v2/customers/all?page=1&per_page=100`, { headers });
      assert.deepEqual([without.status, await without.json()], [400, { error: 'last_seen_at is required' }]);
      const garbled = await fetch(`${sandbox.url}/api/v2/customers/all?page=1&per_page=100&last_seen_at=yesterday`, { headers });
      assert.equal(garbled.status, 400);
      await garbled.arrayBuffer();
      const iso = await fetch(`${sandbox.url}/api/v2/customers/all?page=1&per_page=100&last_seen_at=2000-01-01T00:00:00Z`, { headers });
      assert.equal(((await iso.json()) as { customers: unknown[] }).customers.length, 5);
    });
  });
});
