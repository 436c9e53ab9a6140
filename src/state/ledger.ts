// The account's shared event ledger (SPEC §4): every event key's life, in flight → delivered |
// uncertain → delivered | released, as an append-only log that replay, retry, listen and verify
// write side by side. Each writer appends under a short exclusive lock after reading what the
// others appended, so no two runs reserve the same event; a key is recorded in flight, durably,
// before its batch is sent, so even a SIGKILL never leads to a silent second send.

import { closeSync, fstatSync, ftruncateSync, openSync, readSync, existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { LocalFileError, StoreError } from '../errors.js';
import { openPrivate, writeDurably, writeFileAtomic } from '../io/durable.js';
import { holderIsGone, withShortLock } from './lock.js';

/** What the ledger must know of an event to resolve it later without its input (verify --uncertain). */
export interface EventRef {
  key: string;
  email: string;
  event_name: string;
  timestamp: string;
}

export type KeyState = 'in flight' | 'delivered' | 'uncertain' | 'released';

/** What a reservation says of one key: reserved for this run, or why it is not sent. */
export type Reservation = 'reserved' | 'already delivered' | 'delivery uncertain' | 'in flight elsewhere';

export interface UncertainEntry extends EventRef {
  run: string;
  sent_at: string;
}

type Code = 'f' | 'd' | 'u' | 'r';
const STATE_OF: Record<Code, KeyState> = { f: 'in flight', d: 'delivered', u: 'uncertain', r: 'released' };

interface LogRecord {
  k: string;
  s: Code;
  /** In flight: the run, its process and when the batch went out, and what the event is. */
  r?: string;
  p?: number;
  h?: string;
  t?: string;
  e?: string;
  n?: string;
  ts?: string;
}

/** Delivered keys are kept as a bare code (most of a large ledger); others keep their details. */
type Entry = Code | LogRecord;

const LOG = 'ledger.log';
const META = 'ledger.json';
const LOCK = 'ledger.lock';

interface LedgerMeta {
  format: 1;
  records: number;
  delivered: number;
  updated_at: string;
}

export interface ResendChoice {
  /** replay --force: delivered events are sent again. */
  delivered?: boolean;
  /** retry --force / replay --force: uncertain events are sent again (the operator's decision). */
  uncertain?: boolean;
}

export class Ledger {
  private readonly entries = new Map<string, Entry>();
  private offset = 0;
  private records = 0;
  private writes = 0;
  /** In-flight keys of runs that died before Insider answered, turned uncertain at open. */
  recoveredUncertain = 0;

  private constructor(
    readonly dir: string,
    private readonly runId: string,
    private readonly writable: boolean,
  ) {}

  get path(): string {
    return join(this.dir, LOG);
  }

  /** Opens the ledger of an account folder; a live run turns the in-flight keys of dead runs uncertain. */
  static async open(dir: string, { runId, writable }: { runId: string; writable: boolean }): Promise<Ledger> {
    const ledger = new Ledger(dir, runId, writable);
    // Checked before anything is appended: a recovery record must not hide a lost one.
    const check = () => {
      const meta = readMeta(join(dir, META));
      if (meta && meta.records > ledger.records) {
        throw new StoreError(
          `the ledger ${ledger.path} holds ${ledger.records} record(s) but ${join(dir, META)} says ${meta.records}: it was truncated, replaced or lost. ` +
            'Sending now could repeat delivered events; restore the ledger from a backup, or move the account folder away to start over knowingly',
        );
      }
    };
    if (writable) {
      await ledger.locked(() => {
        check();
        ledger.recoverDeadRuns();
      });
    } else {
      ledger.readTail(false);
      check();
    }
    return ledger;
  }

  stateOf(key: string): KeyState | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    return STATE_OF[typeof entry === 'string' ? entry : entry.s];
  }

  counts(): Record<KeyState, number> {
    const counts: Record<KeyState, number> = { 'in flight': 0, delivered: 0, uncertain: 0, released: 0 };
    for (const entry of this.entries.values()) counts[STATE_OF[typeof entry === 'string' ? entry : entry.s]]++;
    return counts;
  }

  /**
   * Reserves events for sending: under the lock, with what other runs appended read first, each
   * key that is new or released (or chosen by `resend`) is recorded in flight for this run before
   * its batch goes out. A dry run (read-only) only says what a live run would do.
   */
  async reserve(refs: readonly EventRef[], resend: ResendChoice = {}): Promise<Map<string, Reservation>> {
    const decide = (): Map<string, Reservation> => {
      const verdicts = new Map<string, Reservation>();
      const sentAt = new Date().toISOString();
      const records: LogRecord[] = [];
      for (const ref of refs) {
        if (verdicts.has(ref.key)) continue;
        const verdict = this.verdictFor(ref.key, resend);
        verdicts.set(ref.key, verdict);
        if (verdict === 'reserved') {
          records.push({
            k: ref.key,
            s: 'f',
            r: this.runId,
            p: process.pid,
            h: hostname(),
            t: sentAt,
            e: ref.email,
            n: ref.event_name,
            ts: ref.timestamp,
          });
        }
      }
      if (this.writable) this.append(records);
      return verdicts;
    };
    return this.writable ? this.locked(decide) : decide();
  }

  /** Records what Insider's answer means for these keys: delivered, uncertain, or released (not stored). */
  async settle(keys: readonly string[], state: 'delivered' | 'uncertain' | 'released'): Promise<void> {
    if (!this.writable || keys.length === 0) return;
    const code: Code = state === 'delivered' ? 'd' : state === 'uncertain' ? 'u' : 'r';
    await this.locked(() => this.append(keys.map((k) => ({ k, s: code }))));
  }

  /** The uncertain events, with what identifies them in Insider. */
  uncertainEntries(): UncertainEntry[] {
    const list: UncertainEntry[] = [];
    for (const [key, entry] of this.entries) {
      if (typeof entry === 'string' || entry.s !== 'u') continue;
      list.push({
        key,
        email: entry.e ?? '',
        event_name: entry.n ?? '',
        timestamp: entry.ts ?? '',
        run: entry.r ?? '',
        sent_at: entry.t ?? '',
      });
    }
    return list;
  }

  /** Records the count of records, so a ledger later found shorter is noticed (SPEC §5). */
  async close(): Promise<void> {
    if (!this.writable || this.writes === 0) return;
    await this.locked(() => {
      const meta: LedgerMeta = {
        format: 1,
        records: this.records,
        delivered: this.counts().delivered,
        updated_at: new Date().toISOString(),
      };
      writeFileAtomic(join(this.dir, META), `${JSON.stringify(meta, null, 2)}\n`, 'the ledger summary');
    });
  }

  private verdictFor(key: string, resend: ResendChoice): Reservation {
    const entry = this.entries.get(key);
    if (entry === undefined) return 'reserved';
    const code = typeof entry === 'string' ? entry : entry.s;
    if (code === 'r') return 'reserved';
    if (code === 'd') return resend.delivered ? 'reserved' : 'already delivered';
    if (code === 'u') return resend.uncertain ? 'reserved' : 'delivery uncertain';
    // In flight: this run's own (a duplicate in the input, handled before), a live run's, or a dead one's.
    if (typeof entry !== 'string' && entry.r !== this.runId && isDeadRun(entry)) {
      if (this.writable) this.append([{ ...entry, s: 'u' }]);
      return resend.uncertain ? 'reserved' : 'delivery uncertain';
    }
    return 'in flight elsewhere';
  }

  private recoverDeadRuns(): void {
    const dead: LogRecord[] = [];
    for (const entry of this.entries.values()) {
      if (typeof entry !== 'string' && entry.s === 'f' && isDeadRun(entry)) dead.push({ ...entry, s: 'u' });
    }
    this.append(dead);
    this.recoveredUncertain = dead.length;
  }

  private async locked<T>(work: () => T): Promise<T> {
    return withShortLock(join(this.dir, LOCK), () => {
      this.readTail(true);
      return work();
    });
  }

  /** Reads what was appended since the last read; under the lock a torn last line (a crash) is cut off. */
  private readTail(repair: boolean): void {
    if (!existsSync(this.path)) return;
    const fd = openSync(this.path, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size <= this.offset) return;
      const buffer = Buffer.alloc(size - this.offset);
      let read = 0;
      while (read < buffer.length) read += readSync(fd, buffer, read, buffer.length - read, this.offset + read);
      const end = buffer.lastIndexOf(0x0a) + 1;
      for (const line of buffer.subarray(0, end).toString('utf8').split('\n')) {
        if (line) this.apply(parseRecord(line, this.path));
      }
      this.offset += end;
      if (repair && end < buffer.length) {
        const writer = openPrivate(this.path, { append: true, what: 'the ledger' });
        try {
          ftruncateSync(writer, this.offset);
        } finally {
          closeSync(writer);
        }
      }
    } finally {
      closeSync(fd);
    }
  }

  private apply(record: LogRecord): void {
    this.records++;
    if (record.s === 'd') this.entries.set(record.k, 'd');
    else if (record.s === 'f') this.entries.set(record.k, record);
    else {
      // Uncertain and released keep the in-flight details (who, what, when) for verify.
      const previous = this.entries.get(record.k);
      this.entries.set(record.k, typeof previous === 'object' ? { ...previous, ...record } : record);
    }
  }

  private append(records: readonly LogRecord[]): void {
    if (records.length === 0) return;
    const text = `${records.map((record) => JSON.stringify(record)).join('\n')}\n`;
    const fd = openPrivate(this.path, { append: true, what: 'the ledger' });
    try {
      writeDurably(fd, text);
    } catch (error) {
      // A disk that fills: the run stops with its state saved (exit 3); nothing counts as delivered.
      throw new LocalFileError(`cannot write the ledger ${this.path}: ${(error as Error).message}`);
    } finally {
      closeSync(fd);
    }
    this.offset += Buffer.byteLength(text);
    for (const record of records) this.apply(record);
    this.writes++;
  }
}

function parseRecord(line: string, path: string): LogRecord {
  try {
    return JSON.parse(line) as LogRecord;
  } catch {
    throw new StoreError(
      `the ledger ${path} holds a line that is not a record (${line.slice(0, 40)}…): restore it from a backup, or move the account folder away to start over knowingly`,
    );
  }
}

function isDeadRun(entry: LogRecord): boolean {
  return entry.p !== undefined && entry.h !== undefined && holderIsGone({ pid: entry.p, host: entry.h, started_at: entry.t ?? '' });
}

function readMeta(path: string): LedgerMeta | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as LedgerMeta;
  } catch {
    return undefined;
  }
}
