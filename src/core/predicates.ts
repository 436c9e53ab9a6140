// The small rules that decide which users a backfill sends: --since, --limit and --emails. Pure;
// the field names they read come from the mapping table.

import { CUSTOMER_LAST_SEEN_FIELD } from './table.js';
import { toEpochMs } from './values.js';

/**
 * `--since`: a loyalty customer whose latest loyalty activity is on or after the date (one without
 * `last_seen_at` is sent: nothing says it is stale), or who has a review updated since.
 */
export function activeSince(customer: Record<string, unknown>, sinceMs: number, lastReviewUpdateMs: number): boolean {
  const lastSeen = toEpochMs(customer[CUSTOMER_LAST_SEEN_FIELD]);
  return lastSeen === undefined || lastSeen >= sinceMs || lastReviewUpdateMs >= sinceMs;
}

/** `--since` for a reviewer who is not a loyalty customer: a review updated on or after the date. */
export function reviewedSince(lastReviewUpdateMs: number, sinceMs: number | undefined): boolean {
  return sinceMs === undefined || lastReviewUpdateMs >= sinceMs;
}

/** `--limit n`: true once n users were read. */
export function limitReached(read: number, limit: number | undefined): boolean {
  return limit !== undefined && read >= limit;
}

/** `--emails`: a user is in scope when no list was given, or the list holds its address. */
export function listed(email: string, list: ReadonlySet<string> | undefined): boolean {
  return list === undefined || list.has(email);
}
