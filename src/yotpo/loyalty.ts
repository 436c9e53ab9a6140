// The Yotpo Loyalty & Referrals API (SPEC §3): the customer listings as page generators, and the
// lookup by email. The response shapes of the list endpoints are not confirmed by Yotpo, so the
// reader accepts each variant seen in the wild.

import type { LoyaltyConfig } from '../config.js';
import type { ApiClient, ApiClientOptions } from '../io/http.js';

export const LOYALTY_PAGE_SIZE = 100;

export function loyaltyHeaders(config: LoyaltyConfig): ApiClientOptions['headers'] {
  return { 'x-guid': config.guid, 'x-api-key': config.apiKey, accept: 'application/json' };
}

export interface LoyaltyPage {
  /** 1-based position of the page in this run. */
  seq: number;
  customers: unknown[];
  /** The cursor that fetched this page (null for the first page). */
  cursor: string | null;
  /** The cursor of the page after it; null on the last page. */
  nextCursor: string | null;
  /** Known up front with the `all` listing. */
  totalPages?: number;
  /** `--emails`: listed addresses that Yotpo does not know. */
  missing?: string[];
}

function readCursor(body: Record<string, unknown>): string | null {
  for (const holder of [body.metadata, body.pagination]) {
    if (holder && typeof holder === 'object') {
      const next = (holder as { next_page_info?: unknown }).next_page_info;
      if (typeof next === 'string' && next !== '') return next;
    }
  }
  return null;
}

/** `{customers, metadata.next_page_info}`, `{customers, pagination.next_page_info}` or a bare array. */
export function readCustomerPage(body: unknown): { customers: unknown[]; nextCursor: string | null; totalPages?: number } {
  if (Array.isArray(body)) return { customers: body, nextCursor: null };
  if (body && typeof body === 'object') {
    const record = body as Record<string, unknown>;
    if (Array.isArray(record.customers)) {
      const links = record.links as { total_pages?: unknown } | undefined;
      const totalPages = typeof links?.total_pages === 'number' ? links.total_pages : undefined;
      return { customers: record.customers, nextCursor: readCursor(record), ...(totalPages !== undefined ? { totalPages } : {}) };
    }
  }
  throw new Error('the customer list has no `customers` array');
}

const CURSOR_IN_TEXT = /"next_page_info"\s*:\s*"([^"\\]+)"/g;

/**
 * The next cursor read straight from the response text, before the (much slower) full parse, so
 * that the next page can be requested at once. Only the ends of the text are searched: that is
 * where the metadata sits, never inside a customer. The full parse then confirms it.
 */
export function peekCursor(text: string): string | null {
  const ends = text.length > 1024 ? `${text.slice(0, 512)}\n${text.slice(-512)}` : text;
  let cursor: string | null = null;
  for (const match of ends.matchAll(CURSOR_IN_TEXT)) cursor = match[1]!;
  return cursor;
}

/**
 * `GET /api/v2/customers/recent`, following the cursor. Each page needs the previous page's
 * cursor, so pages come one after another: the chain is the ceiling of a backfill. To keep the
 * chain tight, the next page is requested as soon as its cursor is seen in the text, while this
 * page is still being parsed; a guess the parse contradicts is dropped. `startCursor` resumes.
 */
export async function* recentCustomerPages(
  client: ApiClient,
  startCursor: string | null = null,
): AsyncGenerator<LoyaltyPage> {
  const fetchPage = (cursor: string | null) => {
    // Later pages send only per_page and the cursor (SPEC §3).
    const searchParams: Record<string, string | number> = { per_page: LOYALTY_PAGE_SIZE };
    if (cursor) searchParams.page_info = cursor;
    const pending = client.request({ path: '/api/v2/customers/recent', searchParams, rawBody: true });
    pending.catch(() => undefined); // awaited below, or dropped with a wrong guess
    return { cursor, pending };
  };
  let next = fetchPage(startCursor);
  for (let seq = 1; ; seq++) {
    const { cursor, pending } = next;
    const response = await pending;
    if (response.status !== 200) throw client.unexpected(response, 'customer list');
    const text = typeof response.body === 'string' ? response.body : JSON.stringify(response.body);
    const guess = peekCursor(text);
    if (guess) {
      next = fetchPage(guess);
      // Let the request leave before the parse below holds the event loop for milliseconds.
      await new Promise((resolve) => setImmediate(resolve));
    }
    let page;
    try {
      page = readCustomerPage(JSON.parse(text));
    } catch (error) {
      throw client.unexpected(response, error instanceof SyntaxError ? 'the customer list is not JSON' : (error as Error).message);
    }
    if (page.customers.length === 0) return;
    yield { seq, customers: page.customers, cursor, nextCursor: page.nextCursor };
    if (!page.nextCursor) return;
    if (guess !== page.nextCursor) next = fetchPage(page.nextCursor);
  }
}

/**
 * `GET /api/v2/customers/all?page=n` (the older numbered listing): `inFlight` pages are fetched at
 * once, within the client's rate limit, and yielded in order.
 */
export async function* allCustomerPages(
  client: ApiClient,
  inFlight: number,
  startPage = 1,
): AsyncGenerator<LoyaltyPage> {
  const fetchPage = async (page: number) => {
    const response = await client.request({
      path: '/api/v2/customers/all',
      searchParams: { page, per_page: LOYALTY_PAGE_SIZE },
    });
    if (response.status !== 200) throw client.unexpected(response, 'customer list');
    return readCustomerPage(response.body);
  };
  const window: Promise<Awaited<ReturnType<typeof fetchPage>>>[] = [];
  let nextToFetch = startPage;
  let totalPages: number | undefined;
  for (let page = startPage; ; page++) {
    while (window.length < inFlight && (totalPages === undefined || nextToFetch <= totalPages)) {
      const pending = fetchPage(nextToFetch++);
      pending.catch(() => undefined); // awaited below; avoids an unhandled rejection meanwhile
      window.push(pending);
    }
    const pending = window.shift();
    if (!pending) return;
    const result = await pending;
    totalPages ??= result.totalPages;
    if (result.customers.length === 0) return;
    yield {
      seq: page - startPage + 1,
      customers: result.customers,
      cursor: String(page),
      nextCursor: totalPages !== undefined && page >= totalPages ? null : String(page + 1),
      ...(totalPages !== undefined ? { totalPages } : {}),
    };
  }
}

/** `GET /api/v2/customers?customer_email=`: the customer, or null when Yotpo answers 404. */
export async function lookupCustomer(client: ApiClient, email: string): Promise<unknown | null> {
  const response = await client.request({
    path: '/api/v2/customers',
    searchParams: { customer_email: email, with_referral_code: true },
    passStatuses: [404],
  });
  if (response.status === 404) return null;
  if (response.status !== 200) throw client.unexpected(response, 'customer lookup');
  return response.body;
}

/**
 * `--emails`: each email looked up one by one (`inFlight` at once, paced by the client), yielded
 * as pages of up to LOYALTY_PAGE_SIZE customers; emails Yotpo does not know are listed as missing.
 */
export async function* emailLookupPages(
  client: ApiClient,
  emails: readonly string[],
  inFlight: number,
): AsyncGenerator<LoyaltyPage> {
  const window: Promise<unknown | null>[] = [];
  let next = 0;
  let page = { customers: [] as unknown[], missing: [] as string[] };
  let seq = 0;
  for (let index = 0; index < emails.length; index++) {
    while (window.length < inFlight && next < emails.length) {
      const pending = lookupCustomer(client, emails[next++]!);
      pending.catch(() => undefined); // awaited in turn below
      window.push(pending);
    }
    const customer = await window.shift()!;
    if (customer === null) page.missing.push(emails[index]!);
    else page.customers.push(customer);
    if (page.customers.length + page.missing.length >= LOYALTY_PAGE_SIZE || index === emails.length - 1) {
      seq++;
      yield { seq, ...page, cursor: null, nextCursor: null };
      page = { customers: [], missing: [] };
    }
  }
}
