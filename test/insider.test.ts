// The Insider contract over real HTTP: ApiClient's failure classes, uploadBatch's outcome per user,
// the panel schema check, and the sandbox's Insider behaviour (store-then-fault, not_append,
// schema drops, profile and metadata endpoints).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiError, UsageError } from '../src/errors.js';
import { AmbiguousError, ApiClient, newRequestCounters, RedirectError, type RequestCounters, type RetryWait } from '../src/io/http.js';
import type { RetryPolicy } from '../src/io/retry.js';
import { insiderHeaders } from '../src/insider/headers.js';
import { uploadBatch, type UploadSettings, type UserOutcome } from '../src/insider/upload.js';
import { readPanelSchema } from '../src/insider/metadata.js';
import { checkSchema, formatSchemaReport, requiredSchemaFromTable } from '../src/core/schema.js';
import type { BatchItem } from '../src/core/batcher.js';
import type { InsiderUser } from '../src/core/transform.js';
import { SANDBOX_CREDENTIALS as C, startSandbox, type Sandbox, type SandboxOptions } from '../src/sandbox/index.js';

const FAST_RETRY: RetryPolicy = { maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 1, maxRetryAfterMs: 60_000 };

interface Harness {
  sb: Sandbox;
  counters: RequestCounters;
  waits: RetryWait[];
  client: (overrides?: { partnerName?: string; apiKey?: string; baseUrl?: string; timeoutMs?: number }) => ApiClient;
}

async function withSandbox(options: Partial<SandboxOptions>, fn: (h: Harness) => Promise<void>): Promise<void> {
  const sb = await startSandbox({ customers: 0, reviews: 0, ...options });
  const counters = newRequestCounters();
  const waits: RetryWait[] = [];
  const client: Harness['client'] = (overrides = {}) =>
    new ApiClient({
      api: 'insider',
      baseUrl: overrides.baseUrl ?? sb.url,
      headers: insiderHeaders({ partnerName: overrides.partnerName ?? C.insiderPartner, apiKey: overrides.apiKey ?? C.insiderApiKey }),
      rps: 0,
      retry: FAST_RETRY,
      timeoutMs: overrides.timeoutMs ?? 10_000,
      counters,
      wait: async (_ms, _signal, info) => {
        waits.push(info);
      },
    });
  try {
    await fn({ sb, counters, waits, client });
  } finally {
    await sb.close();
  }
}

/** A tiny local server answering with `answer`, counting what it receives. */
async function fakeServer(answer: (req: IncomingMessage, res: ServerResponse, n: number) => void) {
  let received = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => answer(req, res, ++received));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    received: () => received,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function item(user: Record<string, unknown>): BatchItem<unknown> {
  const json = JSON.stringify(user);
  return { user: user as unknown as InsiderUser, json, bytes: Buffer.byteLength(json), tag: null };
}

function attributeUser(email: string, custom: Record<string, unknown> = { yotpo_point_balance: 10 }, extra: Record<string, unknown> = {}) {
  return item({ identifiers: { email }, attributes: { email, custom }, not_append: true, ...extra });
}

function eventUser(email: string, timestamp = '2026-11-20T10:00:00Z') {
  return item({
    identifiers: { email },
    attributes: { email, custom: { yotpo_point_balance: 5 } },
    not_append: true,
    events: [{ event_name: 'points_earned', timestamp, event_params: { custom: { yotpo_event_reward_point: 50 } } }],
  });
}

const settings = (client: ApiClient | undefined, more: Partial<UploadSettings> = {}): UploadSettings => ({
  skipHook: true,
  maxBytes: 5_000_000,
  onAmbiguous: 'hold',
  ...(client ? { client } : {}),
  ...more,
});

const statuses = (outcomes: UserOutcome[]) => outcomes.map((o) => o.status);

async function profile(client: ApiClient, email: string, extra: Record<string, unknown> = {}) {
  return client.request({
    method: 'POST',
    path: '/api/user/v1/profile',
    json: { identifiers: { email }, attributes: ['*'], ...extra },
    passStatuses: [404],
  });
}

test('a wrong partner name stops the run (exit 3) after one request, nobody written as failed', async () => {
  await withSandbox({}, async ({ sb, client }) => {
    const items = [attributeUser('a@example.com'), eventUser('b@example.com')];
    const result = await uploadBatch(items, settings(client({ partnerName: 'someone-else' })));
    assert.deepEqual(statuses(result.outcomes), ['unsent', 'unsent']);
    assert.equal((result.fatal as { exitCode?: number }).exitCode, 3);
    assert.match(result.fatal!.message, /INSIDER_PARTNER_NAME/);
    assert.match(result.fatal!.message, /INSIDER_API_KEY/);
    assert.match(result.fatal!.message, /Partner is invalid/);
    assert.equal(sb.stats().byApi.insider.requests, 1);

    const wrongToken = await uploadBatch(items, settings(client({ apiKey: 'not-the-token' })));
    assert.deepEqual(statuses(wrongToken.outcomes), ['unsent', 'unsent']);
    assert.equal((wrongToken.fatal as { exitCode?: number }).exitCode, 3);
    assert.equal(sb.received().length, 0);
  });
});

test('Access Denied and request-level 400s stop the run; every user is unsent', async () => {
  const bodies = [
    { success: false, message: 'Access Denied. You do not have sufficient access to perform this action.' },
    { error: 'users must be defined: bad request' },
    { error: 'content type must be application/json' },
  ];
  for (const body of bodies) {
    const fake = await fakeServer((_req, res) => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    });
    try {
      const client = new ApiClient({
        api: 'insider',
        baseUrl: fake.url,
        headers: insiderHeaders({ partnerName: 'p', apiKey: 'k' }),
        rps: 0,
        retry: FAST_RETRY,
        timeoutMs: 5000,
        counters: newRequestCounters(),
      });
      const result = await uploadBatch([attributeUser('a@example.com'), attributeUser('b@example.com')], settings(client));
      assert.deepEqual(statuses(result.outcomes), ['unsent', 'unsent']);
      assert.equal((result.fatal as { exitCode?: number }).exitCode, 3);
      assert.ok(result.fatal!.message.includes(body.message ?? body.error!), result.fatal!.message);
      assert.equal(fake.received(), 1, 'not bisected');
    } finally {
      await fake.close();
    }
  }
});

for (const mode of ['slow', 'reset', '502', '500', 'bad-counts', 'unreadable', 'hold'] as const) {
  test(`after-store fault '${mode}' on an event batch: uncertain, exactly one stored copy, the run goes on`, async () => {
    await withSandbox({ afterStore: { mode, count: 1 }, afterStoreDelayMs: 3000 }, async ({ sb, client }) => {
      const items = [eventUser('a@example.com'), eventUser('b@example.com')];
      const result = await uploadBatch(items, settings(client({ timeoutMs: 300 })));
      sb.releaseHeld();
      assert.deepEqual(statuses(result.outcomes), ['uncertain', 'uncertain']);
      assert.equal(result.fatal, undefined);
      assert.equal(sb.storedBatches, 1, 'sent once: never retried');
      assert.equal(sb.received().length, 2);
    });
  });
}

for (const mode of ['slow', 'reset', '502', '500', 'unreadable', 'hold'] as const) {
  test(`after-store fault '${mode}' on an attribute-only batch: retried, succeeded`, async () => {
    await withSandbox({ afterStore: { mode, count: 1 }, afterStoreDelayMs: 3000 }, async ({ sb, client }) => {
      const result = await uploadBatch(
        [attributeUser('a@example.com'), attributeUser('b@example.com')],
        settings(client({ timeoutMs: 300 })),
      );
      sb.releaseHeld();
      assert.deepEqual(statuses(result.outcomes), ['succeeded', 'succeeded']);
      assert.equal(result.fatal, undefined);
      assert.equal(sb.storedBatches, 2);
    });
  });
}

test('--on-ambiguous resend: an event batch is sent again after a 500 and counted', async () => {
  await withSandbox({ afterStore: { mode: '500', count: 1 } }, async ({ sb, client, counters }) => {
    const result = await uploadBatch([eventUser('a@example.com')], settings(client(), { onAmbiguous: 'resend' }));
    assert.deepEqual(statuses(result.outcomes), ['succeeded']);
    assert.equal(counters.resentAfterAmbiguous, 1);
    assert.equal(sb.storedBatches, 2, 'at least once: Insider holds it twice');
  });
});

test('bad counts: users with events uncertain, attribute-only users failed, none succeeded', async () => {
  await withSandbox({ afterStore: { mode: 'bad-counts', count: 1 } }, async ({ sb, client }) => {
    const result = await uploadBatch([eventUser('a@example.com'), attributeUser('b@example.com')], settings(client()));
    assert.deepEqual(statuses(result.outcomes), ['uncertain', 'failed']);
    assert.match((result.outcomes[1] as { error: string }).error, /does not account for every user/);
    assert.equal(sb.stats().byApi.insider.requests, 1);
  });
});

test('a 200 that stays unreadable: attribute-only users failed after every attempt, fatal ApiError', async () => {
  await withSandbox({ afterStore: { mode: 'unreadable', count: 100 } }, async ({ sb, client }) => {
    const result = await uploadBatch([attributeUser('a@example.com')], settings(client()));
    assert.deepEqual(statuses(result.outcomes), ['failed']);
    assert.ok(result.fatal instanceof ApiError);
    assert.equal(result.fatal.exitCode, 3);
    assert.equal(sb.stats().byApi.insider.requests, FAST_RETRY.maxAttempts);
  });
});

test('an event batch Insider never received (connection refused) is retried and then failed, not uncertain', async () => {
  const fake = await fakeServer(() => undefined);
  await fake.close();
  await withSandbox({}, async ({ client, waits }) => {
    const result = await uploadBatch([eventUser('a@example.com')], settings(client({ baseUrl: fake.url })));
    assert.deepEqual(statuses(result.outcomes), ['failed']);
    assert.equal((result.fatal as { exitCode?: number }).exitCode, 3);
    assert.equal(waits.length, FAST_RETRY.maxAttempts - 1);
    assert.ok(waits.every((w) => w.kind === 'not_processed'));
  });
});

test('a 400 about the size splits the batch by bytes; both halves are sent', async () => {
  await withSandbox({}, async ({ sb, client }) => {
    const big = 'x'.repeat(900_000);
    const items = Array.from({ length: 6 }, (_, i) => attributeUser(`u${i}@example.com`, { yotpo_referral_link: big }));
    const result = await uploadBatch(items, settings(client(), { maxBytes: 10_000_000 }));
    assert.deepEqual(statuses(result.outcomes), Array(6).fill('succeeded'));
    assert.deepEqual(
      sb
        .requests()
        .filter((r) => r.api === 'insider')
        .map((r) => [r.status, r.users ?? 'too big to read']),
      [
        [400, 'too big to read'],
        [200, 3],
        [200, 3],
      ],
    );
  });
});

test('a user alone over maxBytes fails without a request', async () => {
  await withSandbox({}, async ({ sb, client }) => {
    const result = await uploadBatch(
      [attributeUser('a@example.com', { yotpo_referral_link: 'x'.repeat(2000) }), attributeUser('b@example.com')],
      settings(client(), { maxBytes: 1000 }),
    );
    assert.deepEqual(statuses(result.outcomes), ['failed', 'succeeded']);
    assert.equal(sb.stats().byApi.insider.requests, 1);
  });
});

test('an unrecognised 400 is bisected down to the one user it objects to', async () => {
  await withSandbox({ badRequestEmails: ['u5@example.com'] }, async ({ client }) => {
    const items = Array.from({ length: 8 }, (_, i) => attributeUser(`u${i}@example.com`));
    const result = await uploadBatch(items, settings(client()));
    const expected = Array(8).fill('succeeded');
    expected[5] = 'failed';
    assert.deepEqual(statuses(result.outcomes), expected);
    assert.equal((result.outcomes[5] as { httpStatus: number }).httpStatus, 400);
    assert.equal(result.fatal, undefined);
  });
});

test('per-user errors in fail.errors fail those users only', async () => {
  await withSandbox({}, async ({ client }) => {
    const result = await uploadBatch([attributeUser('a@example.com'), attributeUser('not-an-email')], settings(client()));
    assert.deepEqual(statuses(result.outcomes), ['succeeded', 'failed']);
    assert.match((result.outcomes[1] as { error: string }).error, /not a valid email/);
  });
});

for (const status of [302, 307] as const) {
  test(`a ${status} is never followed: RedirectError names the host, the other server receives nothing`, async () => {
    const other = await fakeServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"data":{"successful":{"count":1},"fail":{}}}');
    });
    try {
      await withSandbox({ redirect: { status, to: other.url } }, async ({ client }) => {
        const result = await uploadBatch([eventUser('a@example.com'), attributeUser('b@example.com')], settings(client()));
        assert.deepEqual(statuses(result.outcomes), ['unsent', 'unsent']);
        assert.ok(result.fatal instanceof RedirectError);
        assert.equal(result.fatal.exitCode, 3);
        assert.ok(result.fatal.message.includes(other.host), result.fatal.message);
      });
      assert.equal(other.received(), 0);
    } finally {
      await other.close();
    }
  });
}

test('429 without Retry-After backs off on ratelimit-reset; 429 is retried even for a non-idempotent request', async () => {
  const fake = await fakeServer((_req, res, n) => {
    if (n === 1) {
      res.writeHead(429, { 'ratelimit-reset': '7', 'content-type': 'application/json' });
      res.end('{"error":"rate limited"}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
  });
  try {
    const waits: RetryWait[] = [];
    const client = new ApiClient({
      api: 'loyalty',
      baseUrl: fake.url,
      headers: { 'x-api-key': 'k', 'x-guid': 'g' },
      rps: 0,
      retry: FAST_RETRY,
      timeoutMs: 5000,
      counters: newRequestCounters(),
      wait: async (_ms, _signal, info) => {
        waits.push(info);
      },
    });
    const response = await client.request({ method: 'POST', path: '/x', json: {}, idempotent: false });
    assert.equal(response.status, 200);
    assert.deepEqual(
      waits.map((w) => [w.delayMs, w.basis, w.kind]),
      [[7000, 'ratelimit-reset', 'not_processed']],
    );
  } finally {
    await fake.close();
  }
});

test('a header value with a line break is a usage error, never a request', () => {
  assert.throws(
    () =>
      new ApiClient({
        api: 'insider',
        baseUrl: 'http://127.0.0.1:9',
        headers: insiderHeaders({ partnerName: 'p', apiKey: 'key\n' }),
        rps: 0,
        retry: FAST_RETRY,
        timeoutMs: 1000,
        counters: newRequestCounters(),
      }),
    (error: unknown) =>
      error instanceof UsageError && /Insider API key.*line break/.test(error.message) && !error.message.includes('key\n'),
  );
});

test('a dry run sends nothing: would_send', async () => {
  const result = await uploadBatch([attributeUser('a@example.com')], settings(undefined));
  assert.deepEqual(statuses(result.outcomes), ['would_send']);
});

test('schema check against the sandbox: missing and mistyped attributes, with the fix', async () => {
  await withSandbox({ missingAttributes: ['yotpo_points_earned'], mistypedAttributes: ['yotpo_top_topics'] }, async ({ client }) => {
    const schema = await readPanelSchema(client());
    assert.ok(!('unavailable' in schema));
    const report = checkSchema(schema, requiredSchemaFromTable());
    assert.equal(report.missing, 1);
    assert.equal(report.mistyped, 1);
    assert.deepEqual(
      report.items.filter((i) => i.state !== 'ok').map((i) => [i.name, i.state, i.expected, i.found]),
      [
        ['yotpo_points_earned', 'missing', 'number', undefined],
        ['yotpo_top_topics', 'mistyped', 'array', 'string'],
      ],
    );
    const lines = formatSchemaReport(report).join('\n');
    assert.match(lines, /yotpo_points_earned: missing; create it in InOne with type number/);
    assert.match(lines, /yotpo_top_topics: type string, the mapping sends array; it needs a new attribute/);
    assert.match(lines, /budget: \d+\/80 custom attributes used \(1 more needed\)/);
  });
  await withSandbox({}, async ({ client }) => {
    const schema = await readPanelSchema(client());
    assert.ok(!('unavailable' in schema));
    const report = checkSchema(schema, requiredSchemaFromTable());
    assert.equal(report.missing + report.mistyped, 0);
    assert.ok(report.items.length > 100);
  });
});

test('metadata endpoint absent: the schema check is unavailable, not a failure', async () => {
  await withSandbox({ metadataEndpoint: false }, async ({ client }) => {
    const schema = await readPanelSchema(client());
    assert.ok('unavailable' in schema);
    assert.match(schema.unavailable, /404/);
  });
});

test('sandbox: arrays append unless not_append; unknown and mistyped attributes are dropped from a 200', async () => {
  await withSandbox({ missingAttributes: ['yotpo_points_earned'], mistypedAttributes: ['yotpo_vip_tier_name'] }, async ({ client }) => {
    const c = client();
    const send = (email: string, topics: string[], notAppend: boolean) =>
      uploadBatch(
        [
          item({
            identifiers: { email },
            attributes: {
              email,
              custom: { yotpo_top_topics: topics, yotpo_points_earned: 3, yotpo_vip_tier_name: 'Gold', yotpo_point_balance: 7 },
            },
            ...(notAppend ? { not_append: true } : {}),
          }),
        ],
        settings(c),
      );
    for (const [email, notAppend] of [
      ['append@example.com', false],
      ['replace@example.com', true],
    ] as const) {
      assert.deepEqual(statuses((await send(email, ['a', 'b'], notAppend)).outcomes), ['succeeded']);
      assert.deepEqual(statuses((await send(email, ['c'], notAppend)).outcomes), ['succeeded']);
    }
    const appended = (await profile(c, 'append@example.com')).body as { attributes: Record<string, unknown> };
    assert.deepEqual([...(appended.attributes.c_yotpo_top_topics as string[])].sort(), ['a', 'b', 'c']);
    const replaced = (await profile(c, 'replace@example.com')).body as { attributes: Record<string, unknown>; quota: unknown };
    assert.deepEqual(replaced.attributes.c_yotpo_top_topics, ['c']);
    assert.equal(replaced.attributes.c_yotpo_point_balance, 7);
    assert.ok(!('c_yotpo_points_earned' in replaced.attributes), 'missing in the panel: dropped');
    assert.ok(!('c_yotpo_vip_tier_name' in replaced.attributes), 'mistyped in the panel: dropped');
    assert.deepEqual(replaced.quota, { cost: 2.5, used: 5, total: 1000 });
  });
});

test('sandbox profile API: dates with milliseconds, events by time window, 404 until visible', async () => {
  await withSandbox({}, async ({ sb, client }) => {
    const c = client();
    await uploadBatch(
      [
        item({
          identifiers: { email: 'e@example.com' },
          attributes: {
            email: 'e@example.com',
            birthday: '1990-05-01T00:00:00Z',
            custom: { yotpo_last_purchase_at: '2026-01-02T03:04:05Z' },
          },
          not_append: true,
        }),
      ],
      settings(c),
    );
    await uploadBatch(
      [eventUser('e@example.com', '2026-11-20T10:00:00Z'), eventUser('f@example.com', '2026-11-20T10:00:00Z')],
      settings(c),
    );
    await uploadBatch([eventUser('e@example.com', '2026-11-25T10:00:00Z')], settings(c));
    const window = { start_date: Date.parse('2026-11-19T00:00:00Z') / 1000, end_date: Date.parse('2026-11-21T00:00:00Z') / 1000 };
    const found = (await profile(c, 'e@example.com', { events: window })).body as {
      attributes: Record<string, unknown>;
      events: Record<string, { created_date: string; yotpo_event_reward_point: number }[]>;
    };
    assert.equal(found.attributes.birthday, '1990-05-01T00:00:00.000Z');
    assert.equal(found.attributes.c_yotpo_last_purchase_at, '2026-01-02T03:04:05.000Z');
    assert.deepEqual(found.events, { points_earned: [{ yotpo_event_reward_point: 50, created_date: '2026-11-20T10:00:00Z' }] });

    sb.setProfile('e@example.com', { custom: { yotpo_point_balance: 999 } });
    const changed = (await profile(c, 'e@example.com')).body as { attributes: Record<string, unknown> };
    assert.equal(changed.attributes.c_yotpo_point_balance, 999);

    sb.setFaults({ visibilityDelayMs: 3_600_000 });
    await uploadBatch([attributeUser('late@example.com')], settings(c));
    const late = await profile(c, 'late@example.com');
    assert.deepEqual([late.status, late.body], [404, { error: 'no such user for these identifiers: no data' }]);
  });
});

test('sandbox hold: wait-stored answers once the batch is stored, release lets the answer out', async () => {
  await withSandbox({ afterStore: { mode: 'hold', count: 1 } }, async ({ sb, client }) => {
    const pending = uploadBatch([eventUser('a@example.com')], settings(client()));
    const waited = await fetch(`${sb.url}/__sandbox/wait-stored?batches=1`);
    assert.deepEqual(await waited.json(), { storedBatches: 1 });
    assert.equal((await fetch(`${sb.url}/__sandbox/release`, { method: 'POST' })).status, 200);
    const result = await pending;
    assert.deepEqual(statuses(result.outcomes), ['succeeded']);
  });
});

test('a non-idempotent request: 503 with Retry-After is retried, 503 without it is ambiguous', async () => {
  const fake = await fakeServer((req, res, n) => {
    const withRetryAfter = req.url === '/with';
    if (n === 1 || !withRetryAfter) {
      res.writeHead(503, withRetryAfter ? { 'retry-after': '2' } : {});
      res.end('busy');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
  });
  try {
    const waits: RetryWait[] = [];
    const client = new ApiClient({
      api: 'insider',
      baseUrl: fake.url,
      headers: insiderHeaders({ partnerName: 'p', apiKey: 'k' }),
      rps: 0,
      retry: FAST_RETRY,
      timeoutMs: 5000,
      counters: newRequestCounters(),
      wait: async (_ms, _signal, info) => {
        waits.push(info);
      },
    });
    assert.equal((await client.request({ method: 'POST', path: '/with', json: {}, idempotent: false })).status, 200);
    assert.deepEqual(
      waits.map((w) => [w.delayMs, w.basis, w.kind]),
      [[2000, 'retry-after', 'not_processed']],
    );
    await assert.rejects(client.request({ method: 'POST', path: '/without', json: {}, idempotent: false }), (error: unknown) => {
      return error instanceof AmbiguousError && error.status === 503 && error.attempts === 1;
    });
    assert.equal(fake.received(), 3);
  } finally {
    await fake.close();
  }
});

test('--on-ambiguous resend that never gets an answer: users with events uncertain, the outage stops the run', async () => {
  await withSandbox({ afterStore: { mode: '500', count: 100 } }, async ({ sb, client, counters }) => {
    const result = await uploadBatch(
      [eventUser('a@example.com'), attributeUser('b@example.com')],
      settings(client(), { onAmbiguous: 'resend' }),
    );
    assert.deepEqual(statuses(result.outcomes), ['uncertain', 'failed']);
    assert.equal((result.fatal as { exitCode?: number }).exitCode, 3);
    assert.equal(counters.resentAfterAmbiguous, FAST_RETRY.maxAttempts - 1);
    assert.equal(sb.storedBatches, FAST_RETRY.maxAttempts);
  });
});

test('interrupted while Insider holds the answer: users with events uncertain, the others unsent', async () => {
  await withSandbox({ afterStore: { mode: 'hold', count: 1 } }, async ({ sb }) => {
    const controller = new AbortController();
    const client = new ApiClient({
      api: 'insider',
      baseUrl: sb.url,
      headers: insiderHeaders({ partnerName: C.insiderPartner, apiKey: C.insiderApiKey }),
      rps: 0,
      retry: FAST_RETRY,
      timeoutMs: 10_000,
      counters: newRequestCounters(),
      signal: controller.signal,
    });
    const pending = uploadBatch([eventUser('a@example.com'), attributeUser('b@example.com')], settings(client));
    await sb.waitForStored(1);
    controller.abort();
    const result = await pending;
    sb.releaseHeld();
    assert.deepEqual(statuses(result.outcomes), ['uncertain', 'unsent']);
    assert.equal((result.fatal as { exitCode?: number }).exitCode, 130);
  });
});

test('checkSchema: missing events and mistyped event parameters, grouped by parameter in the report', () => {
  const required = {
    attributes: [{ name: 'yotpo_point_balance', type: 'number' as const }],
    events: [
      { name: 'points_earned', params: [{ name: 'yotpo_event_reward_point', type: 'number' as const }] },
      { name: 'tier_earned', params: [{ name: 'yotpo_event_reward_point', type: 'number' as const }] },
      { name: 'tier_lost', params: [] },
    ],
  };
  const report = checkSchema(
    {
      attributes: { yotpo_point_balance: 'Integer', other_tool_attribute: 'string' },
      events: { points_earned: { yotpo_event_reward_point: 'text' }, tier_earned: { yotpo_event_reward_point: 'String' } },
    },
    required,
  );
  assert.equal(report.missing, 1);
  assert.equal(report.mistyped, 2);
  assert.deepEqual(report.budget.attributes, { used: 2, total: 80, needed: 0 });
  assert.deepEqual(report.budget.eventParams, { used: 1, total: 80, needed: 0 });
  const lines = formatSchemaReport(report);
  assert.ok(lines.some((l) => /event tier_lost: missing; create the custom event "tier_lost"/.test(l)));
  assert.deepEqual(
    lines.filter((l) => l.includes('yotpo_event_reward_point')),
    [
      '  event parameter yotpo_event_reward_point: type string on points_earned, tier_earned, the mapping sends number; it needs a new parameter, since types cannot be changed once created: create it again with type number',
    ],
  );
});
