// Reads the webhook archive behind its writer: the day files in order, whole lines only, each with
// the position just after it, so that a reader that records the position of the last line it
// handled continues exactly there after a restart.

import { watch, type FSWatcher, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { StoreError } from '../errors.js';
import { isDayFile, type ArchivePosition, type ArchiveProgress } from './archive.js';

export type { ArchivePosition };

export interface ArchiveLine {
  position: ArchivePosition;
  /** The line without its line ending. */
  line: string;
}

export interface TailOptions {
  signal?: AbortSignal;
  /** Keep waiting for new lines and new day files (until `signal` aborts); else return at the end. */
  follow: boolean;
  /** How often to look again when no file-system notice came (fs.watch can miss some). */
  pollMs?: number;
  /**
   * The writer in this process: lines are read only once an fsync covers them, so a position
   * recorded never points past what a power loss keeps.
   */
  durable?: ArchiveProgress;
}

const CHUNK = 64 * 1024;
const NEWLINE = 0x0a;

async function dayFiles(dir: string): Promise<string[]> {
  try {
    return (await fs.readdir(dir)).filter(isDayFile).sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await fs.stat(path)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Wakes a waiting reader on a file-system notice, a commit of the writer, the poll timer or abort.
 * A notice that comes while the reader is reading is kept, so the next wait returns at once.
 */
class Waker {
  private watcher: FSWatcher | undefined;
  private wake: (() => void) | undefined;
  private noticed = false;
  private readonly unsubscribe: (() => void) | undefined;
  private readonly notify = () => {
    if (this.wake) this.wake();
    else this.noticed = true;
  };

  constructor(
    private readonly dir: string,
    private readonly pollMs: number,
    private readonly signal: AbortSignal | undefined,
    durable: ArchiveProgress | undefined,
  ) {
    this.unsubscribe = durable?.onCommit(this.notify);
    signal?.addEventListener('abort', this.notify);
    this.startWatching();
  }

  async wait(): Promise<void> {
    this.startWatching();
    if (this.signal?.aborted || this.noticed) {
      this.noticed = false;
      return;
    }
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, this.pollMs);
      this.wake = done;
    });
    this.noticed = false;
  }

  close(): void {
    this.watcher?.close();
    this.unsubscribe?.();
    this.signal?.removeEventListener('abort', this.notify);
  }

  private startWatching(): void {
    if (this.watcher) return;
    try {
      this.watcher = watch(this.dir, { persistent: false }, this.notify);
      // A watcher that fails leaves the poll timer to do its work.
      this.watcher.on('error', () => this.watcher?.close());
    } catch {
      // No folder yet, or no inotify: polling alone until it can watch.
    }
  }
}

/**
 * Yields the archive's lines after `from` (from the first day file when undefined), in file then
 * byte order, skipping blank lines. A last line without its newline is waited for. With `follow`,
 * new lines and new day files are yielded as they come until `signal` aborts.
 */
export async function* tailArchive(dir: string, from: ArchivePosition | undefined, options: TailOptions): AsyncGenerator<ArchiveLine> {
  const { signal, follow, pollMs = 500, durable } = options;
  const waker = new Waker(dir, pollMs, signal, durable);
  try {
    let current: string | undefined;
    let offset = 0;
    if (from && (await dayFiles(dir)).includes(from.file)) {
      await checkPosition(dir, from);
      current = from.file;
      offset = from.offset;
    }

    for (;;) {
      if (signal?.aborted) return;
      if (current === undefined) {
        // A recorded file that is gone was removed or never synced: its day (should it be written
        // anew) and the later ones are read from their start, never the days before it.
        current = (await dayFiles(dir)).find((name) => from === undefined || name >= from.file);
        offset = 0;
        if (current === undefined) {
          if (!follow) return;
          await waker.wait();
          continue;
        }
      }

      const file = current;
      const limit = durable?.committedLength(file);
      const read = await readLinesFrom(join(dir, file), offset, limit);
      for (const { line, end } of read.lines) {
        offset = end;
        yield { position: { file, offset }, line };
        if (signal?.aborted) return;
      }
      if (read.lines.length > 0) continue;

      // At the end of this file: move to the next day once this one is finished.
      const next = (await dayFiles(dir)).find((name) => name > file);
      if (next !== undefined && limit === undefined) {
        // Written by no one now. A torn last line (a crash mid-write) is yielded as it is, so the
        // reader rejects it visibly instead of waiting for it forever.
        const size = (await sizeOf(join(dir, file))) ?? offset;
        if (size === read.end) {
          if (size > offset) {
            const rest = await readRange(join(dir, file), offset, size);
            const torn = stripCr(rest.slice(rest.lastIndexOf('\n') + 1));
            offset = size;
            if (torn.trim() !== '') yield { position: { file, offset }, line: torn };
          }
          current = next;
          offset = 0;
          continue;
        }
        continue;
      }
      if (!follow) return;
      await waker.wait();
    }
  } finally {
    waker.close();
  }
}

/** A recorded position must be the end of a line within its file. */
async function checkPosition(dir: string, from: ArchivePosition): Promise<void> {
  const path = join(dir, from.file);
  const size = (await sizeOf(path)) ?? 0;
  if (!Number.isSafeInteger(from.offset) || from.offset < 0 || from.offset > size) {
    throw new StoreError(`the recorded archive position ${from.file}:${from.offset} is past the end of ${path} (${size} bytes)`);
  }
  if (from.offset > 0 && (await readRange(path, from.offset - 1, from.offset)) !== '\n') {
    throw new StoreError(`the recorded archive position ${from.file}:${from.offset} is not the end of a line of ${path}`);
  }
}

/**
 * The whole lines from `offset`, each with the offset after it; `end` is how far the file was read
 * (stopping at `limit` when given).
 */
async function readLinesFrom(
  path: string,
  offset: number,
  limit: number | undefined,
): Promise<{ lines: { line: string; end: number }[]; end: number }> {
  const lines: { line: string; end: number }[] = [];
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { lines, end: offset };
    throw error;
  }
  try {
    let pending = Buffer.alloc(0);
    let pendingStart = offset;
    let position = offset;
    for (;;) {
      const want = limit === undefined ? CHUNK : Math.min(CHUNK, limit - position);
      if (want <= 0) break;
      const chunk = Buffer.alloc(want);
      const { bytesRead } = await handle.read(chunk, 0, want, position);
      if (bytesRead === 0) break;
      position += bytesRead;
      pending = pending.length === 0 ? chunk.subarray(0, bytesRead) : Buffer.concat([pending, chunk.subarray(0, bytesRead)]);
      let start = 0;
      for (let index = pending.indexOf(NEWLINE); index !== -1; index = pending.indexOf(NEWLINE, start)) {
        const text = stripCr(pending.toString('utf8', start, index));
        start = index + 1;
        if (text.trim() !== '') lines.push({ line: text, end: pendingStart + start });
      }
      pending = pending.subarray(start);
      pendingStart += start;
      // Yield in bounded batches; the caller comes back for the rest.
      if (lines.length >= 1000) return { lines, end: position };
    }
    return { lines, end: position };
  } finally {
    await handle.close();
  }
}

async function readRange(path: string, start: number, end: number): Promise<string> {
  const handle = await fs.open(path, 'r');
  try {
    const buffer = Buffer.alloc(end - start);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, start);
    return buffer.toString('utf8', 0, bytesRead);
  } finally {
    await handle.close();
  }
}

function stripCr(text: string): string {
  return text.endsWith('\r') ? text.slice(0, -1) : text;
}
