// The audit CSV (SPEC §6): columns fixed by the mapping table (never by the data, so two runs can
// be diffed), values as they are sent, text neutralised against spreadsheet formulas. Streamed
// through csv-stringify with backpressure.

import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { stringify, type Stringifier } from 'csv-stringify';
import { LocalFileError } from '../errors.js';
import { createPrivateWriteStream } from './durable.js';
import { isClosedPipeError } from './files.js';

export interface AuditCsvOptions {
  /** Start with a UTF-8 byte-order mark, so that Excel reads the file as UTF-8. */
  excel?: boolean;
  /** `-` only: called once when stdout's reader goes away (EPIPE); the writer then drops its rows. */
  onStdoutClosed?: () => void;
}

/**
 * A CSV file (or stdout for `-`), header first, written with backpressure. A file is 0600 and never
 * opened through a symbolic link; a disk that stops accepting writes fails the next call with a
 * LocalFileError (exit 3). On stdout, a reader that goes away is no failure: `stdoutClosed` turns
 * true, `onStdoutClosed` is called, and later rows are dropped.
 *
 * Rows can be written in input line order although they are settled out of order: `reserveLine`
 * (in reading order) says a line will have a row, `writeLine` gives it; a row is written as soon as
 * every reserved line before it is, so only rows that arrived early are held.
 */
export class AuditCsv {
  private readonly stringifier: Stringifier;
  private readonly destination: Writable;
  private readonly ownsDestination: boolean;
  private failure: LocalFileError | undefined;
  /** Settles when the writer can no longer make progress: rejected on failure, resolved on a closed stdout. */
  private readonly stopped: Promise<void>;
  private stop: (error?: LocalFileError) => void = () => undefined;
  stdoutClosed = false;
  rows = 0;

  /** Reserved lines not yet written, ascending, from `head` on. */
  private reserved: number[] = [];
  private head = 0;
  private readonly early = new Map<number, string[][]>();

  constructor(
    readonly path: string,
    columns: readonly string[],
    stdout: Writable,
    private readonly options: AuditCsvOptions = {},
  ) {
    this.stopped = new Promise<void>((resolve, reject) => {
      this.stop = (error) => (error ? reject(error) : resolve());
    });
    this.stopped.catch(() => undefined);
    this.stringifier = stringify({ header: true, columns: [...columns], record_delimiter: 'windows', bom: options.excel === true });
    const label = path === '-' ? 'the audit CSV to stdout' : `the audit CSV ${path}`;
    if (path === '-') {
      this.destination = stdout;
      this.ownsDestination = false;
    } else {
      this.destination = createPrivateWriteStream(path, { what: 'the audit CSV' });
      this.ownsDestination = true;
    }
    this.stringifier.on('error', (error: Error) => this.fail(label, error));
    this.destination.on('error', (error: NodeJS.ErrnoException) => {
      if (!this.ownsDestination && isClosedPipeError(error)) this.closeStdout();
      else this.fail(label, error);
    });
    this.stringifier.pipe(this.destination, { end: this.ownsDestination });
  }

  private fail(label: string, error: Error): void {
    if (this.failure || this.stdoutClosed) return;
    this.failure = new LocalFileError(`cannot write ${label}: ${error.message}`, 'stopped');
    this.stop(this.failure);
  }

  private closeStdout(): void {
    if (this.stdoutClosed || this.failure) return;
    this.stdoutClosed = true;
    this.stringifier.unpipe(this.destination);
    this.stringifier.destroy();
    this.early.clear();
    this.stop();
    this.options.onStdoutClosed?.();
  }

  private check(): void {
    if (this.failure) throw this.failure;
  }

  /** Waits for `promise`, or until the CSV fails (throws) or its stdout closes (returns). */
  private async wait(promise: Promise<unknown>): Promise<void> {
    try {
      await Promise.race([promise, this.stopped]);
    } catch (error) {
      this.check();
      throw error;
    }
    this.check();
  }

  /** Queues a row; producers call drained() between chunks of work so memory stays bounded. */
  write(row: string[]): void {
    this.check();
    if (this.stdoutClosed) return;
    this.rows++;
    this.stringifier.write(row);
  }

  /** Says, in reading order, that input line `line` will have a row (written with writeLine). */
  reserveLine(line: number): void {
    if (this.stdoutClosed) return;
    const last = this.reserved[this.reserved.length - 1];
    if (this.head < this.reserved.length && last !== undefined && line < last) this.insertReserved(line);
    else this.reserved.push(line);
  }

  /**
   * The row of input line `line`: written once every reserved line before it is. A line that was not
   * reserved takes its place by number among those still waiting.
   */
  writeLine(line: number, row: string[]): void {
    this.check();
    if (this.stdoutClosed) return;
    const held = this.early.get(line);
    if (held) {
      held.push(row);
      return;
    }
    if (!this.isWaiting(line)) this.insertReserved(line);
    this.early.set(line, [row]);
    this.flushInOrder();
  }

  private isWaiting(line: number): boolean {
    return this.reserved[this.searchReserved(line)] === line;
  }

  /** The first index from `head` whose line is >= `line` (the waiting lines are ascending). */
  private searchReserved(line: number): number {
    let low = this.head;
    let high = this.reserved.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.reserved[middle]! < line) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  private insertReserved(line: number): void {
    this.reserved.splice(this.searchReserved(line), 0, line);
  }

  private flushInOrder(): void {
    while (this.head < this.reserved.length) {
      const line = this.reserved[this.head]!;
      const rows = this.early.get(line);
      if (!rows) break;
      this.early.delete(line);
      this.head++;
      for (const row of rows) this.write(row);
    }
    // Drop the written prefix now and then, so the list holds only the lines still waiting.
    if (this.head > 1024 && this.head * 2 > this.reserved.length) {
      this.reserved = this.reserved.slice(this.head);
      this.head = 0;
    }
  }

  /** Resolves once the CSV has caught up with what was written (backpressure for the producer). */
  async drained(): Promise<void> {
    this.check();
    if (this.stdoutClosed) return;
    if (this.stringifier.writableNeedDrain) await this.wait(once(this.stringifier, 'drain'));
  }

  /**
   * Writes the rows still held for order (a run that stopped before some reserved lines were
   * settled still shows every row it has), then ends the CSV.
   */
  async close(): Promise<void> {
    this.check();
    if (this.stdoutClosed) return;
    for (const line of [...this.early.keys()].sort((a, b) => a - b)) for (const row of this.early.get(line)!) this.write(row);
    this.early.clear();
    this.reserved = [];
    this.head = 0;
    if (this.stdoutClosed) return;
    const done = this.ownsDestination ? once(this.destination, 'finish') : once(this.stringifier, 'end');
    this.stringifier.end();
    await this.wait(done);
  }
}
