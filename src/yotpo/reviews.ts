// The Yotpo Reviews API (SPEC §3): a utoken from the app key and secret, shared by every request
// and renewed by one request when a data call finds it stale; the review list by numbered pages,
// several in flight at once, checked as it is read.

import type { ReviewsConfig } from '../config.js';
import { IdSet } from '../core/compact.js';
import { ApiError, AuthError } from '../errors.js';
import type { ApiClient, ApiResponse } from '../io/http.js';
import { readAhead } from '../io/read-ahead.js';
import { registerSecret } from '../io/redact.js';

export const REVIEWS_PAGE_SIZE = 100;
/** Far above any real account (10 million reviews): past it the list is not trusted. */
export const REVIEWS_MAX_PAGES = 100_000;
/** An empty page followed by a full one is asked again this many times before the run stops. */
export const REVIEWS_HOLE_RETRIES = 3;
/** A page whose token keeps going stale is given up after this many renewals. */
const MAX_RENEWALS_PER_REQUEST = 32;

/** One utoken and what is known of it: whether the API has honoured it, and who is using it. */
interface Grant {
  token: Promise<string>;
  honoured: boolean;
  inFlight: number;
  /** Woken when the token is honoured or nobody is using it any more. */
  waiters: (() => void)[];
}

function wake(grant: Grant): void {
  for (const waiter of grant.waiters.splice(0)) waiter();
}

function isJsonObject(body: unknown): body is Record<string, unknown> {
  return typeof body === 'object' && body !== null && !Array.isArray(body);
}

export class ReviewsApi {
  private grant: Grant | undefined;

  constructor(
    private readonly client: ApiClient,
    private readonly config: ReviewsConfig,
  ) {}

  /** The current grant, or a new one when there is none (one token request for all callers). */
  private currentGrant(): Grant {
    return this.grant ?? this.renew();
  }

  private renew(): Grant {
    const grant: Grant = { token: this.requestToken(), honoured: false, inFlight: 0, waiters: [] };
    this.grant = grant;
    grant.token.catch(() => {
      if (this.grant === grant) this.grant = undefined; // the next caller asks again
    });
    return grant;
  }

  private async requestToken(): Promise<string> {
    const response = await this.client.request({
      method: 'POST',
      path: '/oauth/token',
      json: { client_id: this.config.appKey, client_secret: this.config.secret, grant_type: 'client_credentials' },
      passStatuses: [400, 404],
    });
    // `invalid_client` and "Couldn't find Account with app_key" (404) refuse the app key and
    // secret; the same statuses in a body that is not an API's JSON are another server answering.
    const refused =
      isJsonObject(response.body) &&
      (response.status === 404 || (response.status === 400 && /^(invalid|unauthorized)_client$/.test(String(response.body.error))));
    if (refused) throw new AuthError('reviews', response.status);
    const token = isJsonObject(response.body) ? response.body.access_token : undefined;
    if (response.status !== 200 || typeof token !== 'string' || token === '') {
      throw this.client.unexpected(response, 'token request');
    }
    registerSecret(token);
    return token;
  }

  /** Checks the credentials (doctor): a token is obtained or the error says why not. */
  async authenticate(): Promise<void> {
    await this.currentGrant().token;
  }

  /**
   * A data request with the current utoken. A 401 on a token older than the current one asks
   * again with the current one; on the current one, it renews the token (one request, shared)
   * once the API has honoured it, and is a credential failure when a token just issued is refused
   * before any request with it succeeded.
   */
  private async withToken(send: (token: string) => Promise<ApiResponse>): Promise<ApiResponse> {
    let grant = this.currentGrant();
    for (let renewals = 0; ; ) {
      const token = await grant.token;
      grant.inFlight++;
      try {
        const response = await send(token);
        grant.honoured = true;
        return response;
      } catch (error) {
        if (!(error instanceof AuthError) || error.status !== 401) throw error;
      } finally {
        grant.inFlight--;
        if (grant.honoured || grant.inFlight === 0) wake(grant);
      }
      if (this.grant === grant && !grant.honoured && grant.inFlight > 0) {
        // Another request with this token may yet succeed (answers can come back out of order).
        await new Promise<void>((resolve) => grant.waiters.push(resolve));
      }
      if (this.grant === grant) {
        if (!grant.honoured) throw new AuthError('reviews', 401);
        if (++renewals > MAX_RENEWALS_PER_REQUEST) {
          throw new ApiError('reviews', `every new token was refused within ${MAX_RENEWALS_PER_REQUEST} renewals`, 401);
        }
        grant = this.renew();
      } else {
        grant = this.currentGrant();
      }
    }
  }

  /** One page of reviews (1-based). */
  async page(page: number, sinceUpdatedAt?: string): Promise<unknown[]> {
    const searchParams: Record<string, string | number | boolean> = { count: REVIEWS_PAGE_SIZE, page, deleted: true };
    if (sinceUpdatedAt) searchParams.since_updated_at = sinceUpdatedAt;
    const path = `/v1/apps/${encodeURIComponent(this.config.appKey)}/reviews`;
    const response = await this.withToken((utoken) => this.client.request({ path, searchParams: { utoken, ...searchParams } }));
    if (response.status !== 200) throw this.client.unexpected(response, `review page ${page}`);
    const reviews = isJsonObject(response.body) ? response.body.reviews : undefined;
    if (!Array.isArray(reviews)) throw this.client.unexpected(response, `review page ${page} has no reviews array`);
    return reviews;
  }
}

export interface ReviewPage {
  page: number;
  reviews: unknown[];
}

export interface ReviewPagesOptions {
  /** `since_updated_at` on every page. */
  sinceUpdatedAt?: string;
  /** Told when the list is ended early for a reason that does not fail the run. */
  onWarning?: (text: string) => void;
  /** Default REVIEWS_MAX_PAGES. */
  maxPages?: number;
  /** Stops starting page requests. */
  signal?: AbortSignal;
}

function reviewId(review: unknown): number | string | undefined {
  const id = isJsonObject(review) ? review.id : undefined;
  return typeof id === 'number' || typeof id === 'string' ? id : undefined;
}

/**
 * Every page in order, `inFlight` requested at once (the client's rate limit paces them), checked
 * as it is read (SPEC §3): the list ends at an empty page only when the page after it is empty
 * too; an empty page followed by a full one is asked again (REVIEWS_HOLE_RETRIES times), then the
 * run stops rather than aggregate part of the list; a page whose reviews were all seen before ends
 * the list with a warning; past `maxPages` the run stops.
 */
export async function* reviewPages(api: ReviewsApi, inFlight: number, options: ReviewPagesOptions = {}): AsyncGenerator<ReviewPage> {
  const maxPages = options.maxPages ?? REVIEWS_MAX_PAGES;
  const fetch = (page: number) => api.page(page, options.sinceUpdatedAt);
  function* requests() {
    // One past the bound: a full page there is what proves the list runs past it.
    for (let page = 1; page <= maxPages + 1; page++) yield () => fetch(page);
  }
  const seen = new IdSet();
  /** True when every review of the page was seen on an earlier page. */
  const allSeen = (reviews: unknown[]) => {
    let fresh = false;
    for (const review of reviews) {
      const id = reviewId(review);
      if (id === undefined || seen.add(id)) fresh = true;
    }
    return !fresh;
  };
  let page = 0;
  let held: number | undefined; // an empty page waiting for the page after it
  for await (const reviews of readAhead(requests(), inFlight, options.signal)) {
    page++;
    if (page > maxPages) {
      if (reviews.length === 0) return;
      throw new ApiError('reviews', `the reviews list goes on past ${maxPages} pages of ${REVIEWS_PAGE_SIZE}; it is not trusted`, null);
    }
    if (reviews.length === 0) {
      if (held !== undefined) return; // two empty pages in a row: the end
      held = page;
      continue;
    }
    if (held !== undefined) {
      const filled = await askAgain(held, fetch);
      allSeen(filled); // its ids count as seen; duplicates among them are the aggregator's to drop
      yield { page: held, reviews: filled };
      held = undefined;
    }
    if (allSeen(reviews)) {
      options.onWarning?.(`review page ${page} repeats reviews already read; the list is taken to end there`);
      return;
    }
    yield { page, reviews };
  }
}

/** An empty page with a full one after it: asked again, or the run stops (a hole in the list). */
async function askAgain(page: number, fetch: (page: number) => Promise<unknown[]>): Promise<unknown[]> {
  for (let ask = 1; ask <= REVIEWS_HOLE_RETRIES; ask++) {
    const reviews = await fetch(page);
    if (reviews.length > 0) return reviews;
  }
  throw new ApiError(
    'reviews',
    `hole in the reviews list: page ${page} stays empty (asked ${REVIEWS_HOLE_RETRIES + 1} times) while page ${page + 1} has reviews; the aggregates are not computed from part of the list`,
    null,
  );
}
