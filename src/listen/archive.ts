// The webhook archive (SPEC §8): every accepted delivery is one envelope line in
// `<dir>/webhooks-YYYY-MM-DD.jsonl` (the UTC day of its received_at), on disk before it is
// acknowledged. Appends share fsyncs (group commit): an fsync covers every line written before it
// started, and the appends that arrive while it runs are covered by the next one, so a burst of
// concurrent deliveries costs a few fsyncs instead of one each. The archive is replay's input format.

import { closeSync, fdatasync, fstatSync, ftruncateSync, readSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { LocalFileError } from '../errors.js';
import { makePrivateDir, openPrivate, syncDir } from '../io/durable.js';

export interface ArchiveEnvelope {
  /** ISO 8601, UTC. */
  received_at: string;
  /** Only the delivery's `eventid`, and only when it had one: no other header is kept. */
  headers?: { eventid: string };
  body: Record<string, unknown>;
}

/** Where a line of the archive ends: what a reader records to continue after it. */
export interface ArchivePosition {
  /** A day file's basename (`webhooks-YYYY-MM-DD.jsonl`). */
  file: string;
  /** The byte offset just after the line. */
  offset: number;
}

/** A delivery (or an archived line) that is not an event: kept in `<dir>/rejects.jsonl`. */
export interface RejectEntry {
  received_at: string;
  /** One of replay's reasons (SPEC §4): `invalid json`, `not an object`, … */
  reason: string;
  /** What exactly is wrong, for the operator. */
  detail?: string;
  /** What was received, cut to REJECT_RAW_MAX characters. */
  raw: string;
  /** For an archived line that replay rejects: the position after it, written as `archive`. */
  archive?: ArchivePosition;
}

export const REJECTS_FILE = 'rejects.jsonl';
/** A rejected body is kept only up to this many characters: enough to see what went wrong. */
export const REJECT_RAW_MAX = 4096;
const DAY_FILE = /^webhooks-(\d{4}-\d{2}-\d{2})\.jsonl$/;

/** The archive file of a moment: its UTC day. */
export function dayFileOf(receivedAt: string | Date): string {
  const date = typeof receivedAt === 'string' ? new Date(receivedAt) : receivedAt;
  if (Number.isNaN(date.getTime())) throw new RangeError(`not a date: ${String(receivedAt)}`);
  return `webhooks-${date.toISOString().slice(0, 10)}.jsonl`;
}

export function isDayFile(basename: string): boolean {
  return DAY_FILE.test(basename);
}

/** The envelope of a delivery received at `receivedAt`. */
export function envelopeOf(body: Record<string, unknown>, eventid: string | undefined, receivedAt: Date): ArchiveEnvelope {
  const envelope: ArchiveEnvelope = { received_at: receivedAt.toISOString(), body };
  if (eventid !== undefined && eventid !== '') {
    // Key order as SPEC §8 writes it: received_at, headers, body.
    return { received_at: envelope.received_at, headers: { eventid }, body };
  }
  return envelope;
}

/** Lets a reader stay behind what is on disk: see tailArchive's `durable` option. */
export interface ArchiveProgress {
  /**
   * For a file the writer holds open, the length its last fsync covered; undefined for any other
   * file (complete as far as this writer is concerned).
   */
  committedLength(basename: string): number | undefined;
  /** Called after every fsync that committed lines; returns the unsubscribe function. */
  onCommit(listener: () => void): () => void;
}

export interface ArchiveWriterOptions {
  dir: string;
  /**
   * Test hooks around each group fsync, told how many appends it covers. Awaited: a hook that
   * blocks holds the fsync (and every append it covers) back; one that throws fails it like a disk
   * error.
   */
  beforeFsync?: (info: { appends: number }) => Promise<void> | void;
  afterFsync?: (info: { appends: number }) => Promise<void> | void;
}

export interface ArchiveStats {
  /** append() and appendReject() calls. */
  appends: number;
  /** Group fsyncs that ran (successful or not). */
  fsyncs: number;
  /** Envelopes on disk (their append resolved). */
  archived: number;
  /** Reject lines on disk. */
  rejects: number;
  /** Appends that failed (write or fsync error). */
  failed: number;
}

interface Pending {
  file: string;
  bytes: Buffer;
  kind: 'envelope' | 'reject';
  resolve: () => void;
  reject: (error: LocalFileError) => void;
}

interface OpenFile {
  fd: number;
  /** Bytes written so far (the end of the file: it is opened for appending). */
  length: number;
  /** Bytes the last successful fsync covered. */
  committed: number;
}

export class ArchiveWriter implements ArchiveProgress {
  readonly dir: string;
  readonly stats: ArchiveStats = { appends: 0, fsyncs: 0, archived: 0, rejects: 0, failed: 0 };
  private readonly beforeFsync: ArchiveWriterOptions['beforeFsync'];
  private readonly afterFsync: ArchiveWriterOptions['afterFsync'];
  private readonly files = new Map<string, OpenFile>();
  private readonly listeners = new Set<() => void>();
  private queue: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private failing: Date | undefined;
  private closed = false;

  constructor(options: ArchiveWriterOptions) {
    this.dir = options.dir;
    this.beforeFsync = options.beforeFsync;
    this.afterFsync = options.afterFsync;
    try {
      makePrivateDir(this.dir);
    } catch (error) {
      throw new LocalFileError(`cannot create the webhook archive folder ${this.dir}: ${(error as Error).message}`, 'usage');
    }
  }

  /** Since when every write has failed; undefined while the archive is writable. */
  get failingSince(): Date | undefined {
    return this.failing;
  }

  /** Appends one envelope; resolves once an fsync covers it, rejects with LocalFileError if not. */
  append(envelope: ArchiveEnvelope): Promise<void> {
    return this.enqueue(dayFileOf(envelope.received_at), `${JSON.stringify(envelope)}\n`, 'envelope');
  }

  /** Appends one line to rejects.jsonl, durably like append(); `raw` is cut to REJECT_RAW_MAX. */
  appendReject(entry: RejectEntry): Promise<void> {
    const cut = entry.raw.length > REJECT_RAW_MAX;
    const line: Record<string, unknown> = {
      received_at: entry.received_at,
      reason: entry.reason,
      ...(entry.detail === undefined ? {} : { detail: entry.detail.slice(0, REJECT_RAW_MAX) }),
      raw: cut ? entry.raw.slice(0, REJECT_RAW_MAX) : entry.raw,
    };
    if (cut) line['raw_truncated_from'] = entry.raw.length;
    if (entry.archive) line['archive'] = { file: entry.archive.file, offset: entry.archive.offset };
    return this.enqueue(REJECTS_FILE, `${JSON.stringify(line)}\n`, 'reject');
  }

  committedLength(basename: string): number | undefined {
    return this.files.get(basename)?.committed;
  }

  onCommit(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Waits for the appends already made, then closes the files. Later appends are refused. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing) await this.flushing;
    for (const [name, file] of this.files) {
      this.files.delete(name);
      closeSync(file.fd);
    }
  }

  private enqueue(file: string, text: string, kind: Pending['kind']): Promise<void> {
    this.stats.appends += 1;
    if (this.closed) return Promise.reject(new LocalFileError(`the webhook archive ${this.dir} is closed`));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ file, bytes: Buffer.from(text), kind, resolve, reject });
      this.flushing ??= this.flushLoop();
    });
  }

  /** One group at a time: whatever queued while a group was being synced forms the next group. */
  private async flushLoop(): Promise<void> {
    // Let the appends of the current tick join the first group.
    await Promise.resolve();
    while (this.queue.length > 0) {
      const group = this.queue;
      this.queue = [];
      await this.commit(group);
    }
    this.flushing = undefined;
  }

  /**
   * Writes a group (one write per file, its lines in the order they came), fsyncs it, then settles
   * it. Each file succeeds or fails on its own, so a broken rejects file never refuses deliveries.
   */
  private async commit(group: Pending[]): Promise<void> {
    const byFile = new Map<string, Pending[]>();
    for (const item of group) {
      const items = byFile.get(item.file);
      if (items) items.push(item);
      else byFile.set(item.file, [item]);
    }
    const written = new Map<string, { file: OpenFile; lengthBefore: number }>();
    const failures = new Map<string, unknown>();
    for (const [name, items] of byFile) {
      let file: OpenFile | undefined;
      let lengthBefore = 0;
      try {
        file = this.openFile(name);
        lengthBefore = file.length;
        const bytes = Buffer.concat(items.map((item) => item.bytes));
        writeAll(file.fd, bytes);
        file.length += bytes.length;
        written.set(name, { file, lengthBefore });
      } catch (error) {
        failures.set(name, error);
        if (file) this.discard(name, file, lengthBefore);
      }
    }

    this.stats.fsyncs += 1;
    try {
      await this.beforeFsync?.({ appends: group.length });
    } catch (error) {
      for (const name of written.keys()) failures.set(name, error);
    }
    for (const [name, { file, lengthBefore }] of written) {
      if (failures.has(name)) {
        this.discard(name, file, lengthBefore);
        continue;
      }
      try {
        await syncData(file.fd);
        file.committed = file.length;
      } catch (error) {
        failures.set(name, error);
        this.discard(name, file, lengthBefore);
      }
    }

    // failingSince is about deliveries: a broken rejects file fails only the rejects.
    const days = [...byFile.keys()].filter((name) => name !== REJECTS_FILE);
    if (days.some((name) => failures.has(name))) this.failing ??= new Date();
    else if (days.length > 0) this.failing = undefined;
    if (failures.size === 0) this.closeOtherDays(group);
    for (const item of group) {
      if (failures.has(item.file)) this.stats.failed += 1;
      else if (item.kind === 'envelope') this.stats.archived += 1;
      else this.stats.rejects += 1;
    }
    await this.afterFsync?.({ appends: group.length });
    for (const [name, items] of byFile) {
      const failure = failures.get(name);
      const error =
        failure === undefined
          ? undefined
          : new LocalFileError(`cannot write the webhook archive ${join(this.dir, name)}: ${describe(failure)}`);
      for (const item of items) {
        if (error) item.reject(error);
        else item.resolve();
      }
    }
    if (written.size > failures.size) for (const listener of this.listeners) listener();
  }

  /**
   * The lines of a failed write are answered 503 (Yotpo sends them again): their bytes are taken
   * back out, so the archive never holds a refused delivery, and the file is reopened afresh next
   * time (after a failed fsync the kernel may have dropped the pages it could not write).
   */
  private discard(name: string, file: OpenFile, lengthBefore: number): void {
    try {
      ftruncateSync(file.fd, lengthBefore);
    } catch {
      // The next open ends a torn last line, so a later line is never glued to it.
    }
    this.files.delete(name);
    try {
      closeSync(file.fd);
    } catch {
      // Already unusable.
    }
  }

  private openFile(basename: string): OpenFile {
    const open = this.files.get(basename);
    if (open) return open;
    const path = join(this.dir, basename);
    const fd = openPrivate(path, { append: true, what: 'the webhook archive file' });
    let length: number;
    try {
      length = fstatSync(fd).size;
      // A crash mid-write can leave a torn last line: end it, so the next line stands alone (the
      // torn one is then rejected as invalid JSON by whoever reads it, not silently merged).
      if (length > 0 && !endsWithNewline(path, length)) {
        writeAll(fd, Buffer.from('\n'));
        length += 1;
      }
    } catch (error) {
      closeSync(fd);
      throw error;
    }
    // A new file's name must survive a power loss too.
    syncDir(this.dir);
    const file: OpenFile = { fd, length, committed: length };
    this.files.set(basename, file);
    return file;
  }

  /** After midnight the previous day's file gets no more lines: close it once it is committed. */
  private closeOtherDays(group: Pending[]): void {
    const last = group.filter((item) => item.kind === 'envelope').at(-1)?.file;
    if (last === undefined) return;
    for (const [name, file] of this.files) {
      if (name === last || name === REJECTS_FILE) continue;
      this.files.delete(name);
      closeSync(file.fd);
    }
  }
}

function writeAll(fd: number, bytes: Buffer): void {
  let offset = 0;
  while (offset < bytes.length) offset += writeSync(fd, bytes, offset, bytes.length - offset);
}

/** fdatasync: it flushes an append's data and the file's new size, and skips the timestamps. */
function syncData(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (error) => (error ? reject(error) : resolve())));
}

function endsWithNewline(path: string, length: number): boolean {
  // The append descriptor cannot read: look at the last byte through a reading one.
  const fd = openSync(path, 'r');
  try {
    const last = Buffer.alloc(1);
    readSync(fd, last, 0, 1, length - 1);
    return last[0] === 0x0a;
  } finally {
    closeSync(fd);
  }
}

function describe(error: unknown): string {
  if (error instanceof LocalFileError) return error.message.replace(/ \(fix it and run again: it resumes\)$/, '');
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const message = error instanceof Error ? error.message : String(error);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}
