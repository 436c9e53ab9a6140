// Read-only probes of the Yotpo APIs for `doctor` (SPEC §3): do the credentials work, can the API
// be reached, and which loyalty listing does the account answer. Nothing is written anywhere.

import type { ReviewsConfig } from '../config.js';
import { ApiError, AuthError, UnavailableError } from '../errors.js';
import type { ApiClient, ApiResponse } from '../io/http.js';
import { LAST_SEEN_FLOOR, readCustomerPage } from './loyalty.js';
import { ReviewsApi } from './reviews.js';

export type ProbeStatus = 'ok' | 'rejected' | 'unreachable' | 'unexpected';

export interface ProbeResult {
  status: ProbeStatus;
  detail: string;
  listings?: { recent: ProbeStatus; all: ProbeStatus };
}

/** An address no store has (a reserved top-level domain): with valid credentials, a 404. */
export const PROBE_EMAIL = 'yotpo-insider-doctor-probe@example.invalid';

/** What a failed request says about the API: refused, out of reach, or answering something else. */
function failureOf(error: unknown): ProbeResult {
  const detail = error instanceof Error ? error.message : String(error);
  if (error instanceof AuthError) return { status: 'rejected', detail };
  // No status: no answer at all (refused, timed out, a name that does not resolve); a status
  // after every retry (5xx, 429) is an answer, just not one that can be used.
  if (error instanceof UnavailableError || error instanceof ApiError) {
    return { status: error.status === null ? 'unreachable' : 'unexpected', detail };
  }
  throw error;
}

/** A body that is JSON (an API's answer), not an HTML page or text from some other server. */
function isJson(body: unknown): boolean {
  return typeof body === 'object' && body !== null;
}

function describe(response: ApiResponse): string {
  return isJson(response.body) ? `HTTP ${response.status}` : `HTTP ${response.status} with a body that is not JSON`;
}

async function probeListing(client: ApiClient, path: string, searchParams: Record<string, string | number>): Promise<ProbeStatus> {
  let response: ApiResponse;
  try {
    response = await client.request({ path, searchParams });
  } catch (error) {
    return failureOf(error).status;
  }
  if (response.status !== 200 || !isJson(response.body)) return 'unexpected';
  try {
    readCustomerPage(response.body);
    return 'ok';
  } catch {
    return 'unexpected';
  }
}

/**
 * `GET /api/v2/customers?customer_email=<an address no store has>`: 404 is an answer from an account
 * that let us in (ok), 401/403 rejected; then one page of each listing says which the account answers.
 */
export async function probeLoyalty(client: ApiClient): Promise<ProbeResult> {
  let response: ApiResponse;
  try {
    response = await client.request({ path: '/api/v2/customers', searchParams: { customer_email: PROBE_EMAIL }, passStatuses: [404] });
  } catch (error) {
    return failureOf(error);
  }
  if (!isJson(response.body) || (response.status !== 404 && response.status !== 200)) {
    return { status: 'unexpected', detail: `the customer lookup answered ${describe(response)}, not Yotpo's JSON` };
  }
  const listings = {
    recent: await probeListing(client, '/api/v2/customers/recent', { per_page: 1 }),
    all: await probeListing(client, '/api/v2/customers/all', { page: 1, per_page: 1, last_seen_at: LAST_SEEN_FLOOR }),
  };
  return { status: 'ok', detail: `credentials accepted (a lookup of an unknown address answered HTTP ${response.status})`, listings };
}

/** `POST /oauth/token` with the app key and secret: a token is ok, a refusal is rejected. */
export async function probeReviews(client: ApiClient, config: ReviewsConfig): Promise<ProbeResult> {
  try {
    await new ReviewsApi(client, config).authenticate();
    return { status: 'ok', detail: 'a utoken was issued for the app key and secret' };
  } catch (error) {
    return failureOf(error);
  }
}
