/**
 * The sandbox's Yotpo APIs (SPEC §3, §7): Loyalty (`/api/v2/*`) and Reviews (`/oauth/token`,
 * `/v1/apps/{app_key}/reviews`), served on the sandbox's server. server.ts routes those paths here.
 *
 * - reviews: without `deleted=true` the deleted reviews are left out; `since_updated_at` keeps
 *   reviews with updated_at >= it. Filtered lists are computed once per filter (a Uint32Array).
 *   Paging quirk (on purpose): the review at position `count - 1` of the (filtered) list is served
 *   both as the LAST review of page 1 and as the FIRST review of page 2, whenever the list has more
 *   than `count` reviews: pages from 2 on are shifted back by one, as if a review had been inserted
 *   while the client was paging. A client must de-duplicate by id.
 * - loyalty `recent`: customers in index order; the cursor is base64url(offset + a seeded check),
 *   so it stays valid across a sandbox restart with the same seed (a resumed backfill works).
 * - loyalty `all`: `last_seen_at` is required (400 without, as public taps treat it) and keeps the
 *   customers last seen on or after it; a customer whose `last_seen_at` is missing or unreadable
 *   is kept (nothing says it is older). `total_pages` counts the kept customers.
 * - `customer_anniversary`: data.ts's customerAnniversary, in one of three shapes; 404 for none.
 * - Yotpo's 429s carry `ratelimit-reset` (seconds), never `Retry-After` (YOTPO_RATE_LIMIT_HEADERS).
 *
 * Hostile modes (YotpoSandboxFaults, also through POST /__sandbox/faults):
 * - `tokenTtl: n`: a utoken stops being honoured after n data requests (401 from then on).
 * - `loyaltyCursorFault`: 'repeat' (every page after the first points at its own cursor again),
 *   'cycle' (the second cursor points back at the first: A→B→A), 'empty-with-cursor' (an empty
 *   page with a next cursor between every two pages), 'numeric' (numeric cursors: the offset).
 * - `reviewsFault`: 'hole' (page `reviewsHolePage`, default 2, answers empty for its first
 *   `reviewsHoleAsks` asks, default always, while later pages are full), 'never-empty' (a page past
 *   the end repeats the last page).
 */
import type { IncomingMessage } from 'node:http';
import { randomBytes } from 'node:crypto';
import { EARLIEST_LAST_SEEN_MS, customerAnniversary, customerAt, customerEmail, instantOf, reviewAt, reviewMeta } from './data.js';
import { normaliseEmail } from './insider.js';
import { STREAM, mix32 } from './prng.js';
import type { LoyaltyCursorFault, ReviewsListFault, SandboxStats, YotpoSandboxFaults } from './types.js';
import { json, type Reply, type RequestBody } from './reply.js';

export const REVIEWS_MAX_COUNT = 100;

export interface YotpoApiContext {
  seed: number;
  customers: number;
  reviews: number;
  /** per_page above it is clamped */
  loyaltyPageSizeMax: number;
  credentials: { loyaltyApiKey: string; loyaltyGuid: string; appKey: string; apiSecret: string };
  /** The current stats object (replaced by a reset). */
  stats: () => SandboxStats;
  /** The hostile modes to start with (the sandbox's options). */
  faults?: YotpoSandboxFaults;
}

export interface YotpoApi {
  loyalty(req: IncomingMessage, url: URL): Reply;
  reviews(req: IncomingMessage, url: URL, body: RequestBody): Reply;
  /** Invalidates every issued utoken, so the next data call gets 401. */
  expireTokens(): void;
  applyFaults(faults: YotpoSandboxFaults): void;
  /** The hostile modes in force (for the answer of POST /__sandbox/faults). */
  faults(): {
    tokenTtl: number;
    loyaltyCursorFault: LoyaltyCursorFault | null;
    reviewsFault: ReviewsListFault | null;
    reviewsHolePage: number;
    reviewsHoleAsks: number | null;
  };
}

/** A Yotpo 429: no Retry-After, the seconds until the window resets instead. */
export const YOTPO_RATE_LIMIT_HEADERS: Readonly<Record<string, string>> = { 'ratelimit-reset': '1', 'ratelimit-remaining': '0' };

const LAST_SEEN_PARAM = /^\d{4}-\d\d-\d\d([T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?)?$/;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** Positive integer query parameter: `def` when absent, null when malformed. */
function positiveInt(v: string | null, def: number): number | null {
  if (v === null || v === '') return def;
  if (!/^\d+$/.test(v)) return null;
  const n = Number(v);
  return n >= 1 && Number.isSafeInteger(n) ? n : null;
}

function parseForm(buf: Buffer, contentType: string | undefined): Record<string, unknown> | null {
  const text = buf.toString('utf8');
  if (contentType?.includes('application/x-www-form-urlencoded')) {
    return Object.fromEntries(new URLSearchParams(text));
  }
  try {
    const v: unknown = JSON.parse(text);
    return isPlainObject(v) ? v : null;
  } catch {
    return null;
  }
}

export function createYotpoApi(ctx: YotpoApiContext): YotpoApi {
  const { seed, customers: nCustomers, reviews: nReviews, credentials: creds } = ctx;
  const loyaltyMax = Math.max(1, ctx.loyaltyPageSizeMax);
  /** Issued utokens and the data requests each has been honoured for. */
  const tokens = new Map<string, number>();
  const hostile = {
    tokenTtl: 0,
    loyaltyCursorFault: null as LoyaltyCursorFault | null,
    reviewsFault: null as ReviewsListFault | null,
    reviewsHolePage: 2,
    reviewsHoleAsks: Number.POSITIVE_INFINITY,
  };
  let holeAsks = 0;
  const applyFaults = (f: YotpoSandboxFaults): void => {
    if (f.tokenTtl !== undefined) hostile.tokenTtl = Math.max(0, f.tokenTtl ?? 0);
    if (f.loyaltyCursorFault !== undefined) hostile.loyaltyCursorFault = f.loyaltyCursorFault ?? null;
    if (f.reviewsFault !== undefined) {
      hostile.reviewsFault = f.reviewsFault ?? null;
      holeAsks = 0;
    }
    if (f.reviewsHolePage !== undefined) hostile.reviewsHolePage = Math.max(1, f.reviewsHolePage ?? 2);
    if (f.reviewsHoleAsks !== undefined) hostile.reviewsHoleAsks = f.reviewsHoleAsks ?? Number.POSITIVE_INFINITY;
  };
  applyFaults(ctx.faults ?? {});

  // filtered review lists (since_updated_at / deleted), computed once per filter
  const reviewIndexCache = new Map<string, Uint32Array>();
  function reviewIndex(sinceMs: number | null, includeDeleted: boolean): Uint32Array | null {
    if (sinceMs === null && includeDeleted) return null; // identity: position j = review j
    const key = `${sinceMs}|${includeDeleted}`;
    const hit = reviewIndexCache.get(key);
    if (hit) return hit;
    const tmp: number[] = [];
    for (let j = 0; j < nReviews; j++) {
      const m = reviewMeta(seed, j);
      if (!includeDeleted && m.deleted) continue;
      if (sinceMs !== null && m.updatedMs < sinceMs) continue;
      tmp.push(j);
    }
    const arr = Uint32Array.from(tmp);
    if (reviewIndexCache.size >= 8) {
      const oldest = reviewIndexCache.keys().next().value;
      if (oldest !== undefined) reviewIndexCache.delete(oldest);
    }
    reviewIndexCache.set(key, arr);
    return arr;
  }

  // ---- loyalty ------------------------------------------------------------------------------
  // A cursor is base64url(`o<offset>.<check>`); `e<offset>.<check>` is the empty page the
  // 'empty-with-cursor' mode puts before the page at that offset. 'numeric' cursors are the offset.
  const cursorCheck = (offset: number): string => mix32(seed, STREAM.cursor, offset).toString(36);
  const encodeCursor = (offset: number, kind: 'o' | 'e' = 'o'): string =>
    Buffer.from(`${kind}${offset}.${cursorCheck(offset)}`).toString('base64url');
  const decodeCursor = (s: string): { offset: number; empty: boolean } | null => {
    if (hostile.loyaltyCursorFault === 'numeric' && /^\d{1,15}$/.test(s)) {
      const offset = Number(s);
      return offset <= nCustomers ? { offset, empty: false } : null;
    }
    if (!/^[A-Za-z0-9_-]+$/.test(s)) return null;
    const m = /^([oe])(\d{1,15})\.([0-9a-z]+)$/.exec(Buffer.from(s, 'base64url').toString('latin1'));
    if (!m) return null;
    const offset = Number(m[2]);
    if (m[3] !== cursorCheck(offset) || offset > nCustomers) return null;
    return { offset, empty: m[1] === 'e' };
  };
  /** The next cursor after the page [offset, end) fetched with `pageInfo`, as the cursor mode has it. */
  const nextCursor = (pageInfo: string | null, offset: number, end: number, perPage: number): string | number | null => {
    if (hostile.loyaltyCursorFault === 'repeat' && pageInfo !== null) return pageInfo;
    if (hostile.loyaltyCursorFault === 'cycle' && offset === 2 * perPage) return encodeCursor(perPage);
    if (end >= nCustomers) return null;
    switch (hostile.loyaltyCursorFault) {
      case 'empty-with-cursor':
        return encodeCursor(end, 'e');
      case 'numeric':
        return end;
      default:
        return encodeCursor(end);
    }
  };
  /** The customer an email names: its index, null when no customer has it, undefined when absent. */
  const customerIndexOf = (raw: string | null): number | null | undefined => {
    if (raw === null || raw.trim() === '') return undefined;
    const email = normaliseEmail(raw);
    const m = /^customer\.(\d{1,15})@example\.com$/.exec(email);
    const idx = m ? Number(m[1]) : -1;
    return idx < 0 || idx >= nCustomers || customerEmail(idx) !== email ? null : idx;
  };
  // customers/all's last_seen_at filter: the indexes kept, computed once per date (null: all of them)
  const seenSinceCache = new Map<number, Uint32Array>();
  const customersSeenSince = (sinceMs: number): Uint32Array | null => {
    if (sinceMs <= EARLIEST_LAST_SEEN_MS) return null;
    const hit = seenSinceCache.get(sinceMs);
    if (hit) return hit;
    const kept: number[] = [];
    for (let i = 0; i < nCustomers; i++) {
      const seen = instantOf(customerAt(seed, i).last_seen_at);
      if (seen === undefined || seen >= sinceMs) kept.push(i);
    }
    const index = Uint32Array.from(kept);
    if (seenSinceCache.size >= 8) seenSinceCache.clear();
    seenSinceCache.set(sinceMs, index);
    return index;
  };
  const customersSlice = (from: number, to: number): Record<string, unknown>[] => {
    const out: Record<string, unknown>[] = [];
    for (let i = from; i < to; i++) out.push(customerAt(seed, i));
    return out;
  };

  function loyalty(req: IncomingMessage, url: URL): Reply {
    if (headerValue(req, 'x-guid') !== creds.loyaltyGuid || headerValue(req, 'x-api-key') !== creds.loyaltyApiKey) {
      return json(401, { error: 'unauthorized' });
    }
    if (req.method !== 'GET') return json(404, { error: 'not found' });
    const q = url.searchParams;
    const perPageRaw = positiveInt(q.get('per_page'), 100);
    if (perPageRaw === null) return json(400, { error: 'per_page must be a positive integer' });
    const perPage = Math.min(perPageRaw, loyaltyMax);

    switch (url.pathname) {
      case '/api/v2/customers/recent': {
        const pageInfo = q.get('page_info');
        const at = pageInfo === null ? { offset: 0, empty: false } : decodeCursor(pageInfo);
        if (at === null) return json(400, { error: 'invalid page_info' });
        if (at.empty) return json(200, { customers: [], metadata: { next_page_info: encodeCursor(at.offset) } });
        const end = Math.min(nCustomers, at.offset + perPage);
        const next = nextCursor(pageInfo, at.offset, end, perPage);
        return json(200, { customers: customersSlice(at.offset, end), metadata: { next_page_info: next } });
      }
      case '/api/v2/customers/all': {
        const page = positiveInt(q.get('page'), 1);
        if (page === null) return json(400, { error: 'page must be a positive integer' });
        const lastSeenAt = q.get('last_seen_at');
        if (lastSeenAt === null || lastSeenAt === '') return json(400, { error: 'last_seen_at is required' });
        const sinceMs = LAST_SEEN_PARAM.test(lastSeenAt) ? instantOf(lastSeenAt.replace(' ', 'T')) : undefined;
        if (sinceMs === undefined) return json(400, { error: 'last_seen_at must be a date (YYYY-MM-DD) or an ISO 8601 time' });
        const kept = customersSeenSince(sinceMs);
        const n = kept ? kept.length : nCustomers;
        const from = Math.min(n, (page - 1) * perPage);
        const to = Math.min(n, from + perPage);
        const customers = kept ? Array.from(kept.subarray(from, to), (i) => customerAt(seed, i)) : customersSlice(from, to);
        return json(200, { customers, links: { total_pages: Math.ceil(n / perPage) } });
      }
      case '/api/v2/customer_anniversary': {
        const idx = customerIndexOf(q.get('customer_email'));
        if (idx === undefined) return json(400, { error: 'customer_email is required' });
        const anniversary = idx === null ? undefined : customerAnniversary(seed, idx);
        if (!anniversary) return json(404, { error: idx === null ? 'Could not find customer' : 'Could not find customer anniversary' });
        return json(200, anniversary.shape === 'root' ? anniversary.fields : { [anniversary.shape]: anniversary.fields });
      }
      case '/api/v2/customers': {
        const idx = customerIndexOf(q.get('customer_email'));
        if (idx === undefined) {
          if (q.has('customer_id') || q.has('pos_account_id') || q.has('phone_number'))
            return json(404, { error: 'Could not find customer' });
          return json(400, { error: 'customer_email, customer_id, pos_account_id or phone_number is required' });
        }
        if (idx === null) return json(404, { error: 'Could not find customer' });
        const c = customerAt(seed, idx);
        if (q.get('with_referral_code') !== 'true') {
          delete c.referral_link;
          delete c.referral_code;
        }
        return json(200, c);
      }
      default:
        return json(404, { error: 'not found' });
    }
  }

  // ---- reviews ------------------------------------------------------------------------------
  function reviews(req: IncomingMessage, url: URL, body: RequestBody): Reply {
    if (url.pathname === '/oauth/token') {
      if (req.method !== 'POST') return json(404, { error: 'not found' });
      const f = body.buf ? parseForm(body.buf, headerValue(req, 'content-type')) : null;
      if (!f) return json(400, { error: 'invalid_request' });
      if (f.client_id !== creds.appKey || f.client_secret !== creds.apiSecret) return json(401, { error: 'invalid_client' });
      if (f.grant_type !== 'client_credentials') return json(400, { error: 'unsupported_grant_type' });
      const token = randomBytes(24).toString('base64url');
      tokens.set(token, 0);
      ctx.stats().tokensIssued++;
      return json(200, { access_token: token, token_type: 'bearer' });
    }
    const m = /^\/v1\/apps\/([^/]+)\/reviews\/?$/.exec(url.pathname);
    if (!m || req.method !== 'GET') return json(404, { status: { code: 404, message: 'Not Found' } });
    if (decodeURIComponent(m[1] as string) !== creds.appKey) {
      return json(404, { status: { code: 404, message: "Couldn't find Account with app_key", error_type: 'Resource not found' } });
    }
    const q = url.searchParams;
    const utoken = q.get('utoken');
    const honoured = utoken === null ? undefined : tokens.get(utoken);
    if (utoken === null || honoured === undefined || (hostile.tokenTtl > 0 && honoured >= hostile.tokenTtl)) {
      return json(401, { status: { code: 401, message: 'Invalid token', error_type: 'Unauthorized' } });
    }
    tokens.set(utoken, honoured + 1);
    const count = Math.min(REVIEWS_MAX_COUNT, positiveInt(q.get('count'), 10) ?? 10);
    let page = positiveInt(q.get('page'), 1) ?? 1;
    let sinceMs: number | null = null;
    const since = q.get('since_updated_at');
    if (since !== null && since !== '') {
      sinceMs = Date.parse(since);
      if (Number.isNaN(sinceMs))
        return json(400, { status: { code: 400, message: 'invalid since_updated_at', error_type: 'Bad Request' } });
    }
    const index = reviewIndex(sinceMs, q.get('deleted') === 'true');
    const n = index ? index.length : nReviews;
    if (hostile.reviewsFault === 'hole' && page === hostile.reviewsHolePage && holeAsks++ < hostile.reviewsHoleAsks) {
      return json(200, { status: { code: 200, message: 'OK' }, reviews: [] });
    }
    // pages from 2 on start one earlier: position count-1 is served twice (see the file comment)
    const lastPage = n <= count ? 1 : 1 + Math.ceil((n - count + 1) / count);
    if (hostile.reviewsFault === 'never-empty' && n > 0 && page > lastPage) page = lastPage;
    let start: number;
    let end: number;
    if (page === 1) {
      start = 0;
      end = Math.min(n, count);
    } else if (n <= count) {
      start = end = 0;
    } else {
      start = Math.min(n, (page - 1) * count - 1);
      end = Math.min(n, start + count);
    }
    const list: Record<string, unknown>[] = [];
    for (let p = start; p < end; p++) list.push(reviewAt(seed, index ? (index[p] as number) : p, nCustomers));
    return json(200, { status: { code: 200, message: 'OK' }, reviews: list });
  }

  return {
    loyalty,
    reviews,
    expireTokens: () => tokens.clear(),
    applyFaults,
    faults: () => ({ ...hostile, reviewsHoleAsks: Number.isFinite(hostile.reviewsHoleAsks) ? hostile.reviewsHoleAsks : null }),
  };
}
