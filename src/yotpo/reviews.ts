// The Yotpo Reviews API (SPEC §3): a utoken from the app key and secret, cached for the run and
// renewed once on a 401; the review list by numbered pages, several in flight at once.

import type { ReviewsConfig } from '../config.js';
import { AuthError } from '../errors.js';
import type { ApiClient } from '../io/http.js';
import { registerSecret } from '../io/redact.js';

export const REVIEWS_PAGE_SIZE = 100;

export class ReviewsApi {
  private token: Promise<string> | undefined;

  constructor(
    private readonly client: ApiClient,
    private readonly config: ReviewsConfig,
  ) {}

  /** The cached utoken; `stale` names a token a 401 refused, so that one refresh serves all callers. */
  private async utoken(stale?: string): Promise<string> {
    const current = this.token;
    if (current && (stale === undefined || (await current.catch(() => undefined)) !== stale)) return current;
    const fresh = this.requestToken();
    this.token = fresh;
    fresh.catch(() => {
      if (this.token === fresh) this.token = undefined;
    });
    return fresh;
  }

  private async requestToken(): Promise<string> {
    const response = await this.client.request({
      method: 'POST',
      path: '/oauth/token',
      json: { client_id: this.config.appKey, client_secret: this.config.secret, grant_type: 'client_credentials' },
    });
    const token = (response.body as { access_token?: unknown } | undefined)?.access_token;
    if (response.status !== 200 || typeof token !== 'string' || token === '') {
      throw this.client.unexpected(response, 'token request');
    }
    registerSecret(token);
    return token;
  }

  /** Checks the credentials (doctor): a token is obtained or the error says why not. */
  async authenticate(): Promise<void> {
    await this.utoken();
  }

  /** One page of reviews (1-based); on a 401 the token is renewed once and the page asked again. */
  async page(page: number, sinceUpdatedAt?: string): Promise<unknown[]> {
    const searchParams: Record<string, string | number | boolean> = { count: REVIEWS_PAGE_SIZE, page, deleted: true };
    if (sinceUpdatedAt) searchParams.since_updated_at = sinceUpdatedAt;
    const path = `/v1/apps/${encodeURIComponent(this.config.appKey)}/reviews`;
    let token = await this.utoken();
    let response;
    try {
      response = await this.client.request({ path, searchParams: { utoken: token, ...searchParams } });
    } catch (error) {
      if (!(error instanceof AuthError) || error.status !== 401) throw error;
      token = await this.utoken(token);
      response = await this.client.request({ path, searchParams: { utoken: token, ...searchParams } });
    }
    if (response.status !== 200) throw this.client.unexpected(response, `review page ${page}`);
    const reviews = (response.body as { reviews?: unknown } | undefined)?.reviews;
    if (!Array.isArray(reviews)) throw this.client.unexpected(response, `review page ${page} has no reviews array`);
    return reviews;
  }
}

export interface ReviewPage {
  page: number;
  reviews: unknown[];
}

/**
 * Every page in order, `inFlight` requested at once (the client's rate limit paces them); the list
 * ends at the first empty page.
 */
export async function* reviewPages(api: ReviewsApi, inFlight: number): AsyncGenerator<ReviewPage> {
  const window: Promise<unknown[]>[] = [];
  let nextToFetch = 1;
  for (let page = 1; ; page++) {
    while (window.length < inFlight) {
      const pending = api.page(nextToFetch++);
      pending.catch(() => undefined); // awaited in turn below
      window.push(pending);
    }
    const reviews = await window.shift()!;
    if (reviews.length === 0) return;
    yield { page, reviews };
  }
}
