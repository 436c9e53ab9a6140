// The Yotpo Loyalty & Referrals API (SPEC §3): the customer listings as page generators, and the
// lookup by email. The response shapes of the list endpoints are not confirmed by Yotpo, so the
// reader accepts each variant seen in the wild.

import type { LoyaltyConfig } from '../config.js';
import type { ApiClient, ApiClientOptions } from '../pipeline/http.js';

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

/**
 * `GET /api/v2/customers/recent`, following the cursor. Each page needs the previous page's cursor,
 * so pages come one after another; `startCursor` resumes a run.
 */
export async function* recentCustomerPages(
  client: ApiClient,
  startCursor: string | null = null,
): AsyncGenerator<LoyaltyPage> {
  let cursor = startCursor;
  for (let seq = 1; ; seq++) {
    // Later pages send only per_page and the cursor (SPEC §3).
    const searchParams: Record<string, string | number> = { per_page: LOYALTY_PAGE_SIZE };
    if (cursor) searchParams.page_info = cursor;
    const response = await client.request({ path: '/api/v2/customers/recent', searchParams });
    if (response.status !== 200) throw client.unexpected(response, 'customer list');
    let page;
    try {
      page = readCustomerPage(response.body);
    } catch (error) {
      throw client.unexpected(response, (error as Error).message);
    }
    if (page.customers.length === 0) return;
    yield { seq, customers: page.customers, cursor, nextCursor: page.nextCursor };
    if (!page.nextCursor) return;
    cursor = page.nextCursor;
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
