// A backfill checkpoint (SPEC §4): one per Yotpo source and scope, in the account's folder, held by
// one run at a time. It moves only over users whose outcome is known (delivered, or in the failed
// file), so an interrupted run continues where it stopped. Phases: loyalty customers (resumed at
// the cursor after the last confirmed page), then reviewers who are not loyalty customers
// (resumed at a line of their snapshot), then done.

import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { basename } from 'node:path';
import { StoreError } from '../errors.js';
import { writeFileAtomic } from '../io/durable.js';
import { PageTracker } from '../core/page-tracker.js';
import { currentHolder, describeHolder, tryLock, unlock, type LockHolder } from './lock.js';
import type { StateStore } from './store.js';

/** What a backfill covers: another scope is another checkpoint, never a resume of this one. */
export interface BackfillScope {
  loyalty: boolean;
  reviews: boolean;
  endpoint: 'recent' | 'all';
  /** ISO instant, or null without --since. */
  since: string | null;
  withAnniversary: boolean;
}

/** Which Yotpo store is read: URLs and a hash of its identifiers (never the identifiers themselves). */
export interface YotpoSource {
  loyalty_url: string | null;
  reviews_url: string | null;
  id: string;
}

export function yotpoSource(loyalty?: { url: string; guid: string }, reviews?: { url: string; appKey: string }): YotpoSource {
  const id = createHash('sha256')
    .update(`${loyalty?.guid ?? ''}\n${reviews?.appKey ?? ''}`)
    .digest('hex')
    .slice(0, 12);
  return { loyalty_url: loyalty?.url ?? null, reviews_url: reviews?.url ?? null, id };
}

export function describeScope(scope: BackfillScope): string {
  const parts = [scope.loyalty ? `loyalty (${scope.endpoint})` : '--no-loyalty', scope.reviews ? 'reviews' : '--no-reviews'];
  if (scope.since) parts.push(`--since ${scope.since}`);
  if (scope.withAnniversary) parts.push('--with-anniversary');
  return parts.join(', ');
}

export interface BackfillState {
  format: 2;
  source: YotpoSource;
  scope: BackfillScope;
  phase: 'loyalty' | 'reviewers' | 'done';
  /** Where the loyalty listing resumes: the cursor (recent) or page number (all) after the last confirmed page. */
  cursor: string | null;
  pages_confirmed: number;
  users_confirmed: number;
  /** The reviewer-only users to send (JSONL of {email, attributes}), written when the loyalty phase ends. */
  reviewers_file?: string;
  reviewers_confirmed: number;
  started_at: string;
  updated_at: string;
  run: string;
}

/** Where a user came from: a loyalty page (numbered across runs) or a line of the reviewer snapshot. */
export type BackfillTag = { page: number } | { reviewer: number };

export class BackfillCheckpoint {
  readonly state: BackfillState;
  readonly resumed: boolean;
  readonly file: string;
  /** Loyalty pages confirmed by earlier runs: this run's pages are numbered after them. */
  readonly pagesBefore: number;
  readonly reviewersBefore: number;
  private readonly tracker: PageTracker;
  private readonly reviewersSettled = new Set<number>();
  private readonly lockFile: string;
  private readonly holder: LockHolder;
  private lastSave = 0;
  /** Set when a dead holder's lock was taken over: the caller warns. */
  readonly tookOverFrom: LockHolder | undefined;

  /**
   * Opens (and, on a live run, locks) the checkpoint of this source and scope. A live run that finds
   * another live holder stops at once (exit 2) naming it. `fresh` ignores what is saved.
   */
  constructor(
    private readonly store: StateStore,
    source: YotpoSource,
    scope: BackfillScope,
    fresh: boolean,
  ) {
    const name = `backfill-${createHash('sha256').update(JSON.stringify({ source, scope })).digest('hex').slice(0, 16)}`;
    this.file = store.path('checkpoints', `${name}.json`);
    this.lockFile = store.path('checkpoints', `${name}.lock`);
    this.holder = currentHolder(store.runId);
    if (store.writable) {
      const lock = tryLock(this.lockFile, this.holder);
      if (!lock.acquired) {
        throw new StoreError(
          `another backfill of ${describeScope(scope)} into this account is running (${lock.holder ? describeHolder(lock.holder) : 'holder unknown'}); wait for it, or stop it first`,
        );
      }
      this.tookOverFrom = lock.tookOverFrom;
    }
    let saved: BackfillState | undefined;
    try {
      saved = fresh ? undefined : readState(this.file);
    } catch (error) {
      this.release(); // an unreadable checkpoint stops this run: it must not keep the lock
      throw error;
    }
    if (saved?.phase === 'done') saved = undefined;
    this.resumed = saved !== undefined;
    const now = new Date().toISOString();
    this.state = saved ?? {
      format: 2,
      source,
      scope,
      phase: scope.loyalty ? 'loyalty' : 'reviewers',
      cursor: null,
      pages_confirmed: 0,
      users_confirmed: 0,
      reviewers_confirmed: 0,
      started_at: now,
      updated_at: now,
      run: store.runId,
    };
    this.state.run = store.runId;
    this.pagesBefore = this.state.pages_confirmed;
    this.reviewersBefore = this.state.reviewers_confirmed;
    this.tracker = new PageTracker(this.pagesBefore + 1);
  }

  get snapshotPath(): string {
    return this.file.replace(/\.json$/, '.reviewers.jsonl');
  }

  addUser(page: number): void {
    this.tracker.addUser(page);
  }

  pageRead(page: number, nextCursor: string | null): void {
    if (this.tracker.pageRead(page, nextCursor)) this.recordConfirmedPages();
  }

  /** A user's outcome is known (delivered, or in the failed file, which `retry` re-sends). */
  settle(tag: BackfillTag): void {
    this.state.users_confirmed++;
    if ('page' in tag) {
      if (this.tracker.settleUser(tag.page)) this.recordConfirmedPages();
      return;
    }
    this.reviewersSettled.add(tag.reviewer);
    while (this.reviewersSettled.delete(this.state.reviewers_confirmed)) this.state.reviewers_confirmed++;
    this.saveSoon();
  }

  loyaltyDone(): void {
    this.state.phase = 'reviewers';
    this.state.cursor = null;
    this.save();
  }

  reviewersListed(file: string): void {
    this.state.reviewers_file = basename(file);
    this.state.reviewers_confirmed = 0;
    this.save();
  }

  done(): void {
    this.state.phase = 'done';
    rmSync(this.snapshotPath, { force: true });
    delete this.state.reviewers_file;
  }

  save(): void {
    if (!this.store.writable) return;
    this.state.updated_at = new Date().toISOString();
    writeFileAtomic(this.file, `${JSON.stringify(this.state, null, 2)}\n`, 'the backfill checkpoint');
    this.lastSave = Date.now();
  }

  release(): void {
    if (this.store.writable) unlock(this.lockFile, this.holder);
  }

  private saveSoon(): void {
    if (Date.now() - this.lastSave >= 1000) this.save();
  }

  private recordConfirmedPages(): void {
    const confirmed = this.tracker.confirmed;
    if (!confirmed) return;
    this.state.pages_confirmed = confirmed.seq;
    if (confirmed.resumeAfter === null) {
      // The listing's last page is settled: a resume goes straight to the reviewer phase.
      this.state.phase = 'reviewers';
      this.state.cursor = null;
    } else {
      this.state.cursor = confirmed.resumeAfter;
    }
    this.saveSoon();
  }
}

export function readState(file: string): BackfillState | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const state = JSON.parse(text) as BackfillState;
    if (state.format !== 2) throw new Error('format');
    return state;
  } catch {
    throw new StoreError(`the backfill checkpoint ${file} cannot be read; run with --fresh to start this backfill over`);
  }
}
