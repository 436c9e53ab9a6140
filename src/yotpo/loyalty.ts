// The Yotpo Loyalty & Referrals API (SPEC §3): the customer listings as page generators, checked
// as they are read, the lookups by email (customer, anniversary). The response shapes are not
// confirmed by Yotpo, so the readers accept each variant seen in the wild.

import type { LoyaltyConfig } from '../config.js';
import { normaliseEmail } from '../core/transform.js';
import { toEpochMs } from '../core/values.js';
import { ApiError, UsageError } from '../errors.js';
import type { ApiClient, ApiClientOptions } from '../io/http.js';
import { readAhead } from '../io/read-ahead.js';

export const LOYALTY_PAGE_SIZE = 100;
/** Far above any real account (10 million customers): past it a listing is not trusted. */
export const LOYALTY_MAX_PAGES = 100_000;
/** `customers/all` treats `last_seen_at` as required; without `--since` every customer seen since this. */
export const LAST_SEEN_FLOOR = '2000-01-01';

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

export interface ListingOptions {
  /** Default LOYALTY_MAX_PAGES. */
  maxPages?: number;
  /** Stops starting requests. */
  signal?: AbortSignal;
}

export interface AllListingOptions extends ListingOptions {
  /** `--since` (YYYY-MM-DD or ISO 8601); default LAST_SEEN_FLOOR. */
  lastSeenAt?: string;
}

function isJsonObject(body: unknown): body is Record<string, unknown> {
  return typeof body === 'object' && body !== null && !Array.isArray(body);
}

/** A cursor as the API gave it: a string, or a number (a cursor too, not the end). */
function asCursor(value: unknown): string | null {
  if (typeof value === 'string') return value === '' ? null : value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return null;
}

function readCursor(body: Record<string, unknown>): string | null {
  for (const holder of [body.metadata, body.pagination]) {
    if (isJsonObject(holder)) {
      const next = asCursor(holder.next_page_info);
      if (next !== null) return next;
    }
  }
  return null;
}

/** `{customers, metadata.next_page_info}`, `{customers, pagination.next_page_info}` or a bare array. */
export function readCustomerPage(body: unknown): { customers: unknown[]; nextCursor: string | null; totalPages?: number } {
  if (Array.isArray(body)) return { customers: body, nextCursor: null };
  if (isJsonObject(body) && Array.isArray(body.customers)) {
    const links = body.links as { total_pages?: unknown } | undefined;
    const totalPages = typeof links?.total_pages === 'number' ? links.total_pages : undefined;
    return { customers: body.customers, nextCursor: readCursor(body), ...(totalPages !== undefined ? { totalPages } : {}) };
  }
  throw new Error('the customer list has no `customers` array');
}

const CURSOR_IN_TEXT = /"next_page_info"\s*:\s*(?:"([^"\\]+)"|(-?\d+)(?=\s*[,}]))/g;

/**
 * The next cursor read straight from the response text, before the (much slower) full parse, so
 * that the next page can be requested at once. Only the ends of the text are searched: that is
 * where the metadata sits, never inside a customer. The full parse then confirms it.
 */
export function peekCursor(text: string): string | null {
  const ends = text.length > 1024 ? `${text.slice(0, 512)}\n${text.slice(-512)}` : text;
  let cursor: string | null = null;
  for (const match of ends.matchAll(CURSOR_IN_TEXT)) cursor = match[1] ?? match[2]!;
  return cursor;
}

function pageBoundError(listing: string, maxPages: number): ApiError {
  return new ApiError('loyalty', `the ${listing} listing goes on past ${maxPages} pages of ${LOYALTY_PAGE_SIZE}; it is not trusted`, null);
}

/**
 * `GET /api/v2/customers/recent`, following the cursor. Each page needs the previous page's
 * cursor, so pages come one after another: the chain is the ceiling of a backfill. To keep the
 * chain tight, the next page is requested as soon as its cursor is seen in the text, while this
 * page is still being parsed; a guess the parse contradicts is dropped. `startCursor` resumes.
 *
 * Checked as it is read (SPEC §3): a cursor returned twice in the run (a repeat or a cycle) stops
 * it (ApiError naming the cursor); an empty page that carries a next cursor is yielded and
 * followed; past `maxPages` the run stops.
 */
export async function* recentCustomerPages(
  client: ApiClient,
  startCursor: string | null = null,
  options: ListingOptions = {},
): AsyncGenerator<LoyaltyPage> {
  const maxPages = options.maxPages ?? LOYALTY_MAX_PAGES;
  const fetchPage = (cursor: string | null) => {
    // Later pages send only per_page and the cursor (SPEC §3).
    const searchParams: Record<string, string | number> = { per_page: LOYALTY_PAGE_SIZE };
    if (cursor) searchParams.page_info = cursor;
    const pending = client.request({ path: '/api/v2/customers/recent', searchParams, rawBody: true });
    pending.catch(() => undefined); // awaited below, or dropped with a wrong guess
    return { cursor, pending };
  };
  const followed = new Set<string>(startCursor ? [startCursor] : []);
  let next = fetchPage(startCursor);
  for (let seq = 1; ; seq++) {
    options.signal?.throwIfAborted();
    if (seq > maxPages) throw pageBoundError('customers/recent', maxPages);
    const { cursor, pending } = next;
    const response = await pending;
    if (response.status !== 200) throw client.unexpected(response, 'customer list');
    const text = typeof response.body === 'string' ? response.body : JSON.stringify(response.body);
    const guess = peekCursor(text);
    if (guess && !followed.has(guess)) {
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
    if (page.nextCursor !== null && followed.has(page.nextCursor)) {
      throw new ApiError(
        'loyalty',
        `the customer list returned the cursor ${JSON.stringify(page.nextCursor)} a second time (after page ${seq}); a listing that goes round in circles is not trusted`,
        null,
      );
    }
    if (page.customers.length === 0 && page.nextCursor === null) return;
    yield { seq, customers: page.customers, cursor, nextCursor: page.nextCursor };
    if (page.nextCursor === null) return;
    followed.add(page.nextCursor);
    if (guess !== page.nextCursor) next = fetchPage(page.nextCursor);
  }
}

/** `--since` as `last_seen_at`: a date stays as written, a time is sent as ISO 8601. */
export function lastSeenAtParam(since: string | undefined): string {
  if (since === undefined) return LAST_SEEN_FLOOR;
  if (/^\d{4}-\d{2}-\d{2}$/.test(since)) return since;
  const ms = toEpochMs(since);
  if (ms === undefined) throw new UsageError(`--since ${since} is not a date (use e.g. 2026-01-31 or 2026-01-31T12:00:00Z)`);
  return new Date(ms).toISOString();
}

/**
 * `GET /api/v2/customers/all?page=n&last_seen_at=…` (the older numbered listing): the first page
 * alone, which tells how many there are, then `inFlight` at once (within the client's rate limit),
 * yielded in order. `last_seen_at` goes on every call.
 */
export async function* allCustomerPages(
  client: ApiClient,
  inFlight: number,
  startPage = 1,
  options: AllListingOptions = {},
): AsyncGenerator<LoyaltyPage> {
  const maxPages = options.maxPages ?? LOYALTY_MAX_PAGES;
  const lastSeenAt = lastSeenAtParam(options.lastSeenAt);
  const fetchPage = async (page: number) => {
    const response = await client.request({
      path: '/api/v2/customers/all',
      searchParams: { page, per_page: LOYALTY_PAGE_SIZE, last_seen_at: lastSeenAt },
    });
    if (response.status !== 200) throw client.unexpected(response, 'customer list');
    try {
      return readCustomerPage(response.body);
    } catch (error) {
      throw client.unexpected(response, (error as Error).message);
    }
  };
  const first = await fetchPage(startPage);
  const totalPages = first.totalPages;
  if (totalPages !== undefined && totalPages > maxPages) throw pageBoundError('customers/all', maxPages);
  const pageOf = (page: number, customers: unknown[]): LoyaltyPage => ({
    seq: page - startPage + 1,
    customers,
    cursor: String(page),
    nextCursor: totalPages !== undefined && page >= totalPages ? null : String(page + 1),
    ...(totalPages !== undefined ? { totalPages } : {}),
  });
  if (first.customers.length === 0) return;
  yield pageOf(startPage, first.customers);
  // Without a total, one page past the bound: a full page there proves the list runs past it.
  const lastPage = totalPages ?? maxPages + 1;
  function* requests() {
    for (let page = startPage + 1; page <= lastPage; page++) yield () => fetchPage(page);
  }
  let page = startPage;
  for await (const result of readAhead(requests(), inFlight, options.signal)) {
    page++;
    if (result.customers.length === 0) return;
    if (page > maxPages) throw pageBoundError('customers/all', maxPages);
    yield pageOf(page, result.customers);
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
  options: { signal?: AbortSignal } = {},
): AsyncGenerator<LoyaltyPage> {
  const lookups = emails.map((email) => async () => ({ email, customer: await lookupCustomer(client, email) }));
  let page = { customers: [] as unknown[], missing: [] as string[] };
  let seq = 0;
  let done = 0;
  for await (const { email, customer } of readAhead(lookups, inFlight, options.signal)) {
    done++;
    if (customer === null) page.missing.push(email);
    else page.customers.push(customer);
    if (page.customers.length + page.missing.length >= LOYALTY_PAGE_SIZE || done === emails.length) {
      seq++;
      yield { seq, ...page, cursor: null, nextCursor: null };
      page = { customers: [], missing: [] };
    }
  }
}

const ANNIVERSARY_FIELDS = ['anniversary_year', 'anniversary_month', 'anniversary_day'] as const;

/** The anniversary as Yotpo wrote it (numbers or numeric strings); the mapping reads the values. */
export type Anniversary = Partial<Record<(typeof ANNIVERSARY_FIELDS)[number], unknown>>;

function anniversaryFields(holder: Record<string, unknown>): Anniversary | undefined {
  const found: Anniversary = {};
  for (const field of ANNIVERSARY_FIELDS) {
    const value = holder[field];
    if (value !== undefined && value !== null && value !== '') found[field] = value;
  }
  return Object.keys(found).length > 0 ? found : undefined;
}

/** The fields at the root, or under one wrapping key (the shape is unconfirmed). */
export function readAnniversary(body: Record<string, unknown>): Anniversary | undefined {
  const atRoot = anniversaryFields(body);
  if (atRoot) return atRoot;
  for (const value of Object.values(body)) {
    if (isJsonObject(value)) {
      const wrapped = anniversaryFields(value);
      if (wrapped) return wrapped;
    }
  }
  return undefined;
}

/** `GET /api/v2/customer_anniversary?customer_email=` (`--with-anniversary`): undefined when none (404). */
export async function anniversaryOf(client: ApiClient, email: string): Promise<Anniversary | undefined> {
  const response = await client.request({
    path: '/api/v2/customer_anniversary',
    searchParams: { customer_email: email },
    passStatuses: [404],
  });
  if (response.status === 404) return undefined;
  if (response.status !== 200 || !isJsonObject(response.body)) throw client.unexpected(response, 'anniversary lookup');
  return readAnniversary(response.body);
}

/**
 * `--with-anniversary`: the pages as they come, each customer with the anniversary endpoint's
 * fields over its own (the endpoint wins where both have one). One lookup per customer with an
 * email, `inFlight` at once across page boundaries, within the client's rate limit.
 */
export async function* withAnniversaries(
  client: ApiClient,
  pages: AsyncIterable<LoyaltyPage>,
  options: { inFlight: number; signal?: AbortSignal },
): AsyncGenerator<LoyaltyPage> {
  interface Looked {
    page: LoyaltyPage;
    /** The customer's position in its page; -1 for a page without customers. */
    index: number;
    customer?: unknown;
  }
  const enrich = async (customer: unknown): Promise<unknown> => {
    const email = isJsonObject(customer) ? normaliseEmail(customer.email) : undefined;
    const anniversary = email ? await anniversaryOf(client, email) : undefined;
    return anniversary ? { ...(customer as Record<string, unknown>), ...anniversary } : customer;
  };
  async function* lookups(): AsyncGenerator<() => Promise<Looked>> {
    for await (const page of pages) {
      if (page.customers.length === 0) yield async () => ({ page, index: -1 });
      for (const [index, customer] of page.customers.entries()) yield async () => ({ page, index, customer: await enrich(customer) });
    }
  }
  let customers: unknown[] = [];
  for await (const looked of readAhead(lookups(), options.inFlight, options.signal)) {
    if (looked.index >= 0) customers.push(looked.customer);
    if (looked.index === looked.page.customers.length - 1 || looked.index === -1) {
      yield { ...looked.page, customers };
      customers = [];
    }
  }
}
