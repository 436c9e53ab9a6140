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
 */
import type { IncomingMessage } from 'node:http';
import { randomBytes } from 'node:crypto';
import { customerAt, customerEmail, reviewAt, reviewMeta } from './data.js';
import { normaliseEmail } from './insider.js';
import { STREAM, mix32 } from './prng.js';
import type { SandboxStats } from './types.js';

export const REVIEWS_MAX_COUNT = 100;

/** A request body as server.ts read it: null when over the limit. */
export interface YotpoRequestBody {
  buf: Buffer | null;
  bytes: number;
}

/** What server.ts writes back (the same shape as its own replies). */
export interface YotpoReply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export interface YotpoApiContext {
  seed: number;
  customers: number;
  reviews: number;
  /** per_page above it is clamped */
  loyaltyPageSizeMax: number;
  credentials: { loyaltyApiKey: string; loyaltyGuid: string; appKey: string; apiSecret: string };
  /** The current stats object (replaced by a reset). */
  stats: () => SandboxStats;
}

export interface YotpoApi {
  loyalty(req: IncomingMessage, url: URL): YotpoReply;
  reviews(req: IncomingMessage, url: URL, body: YotpoRequestBody): YotpoReply;
  /** Invalidates every issued utoken, so the next data call gets 401. */
  expireTokens(): void;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

function json(status: number, body: unknown, headers?: Record<string, string>): YotpoReply {
  return headers ? { status, body, headers } : { status, body };
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
  const tokens = new Set<string>();

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
  const cursorCheck = (offset: number): string => mix32(seed, STREAM.cursor, offset).toString(36);
  const encodeCursor = (offset: number): string => Buffer.from(`o${offset}.${cursorCheck(offset)}`).toString('base64url');
  const decodeCursor = (s: string): number | null => {
    if (!/^[A-Za-z0-9_-]+$/.test(s)) return null;
    const m = /^o(\d{1,15})\.([0-9a-z]+)$/.exec(Buffer.from(s, 'base64url').toString('latin1'));
    if (!m) return null;
    const offset = Number(m[1]);
    if (m[2] !== cursorCheck(offset) || offset > nCustomers) return null;
    return offset;
  };
  const customersSlice = (from: number, to: number): Record<string, unknown>[] => {
    const out: Record<string, unknown>[] = [];
    for (let i = from; i < to; i++) out.push(customerAt(seed, i));
    return out;
  };

  function loyalty(req: IncomingMessage, url: URL): YotpoReply {
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
        let offset = 0;
        const pageInfo = q.get('page_info');
        if (pageInfo !== null) {
          const o = decodeCursor(pageInfo);
          if (o === null) return json(400, { error: 'invalid page_info' });
          offset = o;
        }
        const end = Math.min(nCustomers, offset + perPage);
        return json(200, {
          customers: customersSlice(offset, end),
          metadata: { next_page_info: end < nCustomers ? encodeCursor(end) : null },
        });
      }
      case '/api/v2/customers/all': {
        const page = positiveInt(q.get('page'), 1);
        if (page === null) return json(400, { error: 'page must be a positive integer' });
        const from = Math.min(nCustomers, (page - 1) * perPage);
        const to = Math.min(nCustomers, from + perPage);
        return json(200, { customers: customersSlice(from, to), links: { total_pages: Math.ceil(nCustomers / perPage) } });
      }
      case '/api/v2/customers': {
        const raw = q.get('customer_email');
        if (raw === null || raw.trim() === '') {
          if (q.has('customer_id') || q.has('pos_account_id') || q.has('phone_number')) return json(404, { error: 'Could not find customer' });
          return json(400, { error: 'customer_email, customer_id, pos_account_id or phone_number is required' });
        }
        const email = normaliseEmail(raw);
        const m = /^customer\.(\d{1,15})@example\.com$/.exec(email);
        const idx = m ? Number(m[1]) : -1;
        if (idx < 0 || idx >= nCustomers || customerEmail(idx) !== email) return json(404, { error: 'Could not find customer' });
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
  function reviews(req: IncomingMessage, url: URL, body: YotpoRequestBody): YotpoReply {
    if (url.pathname === '/oauth/token') {
      if (req.method !== 'POST') return json(404, { error: 'not found' });
      const f = body.buf ? parseForm(body.buf, headerValue(req, 'content-type')) : null;
      if (!f) return json(400, { error: 'invalid_request' });
      if (f.client_id !== creds.appKey || f.client_secret !== creds.apiSecret) return json(401, { error: 'invalid_client' });
      if (f.grant_type !== 'client_credentials') return json(400, { error: 'unsupported_grant_type' });
      const token = randomBytes(24).toString('base64url');
      tokens.add(token);
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
    if (utoken === null || !tokens.has(utoken)) {
      return json(401, { status: { code: 401, message: 'Invalid token', error_type: 'Unauthorized' } });
    }
    const count = Math.min(REVIEWS_MAX_COUNT, positiveInt(q.get('count'), 10) ?? 10);
    const page = positiveInt(q.get('page'), 1) ?? 1;
    let sinceMs: number | null = null;
    const since = q.get('since_updated_at');
    if (since !== null && since !== '') {
      sinceMs = Date.parse(since);
      if (Number.isNaN(sinceMs)) return json(400, { status: { code: 400, message: 'invalid since_updated_at', error_type: 'Bad Request' } });
    }
    const index = reviewIndex(sinceMs, q.get('deleted') === 'true');
    const n = index ? index.length : nReviews;
    // pages from 2 on start one earlier: position count-1 is served twice (see the file comment)
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

  return { loyalty, reviews, expireTokens: () => tokens.clear() };
}
