// The backfill's checkpoint: its section of the state file, what a resume may continue, and the
// bookkeeping that moves it only over users whose outcome is known (delivered, or in the failed
// file). Phases: loyalty customers (resumed at the cursor after the last confirmed page), then the
// reviewers who are not loyalty customers (resumed at a line of their snapshot), then done.

import { once } from 'node:events';
import { createWriteStream, existsSync, mkdirSync, rmSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { UsageError } from '../errors.js';
import { readLines } from '../io/lines.js';
import { PageTracker, readJsonState, writeJsonState } from './checkpoint.js';
import { WriteGuard } from '../io/files.js';

export interface BackfillState {
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
export interface BackfillScope {
  loyalty: boolean;
  reviews: boolean;
  /** ISO date, or null without --since. */
  since: string | null;
  endpoint: 'recent' | 'all';
}

/** Where a user came from: a loyalty page (numbered across runs) or a line of the reviewer snapshot. */
export type BackfillTag = { page: number } | { reviewer: number };

interface StateFile {
  backfill?: BackfillState;
  [other: string]: unknown;
}

export function describeScope(scope: BackfillScope): string {
  const parts = [scope.loyalty ? `loyalty (${scope.endpoint})` : '--no-loyalty', scope.reviews ? 'reviews' : '--no-reviews'];
  if (scope.since) parts.push(`--since ${scope.since}`);
  return parts.join(', ');
}

export class BackfillCheckpoint {
  readonly state: BackfillState;
  readonly resumed: boolean;
  /** Loyalty pages confirmed by earlier runs: this run's pages are numbered after them. */
  readonly pagesBefore: number;
  /** Snapshot lines confirmed by earlier runs. */
  readonly reviewersBefore: number;
  private readonly tracker: PageTracker;
  private readonly reviewersSettled = new Set<number>();
  private lastSave = 0;

  /**
   * `path` undefined: a run that keeps no checkpoint (dry run, --emails). `fresh`: ignore what is
   * saved, even a file that is not JSON. Throws a UsageError when the saved, unfinished backfill
   * has another scope.
   */
  constructor(
    private readonly path: string | undefined,
    scope: BackfillScope,
    private readonly fresh = false,
  ) {
    let saved = path ? readJsonState<StateFile>(path, { ignoreInvalid: fresh })?.backfill : undefined;
    if (fresh || saved?.phase === 'done') saved = undefined;
    if (saved) {
      const savedScope = saved.scope ?? { loyalty: true, reviews: true, since: null, endpoint: saved.endpoint };
      if (describeScope(savedScope) !== describeScope(scope)) {
        throw new UsageError(
          `${path} holds an unfinished backfill of ${describeScope(savedScope)}; this run asks for ${describeScope(scope)}. ` +
            'Run again with the same options to resume it, or add --fresh to start over.',
        );
      }
    }
    this.resumed = saved !== undefined;
    this.state = saved ?? {
      version: 1,
      phase: scope.loyalty ? 'loyalty' : 'reviewers',
      endpoint: scope.endpoint,
      cursor: null,
      pages_confirmed: 0,
      reviewers_confirmed: 0,
      scope,
      updated_at: new Date().toISOString(),
    };
    this.pagesBefore = this.state.pages_confirmed;
    this.reviewersBefore = this.state.reviewers_confirmed;
    this.tracker = new PageTracker(this.pagesBefore + 1);
  }

  /** A user of loyalty page `page` was handed to the uploader. */
  addUser(page: number): void {
    this.tracker.addUser(page);
  }

  /** Every user of loyalty page `page` has been handed over; the next page starts at `nextCursor`. */
  pageRead(page: number, nextCursor: string | null): void {
    if (this.tracker.pageRead(page, nextCursor)) this.recordConfirmedPages();
  }

  /** A user's outcome is known (delivered, or in the failed file, which `retry` re-sends). */
  settle(tag: BackfillTag): void {
    if ('page' in tag) {
      if (this.tracker.settleUser(tag.page)) this.recordConfirmedPages();
      return;
    }
    this.reviewersSettled.add(tag.reviewer);
    while (this.reviewersSettled.delete(this.state.reviewers_confirmed)) this.state.reviewers_confirmed++;
    this.saveSoon();
  }

  /** The loyalty listing is done and every user of it settled. */
  loyaltyDone(): void {
    this.state.phase = 'reviewers';
    this.state.cursor = null;
    this.save();
  }

  /** The reviewer-only users to send are listed in `file`. */
  reviewersListed(file: string): void {
    this.state.reviewers_file = file;
    this.state.reviewers_confirmed = 0;
    this.save();
  }

  /** Everything is sent: the snapshot goes, and the next run starts over. */
  done(): void {
    this.state.phase = 'done';
    if (this.state.reviewers_file) rmSync(this.state.reviewers_file, { force: true });
    delete this.state.reviewers_file;
  }

  /** Writes the backfill section, re-reading the file so that other sections (a replay's) are kept. */
  save(): void {
    if (!this.path) return;
    this.state.updated_at = new Date().toISOString();
    const others = readJsonState<StateFile>(this.path, { ignoreInvalid: this.fresh }) ?? {};
    writeJsonState(this.path, { ...others, backfill: this.state });
    this.lastSave = Date.now();
  }

  private saveSoon(): void {
    if (Date.now() - this.lastSave >= 1000) this.save();
  }

  private recordConfirmedPages(): void {
    const confirmed = this.tracker.confirmed;
    if (!confirmed) return;
    this.state.pages_confirmed = confirmed.seq;
    if (confirmed.resumeAfter === null) {
      // The listing's last page is settled: a resume goes straight to the reviewer phase (a null
      // cursor would otherwise mean "from the first page").
      this.state.phase = 'reviewers';
      this.state.cursor = null;
    } else {
      this.state.cursor = confirmed.resumeAfter;
    }
    this.saveSoon();
  }
}

/**
 * The loyalty customers already sent who are also reviewers, appended beside the state file as they
 * are met, so that a run resumed in the loyalty phase does not send them again as reviewer-only users.
 */
export class MatchedLog {
  private out: { stream: WriteStream; guard: WriteGuard } | undefined;

  /** `resumed`: keep what earlier runs listed; otherwise start an empty list. */
  constructor(
    readonly path: string,
    private readonly resumed: boolean,
  ) {
    if (!resumed) rmSync(path, { force: true });
  }

  add(email: string): void {
    if (!this.out) {
      mkdirSync(dirname(this.path), { recursive: true });
      const stream = createWriteStream(this.path, { flags: this.resumed ? 'a' : 'w', mode: 0o600 });
      this.out = { stream, guard: new WriteGuard(this.path, stream) };
    }
    this.out.guard.check();
    this.out.stream.write(`${email}\n`);
  }

  /** The emails earlier runs listed (read before this run adds any). */
  async *listedBefore(): AsyncGenerator<string> {
    if (!this.resumed || !existsSync(this.path)) return;
    for await (const { text } of readLines(this.path)) if (text) yield text;
  }

  async close(): Promise<void> {
    if (!this.out) return;
    this.out.stream.end();
    await this.out.guard.wait(once(this.out.stream, 'close'));
  }

  remove(): void {
    rmSync(this.path, { force: true });
  }
}
