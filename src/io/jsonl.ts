// The failed file (SPEC §4): one JSON line per user that could not be delivered, created only when
// the first such user appears. `yotpo-insider retry` reads it back.

import { closeSync, fstatSync, ftruncateSync } from 'node:fs';
import { LocalFileError } from '../errors.js';
import { fileLabel, openPrivate, syncFile, writeFully } from './durable.js';
import type { InsiderUser } from '../core/transform.js';

export interface FailedRecord {
  user: InsiderUser;
  error: string;
  status: number | null;
  attempts: number;
  /** Replay: the ledger keys of the events this user carried, so `retry` can record them. */
  event_keys?: string[];
  /**
   * Insider reported failures in this user's batch without naming the users: it may hold this user
   * (and its events) already. `retry` sends such a user's events again only with --force.
   */
  delivery_uncertain?: boolean;
}

export class JsonlWriter<T> {
  private fd: number | undefined;
  private opened = false;
  /** The file's length after the last whole line: where a line cut short is cut back to. */
  private size = 0;
  count = 0;

  constructor(
    readonly path: string,
    /** How messages name it (`the failed file`); the bare path when absent. */
    private readonly what?: string,
  ) {}

  /**
   * Appends one record, synchronously: a write that fails throws here, before the caller settles the
   * record, so a user is never counted as handled without its line. The file is opened (0600, never
   * through a symbolic link) at the first record; a path that cannot work is a LocalFileError of
   * exit 2, a disk that stops accepting writes one of exit 3.
   */
  write(record: T): void {
    // Records are data (users, input lines) and are written as they are: a credential that is also
    // an ordinary word (a partner name that is the brand's domain) must not corrupt a user that
    // `retry` will send. Error texts are redacted where they are made (Delivery, the uploader).
    const line = `${JSON.stringify(record)}\n`;
    if (this.fd === undefined) {
      this.fd = openPrivate(this.path, { append: true, what: this.what });
      this.opened = true;
      this.size = fstatSync(this.fd).size;
    }
    try {
      writeFully(this.fd, line);
    } catch (error) {
      // A line cut short would glue itself to the next one: cut it off (best effort).
      try {
        ftruncateSync(this.fd, this.size);
      } catch {
        // the write's own error says what is wrong
      }
      throw new LocalFileError(`cannot write ${fileLabel(this.path, this.what)}: ${(error as Error).message}`, 'stopped');
    }
    this.size += Buffer.byteLength(line);
    this.count++;
  }

  /** The path if anything was written, else null. */
  get writtenPath(): string | null {
    return this.opened ? this.path : null;
  }

  /** Flushes what was written to the disk (fsync) and closes the file. */
  async close(): Promise<void> {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    try {
      syncFile(fd);
    } catch (error) {
      throw new LocalFileError(`cannot write ${fileLabel(this.path, this.what)}: ${(error as Error).message}`, 'stopped');
    } finally {
      closeSync(fd);
    }
  }
}

export type FailedFile = JsonlWriter<FailedRecord>;
