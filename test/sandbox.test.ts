import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  SANDBOX_CREDENTIALS as C,
  customerAt,
  customerEmail,
  isRejectedEmail,
  reviewAt,
  reviewMeta,
  serveSandbox,
  startSandbox,
  type Sandbox,
  type SandboxOptions,
} from '../src/sandbox/index.js';

type Json = Record<string, any>;

async function withSandbox(opts: SandboxOptions, fn: (sb: Sandbox) => Promise<void>): Promise<void> {
  const sb = await startSandbox(opts);
  try {
    await fn(sb);
  } finally {
    await sb.close();
  }
}

const loyaltyHeaders = { 'x-guid': C.loyaltyGuid, 'x-api-key': C.loyaltyApiKey };
const insiderHeaders = {
  'x-partner-name': C.insiderPartner.toLowerCase(),
  'x-request-token': C.insiderApiKey,
  'content-type': 'application/json',
};

async function get(
  sb: Sandbox,
  path: string,
  headers: Record<string, string> = loyaltyHeaders,
): Promise<{ status: number; body: any; res: Response }> {
  const res = await fetch(sb.url + path, { headers });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body, res };
}

async function upsert(
  sb: Sandbox,
  body: unknown,
  headers: Record<string, string> = insiderHeaders,
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${sb.url}/api/user/v1/upsert`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

async function token(sb: Sandbox): Promise<string> {
  const res = await fetch(`${sb.url}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_id: C.appKey, client_secret: C.apiSecret, grant_type: 'client_credentials' }),
  });
  assert.equal(res.status, 200);
  const b = (await res.json()) as Json;
  assert.equal(b.token_type, 'bearer');
  assert.equal(typeof b.access_token, 'string');
  return b.access_token as string;
}

const reviewsPath = (t: string, page: number, extra = ''): string =>
  `/v1/apps/${C.appKey}/reviews?utoken=${encodeURIComponent(t)}&count=100&page=${page}&deleted=true${extra}`;

// ---------------------------------------------------------------------------------------------
// generated data

test('generators are deterministic for a seed and differ across seeds', () => {
  for (let i = 0; i < 50; i++) {
    assert.deepEqual(customerAt(7, i), customerAt(7, i));
    assert.deepEqual(reviewAt(7, i, 50), reviewAt(7, i, 50));
  }
  let differ = 0;
  for (let i = 0; i < 20; i++) if (JSON.stringify(customerAt(1, i)) !== JSON.stringify(customerAt(2, i))) differ++;
  assert.equal(differ, 20);
});

test('customer data exercises every MAPPING §2 source, REST names and alternatives, and the messy shapes', () => {
  const cs: Json[] = Array.from({ length: 200 }, (_, i) => customerAt(1, i));
  const at = (o: Json, path: string): unknown => path.split('.').reduce<any>((v, k) => (v && typeof v === 'object' ? v[k] : undefined), o);
  const present = (v: unknown): boolean => v !== undefined && v !== null && v !== '';
  const pairs: Array<[string, string | null]> = [
    ['first_name', null],
    ['last_name', null],
    ['birthday_year', null],
    ['birthday_month', null],
    ['birth_day', 'birthday_day'],
    ['points_earned', null],
    ['points_balance', 'point_balance'],
    ['total_redemptions', null],
    ['total_points_redeemed', null],
    ['vip_tier_name', null],
    ['successful_referrals', null],
    ['referrals_made_and_clicked', null],
    ['is_referred_by_other_customer', null],
    ['vip_tier_actions_completed.amount_spent_cents', 'amount_spent_cents'],
    ['vip_tier_actions_completed.purchases_made', 'purchases_made'],
    ['total_spend_cents', null],
    ['total_purchases', null],
    ['perks_redeemed', null],
    ['last_purchase_at', null],
    ['points_expire_at', null],
    ['expires_at', 'perk.expires_at'],
    ['expired', 'perk.expired'],
    ['accepts_marketing', null],
    ['opt_in', 'is_opt_in'],
    ['opted_in_at', 'loyalty_opt_in_date'],
    ['credit_balance', null],
    ['is_affiliate', null],
    ['vip_tier_expiration', 'vip_tier_ends_at'],
    ['anniversary_year', null],
    ['anniversary_month', null],
    ['anniversary_day', null],
    ['referral_link.expired', 'referral_code.expired'],
    ['referral_link.link', null],
    ['next_points_expire_on', 'loyalty_next_points_expire_on'],
    ['next_points_expire_amount', 'loyalty_next_points_expire_amount'],
    ['days_to_point_expiration', null],
    ['credit_balance_in_customer_currency', null],
    [
      'vip_tier_maintenance_requirements.amount_cents_needed_in_customer_currency',
      'vip_tier_maintenance_requirements.amount_cents_in_customer_currency',
    ],
    ['last_seen_at', null],
  ];
  for (const [rest, alt] of pairs) {
    assert.ok(
      cs.some((c) => present(at(c, rest))),
      `some customer has ${rest}`,
    );
    if (alt) {
      // the alternative is what a client must fall back to: REST absent, null or "" and alt present
      assert.ok(
        cs.some((c) => !present(at(c, rest)) && present(at(c, alt))),
        `some customer has only ${alt}`,
      );
      assert.ok(
        cs.some((c) => (at(c, rest) === null || at(c, rest) === '') && present(at(c, alt))),
        `some customer has ${rest} null/"" and ${alt}`,
      );
      assert.ok(
        cs.some((c) => present(at(c, rest)) && present(at(c, alt))),
        `some customer has both ${rest} and ${alt}`,
      );
    }
  }
  const strings = (v: unknown): string[] =>
    typeof v === 'string' ? [v] : v && typeof v === 'object' ? Object.values(v).flatMap(strings) : [];
  const values = cs.flatMap(strings);
  const has = (re: RegExp, what: string): void =>
    assert.ok(
      values.some((v) => re.test(v)),
      what,
    );
  has(/^\d+$/, 'numeric strings');
  has(/^\$\d{1,3},\d{3}$/, 'credit balance like $2,620');
  has(/^\$\d+\.\d\d$/, 'credit balance like $12.50');
  has(/^€\d+,\d\d$/, 'customer currency like €10,00');
  has(/^\d{4}-\d\d-\d\d$/, 'date-only');
  has(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/, 'zone-less');
  has(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/, 'offset');
  has(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'milliseconds');
  has(/^(true|false)$/, 'boolean strings');
  has(/^[=+\-@]/, 'formula-looking names');
  has(/[\u4e00-\u9fff]/, 'CJK');
  has(/\p{Extended_Pictographic}/u, 'emoji');
  has(/[éëçñø]/i, 'accents');
  assert.ok(
    values.some((v) => Number.isNaN(Date.parse(v)) && /\d{4}|date|yesterday/.test(v)),
    'unparseable dates',
  );
  assert.ok(
    cs.some((c) => c.birthday_month === 2 && (c.birth_day ?? c.birthday_day) === 30),
    'Feb 30',
  );
  assert.ok(cs.filter((c) => 'birthday_month' in c && c.birthday_year === null).length > 20, 'year null on many');
  assert.ok(
    cs.some((c) => typeof c.points_balance === 'number' && c.points_balance < 0),
    'negative balance',
  );
  assert.ok(
    cs.some((c) => typeof c.referral_link === 'string'),
    'referral_link as a URL string',
  );
  assert.ok(
    cs.some((c) => typeof c.referral_link === 'object' && c.referral_link !== null),
    'referral_link object',
  );
  assert.ok(cs.some((c) => !('email' in c)) && cs.some((c) => c.email === ''), 'customers without email');
  assert.ok(
    cs.some((c) => c.email === 'not-an-email'),
    'invalid email',
  );
  assert.ok(
    cs.some((c) => typeof c.email === 'string' && c.email !== c.email.trim() && /[A-Z]/.test(c.email)),
    'spaced mixed-case email',
  );
  // email derivable from the index, distinct
  const emails = new Set<string>();
  cs.forEach((c, i) => {
    const e = customerEmail(i);
    if (e !== null) {
      assert.equal((c.email as string).trim().toLowerCase(), e);
      assert.ok(!emails.has(e));
      emails.add(e);
    }
  });
  assert.ok(emails.size >= 190);
});

test('review data: site share, sentiment nulls, deleted, topics, emails of customers and reviewer-only', () => {
  const rs: Json[] = Array.from({ length: 2000 }, (_, j) => reviewAt(1, j, 500));
  const share = (f: (r: Json) => boolean): number => rs.filter(f).length / rs.length;
  const near = (x: number, target: number, tol: number, what: string): void => assert.ok(Math.abs(x - target) < tol, `${what}: ${x}`);
  near(
    share((r) => r.sku === 'yotpo_site_reviews'),
    0.25,
    0.04,
    'site reviews',
  );
  near(
    share((r) => r.sentiment === null),
    0.2,
    0.04,
    'sentiment null',
  );
  near(
    share((r) => r.deleted === true),
    0.05,
    0.02,
    'deleted',
  );
  near(
    share((r) => Array.isArray(r.topics)),
    0.5,
    0.05,
    'topics',
  );
  near(
    share((r) => typeof r.email !== 'string' || r.email === ''),
    0.02,
    0.015,
    'no email',
  );
  const loyal = share((r) => typeof r.email === 'string' && /^customer\.\d+@example\.com$/.test(r.email.trim().toLowerCase()));
  near(loyal, 0.7, 0.05, 'loyalty reviewers');
  assert.ok(rs.every((r) => Number.isInteger(r.score) && r.score >= 1 && r.score <= 5));
  assert.ok(rs.every((r) => r.sentiment === null || (r.sentiment >= 0 && r.sentiment <= 1)));
  assert.equal(new Set(rs.map((r) => r.id)).size, rs.length);
  assert.ok(rs.every((r) => Number.isInteger(r.id) && r.id > 0));
  assert.ok(rs.every((r) => /\.\d{3}Z$/.test(r.created_at) && r.updated_at >= r.created_at));
  // every loyalty email in a review is a real customer with that email
  for (const r of rs) {
    const m = typeof r.email === 'string' ? /^customer\.(\d+)@example\.com$/.exec(r.email.trim().toLowerCase()) : null;
    if (m) assert.equal(customerEmail(Number(m[1])), r.email.trim().toLowerCase());
  }
  // reviewer-only emails repeat, so a reviewer has several reviews
  const reviewers = rs
    .map((r) => (typeof r.email === 'string' ? r.email.trim().toLowerCase() : ''))
    .filter((e) => e.startsWith('reviewer.'));
  assert.ok(new Set(reviewers).size < reviewers.length);
});

// ---------------------------------------------------------------------------------------------
// loyalty

test('loyalty: auth, cursor paging visits every customer exactly once, clamps per_page, rejects garbled cursors', async () => {
  await withSandbox({ customers: 250, reviews: 0, seed: 3 }, async (sb) => {
    assert.equal((await get(sb, '/api/v2/customers/recent?per_page=100', {})).status, 401);
    const bad = await get(sb, '/api/v2/customers/recent?per_page=100', { ...loyaltyHeaders, 'x-api-key': 'nope' });
    assert.deepEqual([bad.status, bad.body], [401, { error: 'unauthorized' }]);

    const seen: unknown[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = cursor === null ? '' : `&page_info=${encodeURIComponent(cursor)}`;
      const r = await get(sb, `/api/v2/customers/recent?per_page=500${q}`);
      assert.equal(r.status, 200);
      assert.ok(r.body.customers.length <= 100, 'per_page clamped to 100');
      seen.push(...r.body.customers);
      cursor = r.body.metadata.next_page_info;
      pages++;
    } while (cursor !== null);
    assert.equal(pages, 3);
    assert.equal(seen.length, 250);
    seen.forEach((c, i) => assert.deepEqual(c, customerAt(3, i)));

    const first = await get(sb, '/api/v2/customers/recent?per_page=10');
    const cur = first.body.metadata.next_page_info as string;
    assert.equal(typeof cur, 'string');
    assert.equal((await get(sb, `/api/v2/customers/recent?per_page=10&page_info=${cur}`)).status, 200);
    assert.equal((await get(sb, `/api/v2/customers/recent?per_page=10&page_info=${cur.slice(0, -2)}xx`)).status, 400);
    assert.equal((await get(sb, '/api/v2/customers/recent?per_page=10&page_info=garbage!')).status, 400);
    // the same cursor is valid in another sandbox with the same seed (resume after restart)
    await withSandbox({ customers: 250, reviews: 0, seed: 3 }, async (sb2) => {
      const r = await get(sb2, `/api/v2/customers/recent?per_page=10&page_info=${cur}`);
      assert.deepEqual(r.body.customers[0], customerAt(3, 10));
    });
  });
});

test('loyalty: numbered pages of /customers/all and total_pages; loyaltyPageSizeMax', async () => {
  await withSandbox({ customers: 205, reviews: 0, loyaltyPageSizeMax: 50 }, async (sb) => {
    const p1 = await get(sb, '/api/v2/customers/all?page=1&per_page=100&last_seen_at=2000-01-01');
    assert.equal(p1.status, 200);
    assert.equal(p1.body.customers.length, 50);
    assert.equal(p1.body.links.total_pages, 5);
    const p5 = await get(sb, '/api/v2/customers/all?page=5&per_page=100&last_seen_at=2000-01-01');
    assert.equal(p5.body.customers.length, 5);
    assert.deepEqual(p5.body.customers[4], customerAt(1, 204));
    const p6 = await get(sb, '/api/v2/customers/all?page=6&per_page=100&last_seen_at=2000-01-01');
    assert.deepEqual(p6.body, { customers: [], links: { total_pages: 5 } });
  });
});

test('loyalty: lookup by email is case-insensitive on the trimmed email; unknown is 404', async () => {
  await withSandbox({ customers: 100, reviews: 0 }, async (sb) => {
    const r = await get(sb, `/api/v2/customers?customer_email=${encodeURIComponent('  CUSTOMER.13@example.COM ')}&with_referral_code=true`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, customerAt(1, 13));
    const noRef = await get(sb, '/api/v2/customers?customer_email=customer.0@example.com');
    assert.equal(noRef.status, 200);
    assert.equal('referral_link' in noRef.body || 'referral_code' in noRef.body, false);
    for (const e of ['customer.100@example.com', 'customer.7@example.com', 'customer.013@example.com', 'nobody@example.com']) {
      const nf = await get(sb, `/api/v2/customers?customer_email=${encodeURIComponent(e)}&with_referral_code=true`);
      assert.deepEqual([nf.status, nf.body], [404, { error: 'Could not find customer' }], e);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// reviews

test('reviews: token, paging with the duplicated id across pages 1/2, 401 on bad/expired token, 404 on wrong app key', async () => {
  await withSandbox({ customers: 50, reviews: 250, seed: 5 }, async (sb) => {
    const badTok = await fetch(`${sb.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_id: C.appKey, client_secret: 'wrong', grant_type: 'client_credentials' }),
    });
    assert.deepEqual([badTok.status, await badTok.json()], [401, { error: 'invalid_client' }]);

    const t = await token(sb);
    assert.notEqual(await token(sb), t, 'a new token each time');
    assert.equal((await get(sb, reviewsPath('not-a-token', 1), {})).status, 401);
    assert.equal((await get(sb, `/v1/apps/otherApp/reviews?utoken=${t}&count=100&page=1`, {})).status, 404);

    const all: Json[] = [];
    const pages: Json[][] = [];
    for (let page = 1; ; page++) {
      const r = await get(sb, reviewsPath(t, page), {});
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.status, { code: 200, message: 'OK' });
      if (r.body.reviews.length === 0) break;
      pages.push(r.body.reviews);
      all.push(...r.body.reviews);
    }
    assert.equal(pages.length, 3);
    assert.equal(all.length, 251, 'one review served twice');
    const ids = all.map((r) => r.id);
    assert.equal(new Set(ids).size, 250);
    const last1 = pages[0]!.at(-1)!;
    const first2 = pages[1]![0]!;
    assert.deepEqual(first2, last1);
    assert.deepEqual(last1, reviewAt(5, 99, 50));
    const byId = new Map(all.map((r) => [r.id, r]));
    for (let j = 0; j < 250; j++) assert.deepEqual(byId.get(reviewMeta(5, j).id), reviewAt(5, j, 50));

    // count is clamped to 100
    const big = await get(sb, `/v1/apps/${C.appKey}/reviews?utoken=${t}&count=500&page=1&deleted=true`, {});
    assert.equal(big.body.reviews.length, 100);
    // recorded paths never carry the token
    assert.ok(sb.requests().every((r) => !r.path.includes(t)));
    assert.ok(sb.requests().some((r) => r.path.includes('utoken=REDACTED')));

    sb.expireReviewTokens();
    assert.equal((await get(sb, reviewsPath(t, 1), {})).status, 401);
    const t2 = await token(sb);
    assert.equal((await get(sb, reviewsPath(t2, 1), {})).status, 200);
  });
});

test('reviews: since_updated_at and deleted filters', async () => {
  await withSandbox({ customers: 20, reviews: 300 }, async (sb) => {
    const t = await token(sb);
    const since = '2025-06-01T00:00:00Z';
    const sinceMs = Date.parse(since);
    const fetchAll = async (extra: string, deleted: boolean): Promise<Json[]> => {
      const out = new Map<number, Json>();
      for (let page = 1; ; page++) {
        const path = `/v1/apps/${C.appKey}/reviews?utoken=${t}&count=100&page=${page}${deleted ? '&deleted=true' : ''}${extra}`;
        const r = await get(sb, path, {});
        if (r.body.reviews.length === 0) break;
        for (const rv of r.body.reviews) out.set(rv.id, rv);
      }
      return [...out.values()];
    };
    const filtered = await fetchAll(`&since_updated_at=${encodeURIComponent(since)}`, true);
    const expected = Array.from({ length: 300 }, (_, j) => reviewAt(1, j, 20)).filter((r) => Date.parse(r.updated_at as string) >= sinceMs);
    assert.deepEqual(filtered.map((r) => r.id).sort(), expected.map((r) => r.id).sort());
    const noDeleted = await fetchAll('', false);
    assert.ok(noDeleted.every((r) => r.deleted === false));
    assert.equal(noDeleted.length, Array.from({ length: 300 }, (_, j) => reviewMeta(1, j)).filter((m) => !m.deleted).length);
  });
});

// ---------------------------------------------------------------------------------------------
// insider

const user = (email: string, extra: Json = {}): Json => ({
  identifiers: { email },
  attributes: { email, name: 'Jane', custom: { yotpo_point_balance: 10 } },
  ...extra,
});

test('insider: auth first (lower-cased partner name), content type, empty users, limits', async () => {
  await withSandbox({ customers: 0, reviews: 0 }, async (sb) => {
    const authFail = { success: false, message: 'Partner token authentication failed.' };
    assert.deepEqual(await upsert(sb, { users: [] }, { ...insiderHeaders, 'x-partner-name': C.insiderPartner }), {
      status: 401,
      body: authFail,
    });
    assert.deepEqual(await upsert(sb, { users: [] }, { ...insiderHeaders, 'x-request-token': 'x' }), { status: 401, body: authFail });
    assert.deepEqual(await upsert(sb, { users: [] }), { status: 400, body: { error: 'users must be defined: bad request' } });
    assert.equal((await upsert(sb, { users: [user('a@b.co')] }, { ...insiderHeaders, 'content-type': 'text/plain' })).status, 400);
    assert.equal((await upsert(sb, '{"users": [', insiderHeaders)).status, 400);

    const many = Array.from({ length: 1001 }, (_, i) => user(`u${i}@example.com`));
    assert.equal((await upsert(sb, { users: many })).status, 400);
    const ok1000 = await upsert(sb, { users: many.slice(0, 1000), skip_hook: true });
    assert.deepEqual(ok1000, { status: 200, body: { data: { successful: { count: 1000 }, fail: {} } } });

    const pad = 'x'.repeat(5_000_001);
    const huge = await upsert(sb, { users: [user('a@b.co', { attributes: { name: pad } })] });
    assert.deepEqual(huge, { status: 400, body: { error: 'request body is bigger than maximum allowed size 5,000,000 bytes' } });
    assert.equal(sb.received().length, 1000);
    const rec = sb.requests().filter((r) => r.api === 'insider');
    assert.ok(rec.every((r) => !('x-request-token' in r.headers)));
    assert.ok(rec.some((r) => r.users === 1000 && r.skipHook === true && (r.bytes ?? 0) > 0));
  });
});

test('insider: per-user validation errors, {} for zero counts, recording with skip_hook in arrival order', async () => {
  await withSandbox({ customers: 0, reviews: 0 }, async (sb) => {
    const users = [
      user('good1@example.com'),
      user('not-an-email'),
      user('bad-attrs@example.com', { attributes: {} }),
      user('nulls@example.com', { attributes: { name: 'x', custom: { a: null } } }),
      user('bday@example.com', { attributes: { birthday: '1990-01-01T00:00:00+02:00' } }),
      {
        identifiers: { email: 'ev@example.com' },
        events: [{ event_name: 'Points Earned', timestamp: '2024-01-01T00:00:00Z' }, { event_name: 'points_earned' }],
      },
      {
        identifiers: { email: 'good2@example.com' },
        events: [{ event_name: 'points_earned', timestamp: '2024-01-01T00:00:00Z', event_params: { custom: { x: 1 } } }],
      },
    ];
    const r = await upsert(sb, { users, skip_hook: false });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.data.successful, { count: 2 });
    assert.equal(r.body.data.fail.count, 5);
    const keys = Object.keys(r.body.data.fail.errors);
    assert.ok(keys.includes('users.1.identifiers.*.regexp(^.+@.+\\..+$)'), keys.join());
    assert.deepEqual(r.body.data.fail.errors['users.1.identifiers.*.regexp(^.+@.+\\..+$)'], ['not a valid email address: not-an-email']);
    for (const i of [2, 3, 4, 5])
      assert.ok(
        keys.some((k) => k.startsWith(`users.${i}.`)),
        `user ${i} failed`,
      );
    assert.ok(keys.includes('users.3.attributes.custom.a.not_null'));
    assert.ok(keys.includes('users.5.events.0.event_name.*.regexp(^[a-z0-9][a-z0-9._-]*$)'));
    assert.ok(keys.includes('users.5.events.1.timestamp.required'));
    assert.ok(!keys.some((k) => k.startsWith('users.0.') || k.startsWith('users.6.')));

    const allBad = await upsert(sb, { users: [user('nope')] });
    assert.deepEqual(allBad.body.data.successful, {});
    await upsert(sb, { users: [user('good1@example.com')] });

    const got = sb.received();
    assert.deepEqual(
      got.map((u) => u.identifiers?.email),
      ['good1@example.com', 'good2@example.com', 'good1@example.com'],
    );
    assert.deepEqual(
      got.map((u) => u.skip_hook),
      [false, false, null],
    );
    assert.deepEqual(got[0], { ...users[0], skip_hook: false });
    const viaHttp = await get(sb, '/__sandbox/insider/users', {});
    assert.deepEqual(viaHttp.body, got);
    const st = (await get(sb, '/__sandbox/stats', {})).body;
    assert.deepEqual(st, sb.stats());
    assert.deepEqual(st.users, { accepted: 3, rejected: 6 });
    assert.deepEqual(st.events, { accepted: 1 });
    assert.equal(st.byApi.insider.byStatus['200'], 3);
  });
});

test('insider: rejectRate picks the same users every time; badRequestEmails gives a whole-batch 400', async () => {
  const emails = Array.from({ length: 400 }, (_, i) => `customer.${i}@example.com`);
  const expected = emails.filter((e) => isRejectedEmail(e, 0.25));
  assert.ok(expected.length > 60 && expected.length < 140);
  assert.ok(
    emails.filter((e) => isRejectedEmail(e, 0.1)).every((e) => expected.includes(e)),
    'monotonic in the rate',
  );
  for (let run = 0; run < 2; run++) {
    await withSandbox({ customers: 0, reviews: 0, rejectRate: 0.25, seed: run + 1 }, async (sb) => {
      const r = await upsert(sb, { users: emails.map((e, i) => user(i % 2 ? e.toUpperCase() : e)) });
      assert.equal(r.body.data.fail.count, expected.length);
      const failedIdx = Object.keys(r.body.data.fail.errors).map((k) => Number(k.split('.')[1]));
      assert.deepEqual(
        failedIdx.map((i) => emails[i]),
        expected,
      );
      assert.deepEqual(r.body.data.fail.errors[`users.${failedIdx[0]}.attributes.custom.*.type`], ['sandbox rejected this user']);
      assert.equal(sb.received().length, emails.length - expected.length);
    });
  }
  await withSandbox({ customers: 0, reviews: 0, badRequestEmails: ['Bad@Example.com'] }, async (sb) => {
    const r = await upsert(sb, { users: [user('ok@example.com'), user(' bad@example.com')] });
    assert.equal(r.status, 400);
    assert.equal(typeof r.body.error, 'string');
    assert.equal(sb.received().length, 0);
    assert.equal((await upsert(sb, { users: [user('ok@example.com')] })).status, 200);
    sb.setFaults({ badRequestEmails: [] });
    assert.equal((await upsert(sb, { users: [user('bad@example.com')] })).status, 200);
  });
});

// ---------------------------------------------------------------------------------------------
// faults and the rest

test('rateLimitRps: a Yotpo 429 carries ratelimit-reset: 1 and no Retry-After, one bucket per API; control endpoints exempt', async () => {
  await withSandbox({ customers: 10, reviews: 0, rateLimitRps: 3 }, async (sb) => {
    const rs = await Promise.all(Array.from({ length: 10 }, () => get(sb, '/api/v2/customers/recent?per_page=5')));
    const limited = rs.filter((r) => r.status === 429);
    assert.ok(limited.length >= 5, `429s: ${limited.length}`);
    assert.ok(rs.some((r) => r.status === 200));
    for (const r of limited) {
      assert.equal(r.res.headers.get('ratelimit-reset'), '1');
      assert.equal(r.res.headers.get('retry-after'), null);
      assert.deepEqual(r.body, { error: 'rejected: too many requests' });
    }
    assert.equal((await upsert(sb, { users: [user('a@example.com')] })).status, 200, 'Insider has its own budget');
    assert.equal((await get(sb, '/__sandbox/stats', {})).status, 200);
    assert.equal(sb.stats().faults.rateLimited, limited.length);
    sb.setFaults({ rateLimitRps: 0 });
    assert.equal((await get(sb, '/api/v2/customers/recent?per_page=5')).status, 200);
  });
});

test('failRate: 5xx (500/502/503) from a seeded sequence; latency', async () => {
  const statuses = async (): Promise<number[]> => {
    let out: number[] = [];
    await withSandbox({ customers: 10, reviews: 0, failRate: 0.5, seed: 9 }, async (sb) => {
      for (let i = 0; i < 40; i++) out.push((await get(sb, '/api/v2/customers/recent?per_page=1')).status);
      assert.equal((await get(sb, '/__sandbox/insider/users', {})).status, 200);
      out = out.slice();
    });
    return out;
  };
  const a = await statuses();
  assert.deepEqual(await statuses(), a, 'same seed, same faults');
  assert.ok(a.includes(200));
  const failures = a.filter((s) => s !== 200);
  assert.ok(failures.length >= 8 && failures.every((s) => [500, 502, 503].includes(s)));
  assert.ok(new Set(failures).size >= 2);

  await withSandbox({ customers: 1, reviews: 0, latencyMs: 120 }, async (sb) => {
    const t0 = performance.now();
    await get(sb, '/api/v2/customers/recent?per_page=1');
    assert.ok(performance.now() - t0 >= 110);
    const t1 = performance.now();
    await get(sb, '/__sandbox/stats', {});
    assert.ok(performance.now() - t1 < 100, 'control endpoints have no latency');
  });
});

test('recordUsers: false keeps counts only', async () => {
  await withSandbox({ customers: 0, reviews: 0, recordUsers: false }, async (sb) => {
    await upsert(sb, { users: [user('a@example.com'), user('b@example.com')] });
    assert.deepEqual(sb.received(), []);
    assert.deepEqual(sb.requests(), []);
    assert.equal(sb.stats().users.accepted, 2);
    assert.equal(sb.stats().byApi.insider.requests, 1);
  });
});

test('serveSandbox prints export lines for every env var and a listening comment', async () => {
  const lines: string[] = [];
  const sb = await serveSandbox({ customers: 5, reviews: 5 }, (l) => lines.push(l));
  try {
    assert.equal(lines.length, Object.keys(sb.env).length + 1);
    assert.equal(lines.at(-1), `# sandbox listening on ${sb.url} (Ctrl-C to stop)`);
    assert.ok(lines.includes(`export INSIDER_PARTNER_NAME=SandboxBrand`));
    assert.ok(lines.includes(`export YOTPO_LOYALTY_URL=${sb.url}`));
    for (const k of [
      'YOTPO_LOYALTY_URL',
      'YOTPO_API_URL',
      'INSIDER_API_URL',
      'YOTPO_LOYALTY_API_KEY',
      'YOTPO_LOYALTY_GUID',
      'YOTPO_APP_KEY',
      'YOTPO_API_SECRET',
      'INSIDER_PARTNER_NAME',
      'INSIDER_API_KEY',
    ]) {
      assert.ok(
        lines.some((l) => l.startsWith(`export ${k}=`)),
        k,
      );
    }
  } finally {
    await sb.close();
  }
});
