// Checkpoints. The state file is written atomically (temp file + rename) so that a crash mid-write
// never leaves a torn file. PageTracker computes the low-water mark: with several batches in
// flight, the saved position never passes a page that still has an unconfirmed user.

import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { UsageError } from '../errors.js';

/** `ignoreInvalid` (--fresh): a file that is not JSON reads as absent, to be overwritten. */
export function readJsonState<T>(file: string, { ignoreInvalid = false } = {}): T | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UsageError(`cannot read the state file ${file}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    if (ignoreInvalid) return undefined;
    throw new UsageError(`the state file ${file} is not valid JSON; move it away or pass --fresh`);
  }
}

export function writeJsonState(file: string, state: unknown): void {
  const temp = `${file}.${process.pid}.tmp`;
  try {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(temp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
    renameSync(temp, file);
  } catch (error) {
    rmSync(temp, { force: true });
    throw new UsageError(`cannot write the state file ${file}: ${(error as Error).message}`);
  }
}

interface PageProgress {
  pending: number;
  read: boolean;
  /** Where to resume once this page and all before it are confirmed. */
  resumeAfter: string | null;
}

export class PageTracker {
  private readonly pages = new Map<number, PageProgress>();
  private lowest: number;
  /** The resume position of the last page whose users, and those of every page before, are settled. */
  confirmed: { seq: number; resumeAfter: string | null } | undefined;

  constructor(firstSeq = 1) {
    this.lowest = firstSeq;
  }

  private page(seq: number): PageProgress {
    let page = this.pages.get(seq);
    if (!page) this.pages.set(seq, (page = { pending: 0, read: false, resumeAfter: null }));
    return page;
  }

  /** A user of page `seq` was handed to the uploader. */
  addUser(seq: number): void {
    this.page(seq).pending++;
  }

  /** Every user of page `seq` has been handed over; `resumeAfter` is where the next page starts. */
  pageRead(seq: number, resumeAfter: string | null): boolean {
    const page = this.page(seq);
    page.read = true;
    page.resumeAfter = resumeAfter;
    return this.advance();
  }

  /** A user of page `seq` has its outcome (delivered, or written to the failed file). */
  settleUser(seq: number): boolean {
    this.page(seq).pending--;
    return this.advance();
  }

  /** Moves the low-water mark over every leading page that is read and settled; true if it moved. */
  private advance(): boolean {
    let moved = false;
    for (let page = this.pages.get(this.lowest); page && page.read && page.pending === 0; page = this.pages.get(this.lowest)) {
      this.confirmed = { seq: this.lowest, resumeAfter: page.resumeAfter };
      this.pages.delete(this.lowest);
      this.lowest++;
      moved = true;
    }
    return moved;
  }
}
