// `yotpo-insider backfill`: Yotpo loyalty customers and review aggregates → Insider users.
//
// Reviews are paged (several pages in flight) into compact per-reviewer aggregates while loyalty
// pages are fetched into a disk spill; once the aggregates are complete, loyalty users are sent,
// each once with its review attributes, then the reviewers who are not loyalty customers.

import { createWriteStream, existsSync, mkdirSync, rmSync, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { dirname, join, resolve } from 'node:path';
import { USER_COLUMNS, userRow } from '../audit/csv.js';
import { loadConfig } from '../config.js';
import { InterruptedError, UsageError, type ApiName } from '../errors.js';
import { ReviewAggregator } from '../mapping/review-aggregates.js';
import {
  mapAttributes,
  mapUser,
  flattenAttributes,
  normaliseEmail,
  toInsiderUser,
  type FieldWarnings,
  type FlatAttributes,
  type InsiderUser,
} from '../mapping/transform.js';
import { toEpochMs } from '../mapping/values.js';
import { PageTracker, readJsonState, writeJsonState } from '../pipeline/checkpoint.js';
import { Delivery } from '../pipeline/delivery.js';
import { Progress, type ProgressFigures } from '../pipeline/progress.js';
import { Reporter, type Io } from '../pipeline/report.js';
import { auditFor, auditStatus, closeOutputs, COMMON_DEFAULTS, failedFileFor, finishRun, makeClients, type CommonOptions, type RunControl } from '../pipeline/run.js';
import { assertWritable, holdUntil, prefetch, privateTempDir, removeTempDir, WriteGuard, writeJsonl } from '../pipeline/streams.js';
import { addReason, newSummary, type RunSummary } from '../pipeline/summary.js';
import { readEmailList } from '../yotpo/email-list.js';
import { allCustomerPages, emailLookupPages, LOYALTY_PAGE_SIZE, recentCustomerPages, type LoyaltyPage } from '../yotpo/loyalty.js';
import { readLines } from '../yotpo/lines.js';
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

/** The backfill part of the state file. */
interface BackfillState {
  version: 1;
  phase: 'loyalty' | 'reviewers' | 'done';
  endpoint: 'recent' | 'all';
  /** Where the loyalty listing resumes: the cursor (recent) or page number (all) after the last confirmed page. */
  cursor: string | null;
  pages_confirmed: number;
  /** Reviewer-only users confirmed: lines of the reviewer snapshot. */
  reviewers_confirmed: number;
  /** The reviewer-only users to send (JSONL of {email, attributes}), written when the loyalty phase ends. */
  reviewers_file?: string;
  /** The options that decide which users are sent; a resume must use the same. */
  scope?: BackfillScope;
  updated_at: string;
}

/** What a backfill covers. Resuming under another scope would skip or repeat users, so it is refused. */
interface BackfillScope {
  loyalty: boolean;
  reviews: boolean;
  since: string | null;
  endpoint: 'recent' | 'all';
}

function describeScope(scope: BackfillScope): string {
  const parts = [scope.loyalty ? `loyalty (${scope.endpoint})` : '--no-loyalty', scope.reviews ? 'reviews' : '--no-reviews'];
  if (scope.since) parts.push(`--since ${scope.since}`);
  return parts.join(', ');
}

interface StateFile {
  backfill?: BackfillState;
  [other: string]: unknown;
}

type Tag = { page: number } | { reviewer: number };

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

  const clients = makeClients(
    config,
    options,
    { ...(options.loyalty ? { loyalty: options.loyaltyRps } : {}), ...(options.reviews ? { reviews: options.reviewsRps } : {}) },
    reporter,
    { stopReading: control.signal },
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
  // --fresh starts over even past a state file that cannot be read.
  const scope: BackfillScope = {
    loyalty: options.loyalty,
    reviews: options.reviews,
    since: sinceMs === undefined ? null : new Date(sinceMs).toISOString(),
    endpoint: options.loyaltyEndpoint,
  };
  let state = checkpointing ? readJsonState<StateFile>(statePath, { ignoreInvalid: options.fresh })?.backfill : undefined;
  if (options.fresh || !state || state.phase === 'done') state = undefined;
  if (state) {
    const savedScope: BackfillScope = state.scope ?? { loyalty: true, reviews: true, since: null, endpoint: state.endpoint };
    if (describeScope(savedScope) !== describeScope(scope)) {
      throw new UsageError(
        `${statePath} holds an unfinished backfill of ${describeScope(savedScope)}; this run asks for ${describeScope(scope)}. ` +
          'Run again with the same options to resume it, or add --fresh to start over.',
      );
    }
  }
  if (state) {
    summary.resumed = true;
    reporter.info(
      `resuming the backfill saved in ${statePath}: ${state.pages_confirmed} loyalty page(s) and ${state.reviewers_confirmed} reviewer(s) already confirmed (--fresh starts over)`,
    );
  }
  const saved: BackfillState = state ?? {
    version: 1,
    phase: options.loyalty ? 'loyalty' : 'reviewers',
    endpoint: options.loyaltyEndpoint,
    cursor: null,
    pages_confirmed: 0,
    reviewers_confirmed: 0,
    scope,
    updated_at: new Date().toISOString(),
  };
  // Beside the state file when checkpointing; otherwise in a private temporary folder.
  const snapshotPath = () => (checkpointing ? `${statePath}.reviewers.jsonl` : join(privateTempDir(), 'reviewers.jsonl'));
  // Re-read on every save: the file's other sections (the replay ledger) may have moved meanwhile.
  const saveState = () => {
    if (!checkpointing) return;
    saved.updated_at = new Date().toISOString();
    const others = readJsonState<StateFile>(statePath, { ignoreInvalid: options.fresh }) ?? {};
    writeJsonState(statePath, { ...others, backfill: saved });
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
  // Loyalty customers who are also reviewers, listed beside the state as they are met, so that a
  // run resumed in the loyalty phase does not send them again as reviewer-only users.
  const matchedPath = `${statePath}.matched.txt`;
  if (checkpointing && !summary.resumed) rmSync(matchedPath, { force: true });
  let matchedLog: { stream: WriteStream; guard: WriteGuard } | undefined;
  const noteMatched = (email: string) => {
    if (!checkpointing || !aggregator?.has(email)) return;
    if (!matchedLog) {
      mkdirSync(dirname(matchedPath), { recursive: true });
      const stream = createWriteStream(matchedPath, { flags: summary.resumed ? 'a' : 'w', mode: 0o600 });
      matchedLog = { stream, guard: new WriteGuard(matchedPath, stream) };
    }
    matchedLog.guard.check();
    matchedLog.stream.write(`${email}\n`);
  };
  // Stopped when the run fails elsewhere, so review pages are not fetched for nothing.
  const reviewsStop = new AbortController();
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
    if (summary.resumed && existsSync(matchedPath)) {
      for await (const { text } of readLines(matchedPath)) if (text) aggregator.markMatched(text);
    }
  })();
  reviewsDone.catch(() => undefined); // observed where it is awaited

  // Pages are numbered across runs: a resumed run's first page follows the last confirmed one.
  const pagesBefore = saved.pages_confirmed;
  const tracker = new PageTracker(pagesBefore + 1);
  const reviewersAlreadyConfirmed = saved.reviewers_confirmed;
  const reviewerOutcomes = new Map<number, boolean>();
  let lastSave = 0;
  const saveSoon = () => {
    if (Date.now() - lastSave < 1000) return;
    lastSave = Date.now();
    saveState();
  };
  const recordConfirmedPages = () => {
    const confirmed = tracker.confirmed;
    if (!confirmed) return;
    saved.pages_confirmed = confirmed.seq;
    if (confirmed.resumeAfter === null) {
      // The listing's last page is settled: a resume goes straight to the reviewer phase (a null
      // cursor would otherwise mean "from the first page").
      saved.phase = 'reviewers';
      saved.cursor = null;
    } else {
      saved.cursor = confirmed.resumeAfter;
    }
    saveSoon();
  };

  const delivery = new Delivery<Tag>({
    ...(clients.insider ? { insider: clients.insider } : {}),
    concurrency: options.concurrency,
    batchSize: options.batchSize,
    maxBytes: options.maxRequestBytes,
    skipHook: !options.triggerJourneys,
    failedFile,
    onOutcome: (item, outcome) => {
      if (outcome.status === 'succeeded') summary.users.succeeded++;
      else if (outcome.status === 'failed') summary.users.failed++;
      if (audit) {
        auditRow(auditStatus(outcome), outcome.status === 'failed' ? outcome.error : '', item.user.identifiers.email, flattenAttributes(item.user));
      }
      // A user written to the failed file is settled too: `retry` re-sends it, a resume must not.
      const tag = item.tag;
      if ('page' in tag) {
        if (tracker.settleUser(tag.page)) recordConfirmedPages();
      } else {
        reviewerOutcomes.set(tag.reviewer, true);
        while (reviewerOutcomes.has(saved.reviewers_confirmed)) {
          reviewerOutcomes.delete(saved.reviewers_confirmed);
          saved.reviewers_confirmed++;
        }
        saveSoon();
      }
    },
  });

  const send = async (user: InsiderUser, tag: Tag) => {
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
        const seq = pagesBefore + page.seq;
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
          if (aggregator) {
            noteMatched(email);
            aggregator.markMatched(email);
          }
          if (sinceMs !== undefined && !updatedSince(record, sinceMs) && !(aggregator && aggregator.lastUpdatedMs(email) >= sinceMs)) {
            skip('not updated since --since', email);
            continue;
          }
          tracker.addUser(seq);
          await send(mapUser(email, [customer], reviewAttributes, transformOptions, warnings), { page: seq });
        }
        if (pageComplete && tracker.pageRead(seq, page.nextCursor)) recordConfirmedPages();
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
        saved.phase = 'reviewers';
        saved.cursor = null;
        saveState();
      }
    }
    await reviewsDone;
    if (stopRequested()) throw new InterruptedError();
    if (delivery.fatal) throw delivery.fatal;

    // Phase 2: reviewers who are not loyalty customers, with their review attributes alone. They
    // are listed once in a snapshot file the state points to, so a resumed run neither pages the
    // reviews again nor needs to know which reviewers the loyalty phase matched.
    if (saved.phase === 'reviewers' && options.reviews && !limitReached()) {
      if (!saved.reviewers_file) {
        if (!aggregator) throw new Error('review aggregates are missing');
        saved.reviewers_file = await writeReviewerSnapshot(aggregator, snapshotPath(), (email) =>
          (!listed || listed.has(email)) && (sinceMs === undefined || aggregator.lastUpdatedMs(email) >= sinceMs),
        );
        saved.reviewers_confirmed = 0;
        saveState();
      } else if (!existsSync(saved.reviewers_file)) {
        throw new UsageError(`the reviewer snapshot ${saved.reviewers_file} named by the state file is gone; run again with --fresh`);
      }
      for await (const { lineNumber, text } of readLines(saved.reviewers_file)) {
        if (stopRequested() || delivery.fatal || limitReached()) break;
        const position = lineNumber - 1;
        // On a resume the first reviewers_confirmed were delivered by the earlier run.
        if (position < reviewersAlreadyConfirmed || text === '') continue;
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
    if (!limitReached()) {
      saved.phase = 'done';
      if (saved.reviewers_file) rmSync(saved.reviewers_file, { force: true });
      delete saved.reviewers_file;
    }
  } catch (caught) {
    error = caught;
    reviewsStop.abort();
    // Let requests in flight finish (bounded) so their outcomes are recorded before the state is saved.
    await delivery.wrapUp(caught instanceof InterruptedError);
  }
  error ??= delivery.fatal;
  if (!checkpointing && saved.reviewers_file) removeTempDir(dirname(saved.reviewers_file));
  progress.update(figures());
  progress.stop();
  if (matchedLog) {
    matchedLog.stream.end();
    await matchedLog.guard.wait(once(matchedLog.stream, 'close')).catch((closeError: unknown) => (error ??= closeError));
  }
  if (saved.phase === 'done') rmSync(matchedPath, { force: true });
  try {
    saveState();
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
