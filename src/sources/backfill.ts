// The backfill's sources, composed: review pages become compact per-reviewer aggregates while the
// loyalty listing is read into a disk spill; once the aggregates are complete, each loyalty
// customer is sent once with its review attributes, then the reviewers who are not loyalty
// customers, from a snapshot the checkpoint points to (so a resumed run pages no reviews again).

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { limitReached, listed, activeSince, reviewedSince } from '../core/predicates.js';
import { ReviewAggregator } from '../core/review-aggregates.js';
import { StringIndex } from '../core/compact.js';
import {
  mapAttributes,
  mapUser,
  normaliseEmail,
  toInsiderUser,
  type FieldWarnings,
  type FlatAttributes,
  type InsiderUser,
} from '../core/transform.js';
import { ApiError, StoreError } from '../errors.js';
import { holdUntil, privateTempDir, removeTempDir, writeJsonl } from '../io/files.js';
import { readLines } from '../io/lines.js';
import { readAhead } from '../io/read-ahead.js';
import type { BackfillOptions } from '../options.js';
import type { Item } from '../pipeline/items.js';
import type { RunContext } from '../pipeline/run-pipeline.js';
import type { BackfillCheckpoint, BackfillTag } from '../state/checkpoint.js';
import { userAudit } from './audit-rows.js';
import {
  allCustomerPages,
  anniversaryOf,
  emailLookupPages,
  LOYALTY_PAGE_SIZE,
  recentCustomerPages,
  type LoyaltyPage,
} from '../yotpo/loyalty.js';
import { ReviewsApi, reviewPages } from '../yotpo/reviews.js';
import type { EmailList } from './email-list.js';

export interface BackfillPlan {
  options: BackfillOptions;
  /** Absent for a run that keeps no checkpoint (dry run, --emails). */
  checkpoint: BackfillCheckpoint | undefined;
  sinceMs: number | undefined;
  emailList: EmailList | undefined;
}

export async function* backfillSource(ctx: RunContext, plan: BackfillPlan): AsyncGenerator<Item<BackfillTag>> {
  const { options, checkpoint, sinceMs, emailList } = plan;
  const phase = checkpoint?.state.phase ?? (options.loyalty ? 'loyalty' : 'reviewers');
  const snapshotSaved = checkpoint?.state.reviewers_file !== undefined && phase === 'reviewers';
  const aggregator = options.reviews && !snapshotSaved ? new ReviewAggregator() : undefined;
  const reviews = aggregator ? aggregateReviews(ctx, aggregator, options) : Promise.resolve();
  reviews.catch(() => undefined); // awaited below
  ctx.progress({ phase: aggregator ? (phase === 'loyalty' ? 'held' : 'reviews') : phase === 'loyalty' ? 'sending' : 'reviewers' });
  const transform = options.birthdayPlaceholderYear ? { placeholderYear: options.birthdayPlaceholderYear } : {};
  const read = () => ctx.summary.users.read;

  if (phase === 'loyalty' && ctx.clients.loyalty) {
    if (emailList && emailList.invalid > 0)
      yield { kind: 'skip', unit: 'user', reason: 'invalid email in --emails', count: emailList.invalid };
    const seen = new StringIndex();
    let pagesSeen = 0;
    let complete = true;
    let held = 0;
    let reviewsDone = false;
    // Once the aggregates are complete nothing is held any more: the spill is being sent.
    const onHeld = (page: LoyaltyPage) => ctx.progress({ held: reviewsDone ? 0 : (held += page.customers.length) });
    reviews.then(
      () => {
        reviewsDone = true;
        ctx.progress({ held: 0 });
      },
      () => undefined,
    );
    for await (const page of holdUntil(loyaltyListing(ctx, plan), reviews, onHeld)) {
      pagesSeen++;
      const seq = (checkpoint?.pagesBefore ?? 0) + page.seq;
      for (const email of page.missing ?? []) {
        if (!aggregator || aggregator.includedCount(email) === 0)
          yield { kind: 'skip', unit: 'user', reason: 'not a loyalty member', audit: userAudit(email, {}, 'loyalty') };
      }
      const anniversaries = options.withAnniversary ? await anniversariesOf(ctx, page.customers, options.pagesInFlight) : [];
      let pageComplete = true;
      for (const [position, customer] of page.customers.entries()) {
        if (limitReached(read(), options.limit) || ctx.signal.aborted) {
          pageComplete = false;
          break;
        }
        const record = (customer && typeof customer === 'object' ? customer : {}) as Record<string, unknown>;
        const email = normaliseEmail(record.email);
        if (!email) {
          const raw = typeof record.email === 'string' ? record.email.trim() : '';
          yield {
            kind: 'skip',
            unit: 'user',
            reason: raw ? 'invalid email' : 'no email',
            audit: userAudit(raw, mapAttributes([customer], undefined, transform, new Map()), 'loyalty'),
          };
          continue;
        }
        if (seen.find(email) >= 0) {
          yield { kind: 'skip', unit: 'user', reason: 'listed twice by Yotpo', audit: userAudit(email, {}, 'loyalty') };
          continue;
        }
        seen.intern(email);
        aggregator?.markMatched(email);
        if (sinceMs !== undefined && !activeSince(record, sinceMs, aggregator?.lastUpdatedMs(email) ?? -Infinity)) {
          yield { kind: 'skip', unit: 'user', reason: 'not active since --since', audit: userAudit(email, {}, 'loyalty') };
          continue;
        }
        const sources = anniversaries[position] ? [anniversaries[position], customer] : [customer];
        const omitted: FieldWarnings = new Map();
        const user = mapUser(email, sources, aggregator?.attributesFor(email, omitted), transform, omitted);
        mergeWarnings(ctx.warnings, omitted);
        checkpoint?.addUser(seq);
        yield { kind: 'send', user, tag: { page: seq }, audit: userAudit(email, user, 'loyalty', omitted) };
      }
      if (pageComplete) checkpoint?.pageRead(seq, page.nextCursor);
      ctx.progress(page.totalPages ? { customersTotal: (page.totalPages - (checkpoint?.pagesBefore ?? 0)) * LOYALTY_PAGE_SIZE } : {});
      if (!pageComplete) {
        complete = false;
        break;
      }
    }
    // A listing with no page at all has no last page to confirm: the phase ends here.
    if (complete && pagesSeen === 0) checkpoint?.loyaltyDone();
    if (!complete) return;
  }
  await reviews;
  if (!options.reviews || limitReached(read(), options.limit) || ctx.signal.aborted) return;
  yield* reviewerOnlyUsers(ctx, plan, aggregator);
  ctx.progress({ phase: 'finishing' });
}

/** The loyalty listing this run reads: --emails lookups, the numbered `all` listing, or `recent`. */
function loyaltyListing(ctx: RunContext, { options, checkpoint, emailList, sinceMs }: BackfillPlan): AsyncGenerator<LoyaltyPage> {
  const client = ctx.clients.loyalty!;
  if (emailList) return emailLookupPages(client, emailList.emails, options.pagesInFlight);
  const cursor = checkpoint?.state.cursor ?? null;
  const lastSeenAt = sinceMs === undefined ? undefined : new Date(sinceMs).toISOString().slice(0, 10);
  if (options.loyaltyEndpoint === 'all')
    return allCustomerPages(client, options.pagesInFlight, cursor ? Number(cursor) : 1, { lastSeenAt });
  return cursor ? resumedAt(recentCustomerPages(client, cursor, {}), cursor) : recentCustomerPages(client, null, {});
}

/** A saved cursor Yotpo no longer accepts would stop every resume the same way: say how to get out. */
async function* resumedAt(pages: AsyncGenerator<LoyaltyPage>, cursor: string): AsyncGenerator<LoyaltyPage> {
  let first = true;
  try {
    for await (const page of pages) {
      first = false;
      yield page;
    }
  } catch (error) {
    const status = (error as { status?: unknown }).status;
    if (first && error instanceof ApiError && typeof status === 'number' && status >= 400 && status < 500) {
      throw new ApiError(
        'loyalty',
        `Yotpo refused the saved cursor ${cursor} (HTTP ${status}); the checkpoint cannot be resumed: run again with --fresh`,
        status,
      );
    }
    throw error;
  }
}

/** Pages the reviews (several in flight) into the aggregator; resolves when the list is complete. */
async function aggregateReviews(ctx: RunContext, aggregator: ReviewAggregator, options: BackfillOptions): Promise<void> {
  const api = new ReviewsApi(ctx.clients.reviews!, ctx.config.reviews!);
  let pages = 0;
  let reviews = 0;
  for await (const page of reviewPages(api, options.pagesInFlight, {
    signal: ctx.signal,
    onWarning: (text) => ctx.summary.warnings.push(text),
  })) {
    pages++;
    reviews += page.reviews.length;
    for (const review of page.reviews) aggregator.add(review);
    ctx.progress({ reviewPages: pages, reviews });
  }
  ctx.progress({ reviewsDone: true });
  ctx.summary.reviews = {
    read: reviews,
    included: aggregator.verdicts.included,
    reviewers: aggregator.reviewers,
    pages,
    duplicates: aggregator.verdicts.duplicate,
    deleted: aggregator.verdicts.deleted,
    without_email: aggregator.verdicts['no email'],
  };
}

/** `--with-anniversary`: each customer's anniversary record, looked up within the loyalty rate limit. */
async function anniversariesOf(ctx: RunContext, customers: readonly unknown[], inFlight: number): Promise<(object | undefined)[]> {
  const client = ctx.clients.loyalty!;
  const lookups = customers.map((customer) => () => {
    const email = normaliseEmail((customer as { email?: unknown } | null)?.email);
    return email ? anniversaryOf(client, email) : Promise.resolve(undefined);
  });
  const found: (object | undefined)[] = [];
  for await (const anniversary of readAhead(lookups, inFlight, ctx.signal)) found.push(anniversary);
  return found;
}

/** Reviewers who are not loyalty customers, with their review attributes alone, from the snapshot. */
async function* reviewerOnlyUsers(
  ctx: RunContext,
  { options, checkpoint, sinceMs, emailList }: BackfillPlan,
  aggregator: ReviewAggregator | undefined,
): AsyncGenerator<Item<BackfillTag>> {
  let snapshot = checkpoint?.state.reviewers_file ? checkpoint.snapshotPath : undefined;
  let tempDir: string | undefined;
  try {
    if (!snapshot) {
      if (!aggregator) return;
      const path = checkpoint ? checkpoint.snapshotPath : join((tempDir = privateTempDir()), 'reviewers.jsonl');
      const list = emailList ? new Set(emailList.emails) : undefined;
      await writeJsonl(
        path,
        (function* () {
          for (const email of aggregator.unmatched()) {
            if (aggregator.includedCount(email) > 0 && listed(email, list) && reviewedSince(aggregator.lastUpdatedMs(email), sinceMs)) {
              yield { email, attributes: aggregator.attributesFor(email, ctx.warnings) };
            }
          }
        })(),
      );
      checkpoint?.reviewersListed(path);
      snapshot = path;
    } else if (!existsSync(snapshot)) {
      throw new StoreError(`the reviewer snapshot ${snapshot} named by the checkpoint is gone; run again with --fresh`);
    }
    ctx.progress({ phase: 'reviewers' });
    for await (const { lineNumber, text } of readLines(snapshot)) {
      if (ctx.signal.aborted || limitReached(ctx.summary.users.read, options.limit)) return;
      const position = lineNumber - 1;
      if (position % 100 === 0) ctx.progress({});
      if (position < (checkpoint?.reviewersBefore ?? 0) || text === '') continue;
      const { email, attributes } = JSON.parse(text) as { email: string; attributes: FlatAttributes };
      const user: InsiderUser = toInsiderUser(email, attributes);
      yield { kind: 'send', user, tag: { reviewer: position }, audit: userAudit(email, user, 'reviewer') };
    }
  } finally {
    if (tempDir) removeTempDir(tempDir);
  }
}

function mergeWarnings(into: FieldWarnings, from: FieldWarnings): void {
  for (const [key, count] of from) into.set(key, (into.get(key) ?? 0) + count);
}
