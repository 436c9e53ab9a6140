// `yotpo-insider backfill`: Yotpo loyalty customers and review aggregates → Insider users.
//
// Reviews are paged (several pages in flight) into compact per-reviewer aggregates while loyalty
// pages are fetched into a disk spill; once the aggregates are complete, loyalty users are sent,
// each once with its review attributes, then the reviewers who are not loyalty customers.

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { USER_COLUMNS, userRow } from '../io/csv.js';
import { loadConfig } from '../config.js';
import { InterruptedError, UsageError, type ApiName } from '../errors.js';
import { ReviewAggregator } from '../core/review-aggregates.js';
import {
  mapAttributes,
  mapUser,
  flattenAttributes,
  normaliseEmail,
  toInsiderUser,
  type FieldWarnings,
  type FlatAttributes,
  type InsiderUser,
} from '../core/transform.js';
import { toEpochMs } from '../core/values.js';
import { BackfillCheckpoint, MatchedLog, type BackfillTag } from '../pipeline/backfill-checkpoint.js';
import { Delivery } from '../pipeline/delivery.js';
import { Progress, type ProgressFigures } from '../pipeline/progress.js';
import { Reporter, type Io } from '../pipeline/report.js';
import { auditFor, auditStatus, closeOutputs, COMMON_DEFAULTS, deliverySettings, failedFileFor, finishRun, makeClients, type CommonOptions, type RunControl } from '../pipeline/run.js';
import { assertWritable, holdUntil, prefetch, privateTempDir, removeTempDir, writeJsonl } from '../io/files.js';
import { addReason, newSummary, type RunSummary } from '../pipeline/summary.js';
import { readEmailList } from '../sources/email-list.js';
import { allCustomerPages, emailLookupPages, LOYALTY_PAGE_SIZE, recentCustomerPages, type LoyaltyPage } from '../yotpo/loyalty.js';
import { readLines } from '../io/lines.js';
import { ReviewsApi, reviewPages } from '../yotpo/reviews.js';

export interface BackfillOptions extends CommonOptions {
  since?: string;
  /** `--emails <file>`: backfill just these customers, looked up one by one (no checkpoint). */
  emails?: string;
  limit?: number;
  reviews: boolean;
  loyalty: boolean;
  fresh: boolean;
  loyaltyRps: number;
  reviewsRps: number;
  birthdayPlaceholderYear?: number;
  loyaltyEndpoint: 'recent' | 'all';
  /** Review pages requested at once (and loyalty pages, with the `all` listing). */
  pagesInFlight: number;
}

export const BACKFILL_DEFAULTS: BackfillOptions = {
  ...COMMON_DEFAULTS,
  reviews: true,
  loyalty: true,
  fresh: false,
  loyaltyRps: 5,
  reviewsRps: 20,
  loyaltyEndpoint: 'recent',
  pagesInFlight: 8,
};


export async function runBackfill(
  partial: Partial<BackfillOptions>,
  io: Io,
  control: RunControl = {},
): Promise<RunSummary> {
  const options: BackfillOptions = { ...BACKFILL_DEFAULTS, ...partial };
  const startedAt = Date.now();
  const reporter = new Reporter(io, { quiet: options.quiet, verbose: options.verbose });
  const summary = newSummary('backfill', options.dryRun);
  if (!options.loyalty && !options.reviews) throw new UsageError('--no-loyalty and --no-reviews leave nothing to backfill');
  const sinceMs = options.since === undefined ? undefined : toEpochMs(options.since);
  if (options.since !== undefined && sinceMs === undefined) {
    throw new UsageError(`--since ${options.since} is not a date (use e.g. 2026-01-31 or 2026-01-31T12:00:00Z)`);
  }

  const needs: ApiName[] = [];
  if (options.loyalty) needs.push('loyalty');
  if (options.reviews) needs.push('reviews');
  if (!options.dryRun) needs.push('insider');
  const config = loadConfig(needs, io);

  // Stopped when the run fails elsewhere, so review pages (and their retries) are not fetched for nothing.
  const reviewsStop = new AbortController();
  const clients = makeClients(
    config,
    options,
    { ...(options.loyalty ? { loyalty: options.loyaltyRps } : {}), ...(options.reviews ? { reviews: options.reviewsRps } : {}) },
    reporter,
    {
      stopLoyalty: control.signal,
      stopReviews: control.signal ? AbortSignal.any([control.signal, reviewsStop.signal]) : reviewsStop.signal,
    },
  );
  const statePath = resolve(io.cwd, options.state);
  // A subset run (--emails) neither resumes nor moves the full backfill's checkpoint.
  const checkpointing = !options.dryRun && options.emails === undefined;
  summary.state_file = checkpointing ? statePath : null;
  if (checkpointing) assertWritable(statePath, 'the state file');
  const emailList = options.emails === undefined ? undefined : await readEmailList(resolve(io.cwd, options.emails));
  const listed = emailList ? new Set(emailList.emails) : undefined;
  const failedFile = failedFileFor(options, io, new Date(startedAt));
  const warnings: FieldWarnings = new Map();
  const audit = auditFor('backfill', options, io, new Date(startedAt), USER_COLUMNS);
  const auditRow = (status: Parameters<typeof userRow>[0], reason: string, email: string, flat: FlatAttributes) =>
    audit?.write(userRow(status, reason, email, flat));

  // Resume: a saved, unfinished backfill with the same scope continues where it was confirmed.
  const checkpoint = new BackfillCheckpoint(
    checkpointing ? statePath : undefined,
    {
      loyalty: options.loyalty,
      reviews: options.reviews,
      since: sinceMs === undefined ? null : new Date(sinceMs).toISOString(),
      endpoint: options.loyaltyEndpoint,
    },
    options.fresh,
  );
  const saved = checkpoint.state;
  if (checkpoint.resumed) {
    summary.resumed = true;
    reporter.info(
      `resuming the backfill saved in ${statePath}: ${saved.pages_confirmed} loyalty page(s) and ${saved.reviewers_confirmed} reviewer(s) already confirmed (--fresh starts over)`,
    );
  }
  // The reviewer snapshot: beside the state file when checkpointing; otherwise in a private
  // temporary folder, removed at the end.
  let snapshotDir: string | undefined;
  const snapshotPath = () => {
    if (checkpointing) return `${statePath}.reviewers.jsonl`;
    snapshotDir = privateTempDir();
    return join(snapshotDir, 'reviewers.jsonl');
  };

  if (options.dryRun) reporter.info('dry run: Yotpo is read and every user is built, batched and checked; nothing is sent to Insider');

  const progress = new Progress(io, {
    quiet: options.quiet,
    records: 'customers',
    reviews: options.reviews,
    recordsTotalKnown: options.loyalty && options.loyaltyEndpoint === 'all' && !options.emails,
  });
  let customersTotal: number | undefined;
  let loyaltyCustomersRead = 0;
  const figures = (): ProgressFigures => ({
    reviewPages: reviewPagesRead,
    reviews: reviewsRead,
    customersRead: loyaltyCustomersRead,
    ...(customersTotal ? { customersTotal } : {}),
    sent: summary.users.sent,
    succeeded: summary.users.succeeded,
    failed: summary.users.failed,
  });

  // A run resumed in the reviewer phase reads its snapshot; the reviews are not paged again.
  const aggregator = options.reviews && !(saved.phase === 'reviewers' && saved.reviewers_file) ? new ReviewAggregator() : undefined;
  let reviewPagesRead = 0;
  let reviewsRead = 0;
  const reviewsApi = clients.reviews && config.reviews ? new ReviewsApi(clients.reviews, config.reviews) : undefined;
  const matchedLog = checkpointing ? new MatchedLog(`${statePath}.matched.txt`, checkpoint.resumed) : undefined;
  const reviewsDone: Promise<void> = (async () => {
    if (!aggregator || !reviewsApi) return;
    for await (const page of reviewPages(reviewsApi, options.pagesInFlight)) {
      if (control.signal?.aborted) throw new InterruptedError();
      if (reviewsStop.signal.aborted) return;
      reviewPagesRead++;
      reviewsRead += page.reviews.length;
      for (const review of page.reviews) aggregator.add(review);
      progress.update(figures());
    }
    // A resumed loyalty phase: the customers of the confirmed pages are reviewers already matched.
    if (matchedLog) for await (const email of matchedLog.listedBefore()) aggregator.markMatched(email);
  })();
  reviewsDone.catch(() => undefined); // observed where it is awaited

  const delivery = new Delivery<BackfillTag>({
    ...deliverySettings(options, clients, failedFile),
    onOutcome: (item, outcome) => {
      if (outcome.status === 'succeeded') summary.users.succeeded++;
      else if (outcome.status === 'failed') summary.users.failed++;
      if (audit) {
        auditRow(auditStatus(outcome), outcome.status === 'failed' ? outcome.error : '', item.user.identifiers.email, flattenAttributes(item.user));
      }
      checkpoint.settle(item.tag);
    },
  });

  const send = async (user: InsiderUser, tag: BackfillTag) => {
    summary.users.sent++;
    await delivery.add(user, tag);
  };
  const skip = (reason: string, email = '', flat: FlatAttributes = {}, count = 1) => {
    summary.users.skipped += count;
    addReason(summary.skipped_reasons, reason, count);
    if (count === 1) auditRow('skipped', reason, email, flat);
  };
  const limitReached = () => options.limit !== undefined && summary.users.read >= options.limit;
  const stopRequested = () => control.signal?.aborted === true;
  const transformOptions = options.birthdayPlaceholderYear ? { placeholderYear: options.birthdayPlaceholderYear } : {};

  let error: unknown;
  try {
    // Phase 1: loyalty customers, held on disk until the review aggregates are complete.
    if (saved.phase === 'loyalty' && clients.loyalty) {
      const loyaltyClient = clients.loyalty;
      if (emailList && emailList.invalid > 0) {
        summary.users.read += emailList.invalid;
        skip('invalid email in --emails', '', {}, emailList.invalid);
      }
      const listing: AsyncGenerator<LoyaltyPage> = emailList
        ? emailLookupPages(loyaltyClient, emailList.emails, options.pagesInFlight)
        : options.loyaltyEndpoint === 'all'
          ? allCustomerPages(loyaltyClient, options.pagesInFlight, saved.cursor ? Number(saved.cursor) : 1)
          : recentCustomerPages(loyaltyClient, saved.cursor);
      const pages = holdUntil<LoyaltyPage>(prefetch(listing, 2), reviewsDone);
      let finished = true;
      for await (const page of pages) {
        // Pages are numbered across runs: a resumed run's first page follows the last confirmed one.
        const seq = checkpoint.pagesBefore + page.seq;
        // --emails: an address Yotpo does not know is not a loyalty member; its reviews (if any)
        // are still sent with the reviewers below.
        for (const email of page.missing ?? []) {
          if (aggregator && aggregator.includedCount(email) > 0) continue;
          summary.users.read++;
          skip('not a loyalty member', email);
        }
        // A page cut short by --limit is never confirmed: a later run starts at it again.
        let pageComplete = true;
        for (const [position, customer] of page.customers.entries()) {
          // Short slices of work: a page response arriving meanwhile is handled at once, so the
          // next page's request (the chain that bounds the run) is not held up behind a transform.
          if (position % 25 === 24) await new Promise((resolve) => setImmediate(resolve));
          if (limitReached()) {
            pageComplete = false;
            break;
          }
          summary.users.read++;
          loyaltyCustomersRead++;
          const record = (customer ?? {}) as Record<string, unknown>;
          const email = normaliseEmail(record.email);
          if (!email) {
            const raw = typeof record.email === 'string' ? record.email.trim() : '';
            skip(raw ? 'invalid email' : 'no email', raw, mapAttributes([customer], undefined, transformOptions, new Map()));
            continue;
          }
          const reviewAttributes = aggregator?.attributesFor(email);
          if (aggregator?.has(email)) {
            matchedLog?.add(email);
            aggregator.markMatched(email);
          }
          if (sinceMs !== undefined && !updatedSince(record, sinceMs) && !(aggregator && aggregator.lastUpdatedMs(email) >= sinceMs)) {
            skip('not updated since --since', email);
            continue;
          }
          checkpoint.addUser(seq);
          await send(mapUser(email, [customer], reviewAttributes, transformOptions, warnings), { page: seq });
        }
        if (pageComplete) checkpoint.pageRead(seq, page.nextCursor);
        await audit?.drained();
        if (page.totalPages) customersTotal = page.totalPages * LOYALTY_PAGE_SIZE;
        progress.update(figures());
        if (limitReached() || stopRequested() || delivery.fatal) {
          finished = false;
          break;
        }
      }
      if (finished) {
        await delivery.finish();
        checkpoint.loyaltyDone();
      }
    }
    await reviewsDone;
    if (stopRequested()) throw new InterruptedError();
    if (delivery.fatal) throw delivery.fatal;

    // Phase 2: reviewers who are not loyalty customers, with their review attributes alone. They
    // are listed once in a snapshot file the state points to, so a resumed run neither pages the
    // reviews again nor needs to know which reviewers the loyalty phase matched.
    if (saved.phase === 'reviewers' && options.reviews && !limitReached()) {
      let snapshot = saved.reviewers_file;
      if (!snapshot) {
        if (!aggregator) throw new Error('review aggregates are missing');
        snapshot = await writeReviewerSnapshot(aggregator, snapshotPath(), (email) =>
          (!listed || listed.has(email)) && (sinceMs === undefined || aggregator.lastUpdatedMs(email) >= sinceMs),
        );
        checkpoint.reviewersListed(snapshot);
      } else if (!existsSync(snapshot)) {
        throw new UsageError(`the reviewer snapshot ${snapshot} named by the state file is gone; run again with --fresh`);
      }
      for await (const { lineNumber, text } of readLines(snapshot)) {
        if (stopRequested() || delivery.fatal || limitReached()) break;
        const position = lineNumber - 1;
        // On a resume the first reviewers_confirmed were delivered by the earlier run.
        if (position < checkpoint.reviewersBefore || text === '') continue;
        const { email, attributes } = JSON.parse(text) as { email: string; attributes: FlatAttributes };
        summary.users.read++;
        if (position % 500 === 0) {
          await audit?.drained();
          progress.update(figures());
        }
        await send(toInsiderUser(email, attributes), { reviewer: position });
      }
    }
    await delivery.finish();
    if (stopRequested()) throw new InterruptedError();
    if (!limitReached()) checkpoint.done();
  } catch (caught) {
    error = caught;
    reviewsStop.abort();
    // Let requests in flight finish (bounded) so their outcomes are recorded before the state is saved.
    await delivery.wrapUp(caught instanceof InterruptedError);
  }
  error ??= delivery.fatal;
  if (snapshotDir) removeTempDir(snapshotDir);
  progress.update(figures());
  progress.stop();
  error = await closeOutputs(error, matchedLog);
  if (saved.phase === 'done') matchedLog?.remove();
  try {
    checkpoint.save();
  } catch (saveError) {
    error ??= saveError;
  }
  error = await closeOutputs(error, failedFile, audit);
  summary.audit_file = audit && audit.path !== '-' ? audit.path : null;

  if (aggregator) {
    summary.reviews = {
      read: reviewsRead,
      included: aggregator.verdicts.included,
      reviewers: aggregator.reviewers,
      pages: reviewPagesRead,
      duplicates: aggregator.verdicts.duplicate,
      deleted: aggregator.verdicts.deleted,
      without_email: aggregator.verdicts['no email'],
    };
  }
  if (options.dryRun) summary.users.succeeded = 0;
  summary.failed_file = failedFile.writtenPath;
  summary.field_warnings = Object.fromEntries(warnings);
  return finishRun(summary, error, clients.counters, startedAt, reporter, io, options, 'yotpo-insider backfill (same options, without --fresh)');
}

/** `--since` for a loyalty customer: its `updated_at` (or `last_seen_at`); unknown counts as updated. */
function updatedSince(customer: Record<string, unknown>, sinceMs: number): boolean {
  const updated = toEpochMs(customer.updated_at) ?? toEpochMs(customer.last_seen_at);
  return updated === undefined || updated >= sinceMs;
}

/** Writes the reviewer-only users (who pass `keep`) as JSONL; returns the path. */
async function writeReviewerSnapshot(aggregator: ReviewAggregator, path: string, keep: (email: string) => boolean): Promise<string> {
  async function* rows() {
    for (const email of aggregator.unmatched()) {
      if (aggregator.includedCount(email) > 0 && keep(email)) yield { email, attributes: aggregator.attributesFor(email) };
    }
  }
  await writeJsonl(path, rows());
  return path;
}
