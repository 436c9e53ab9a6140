// Async-generator plumbing: read ahead of the consumer by a bounded number of items, and hold
// items on disk (not in memory) until the consumer may start.

import {
  accessSync,
  chmodSync,
  constants,
  createReadStream,
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
} from 'node:fs';
import { once } from 'node:events';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LocalFileError } from '../errors.js';
import { createPrivateWriteStream } from './durable.js';
import { openInputStream } from './lines.js';

/** A JSONL file in a private temporary folder, for items that arrive before they can be used. */
export class Spill<T> {
  private readonly dir = privateTempDir();
  readonly path = join(this.dir, 'spill.jsonl');
  private readonly out = createPrivateWriteStream(this.path, { what: 'the temporary file' });
  private readonly guard = new WriteGuard(`the temporary file ${this.path}`, this.out);
  count = 0;

  async write(item: T): Promise<void> {
    this.guard.check();
    this.count++;
    if (!this.out.write(`${JSON.stringify(item)}\n`)) await this.guard.wait(once(this.out, 'drain'));
  }

  async *read(): AsyncGenerator<T> {
    this.out.end();
    await this.guard.wait(once(this.out, 'close'));
    const lines = createInterface({ input: createReadStream(this.path), crlfDelay: Infinity });
    for await (const line of lines) if (line) yield JSON.parse(line) as T;
  }

  remove(): void {
    if (!this.out.closed) this.out.destroy();
    removeTempDir(this.dir);
  }
}

/**
 * Yields `source`'s items, but none before `ready` resolves: what arrives earlier goes to a disk
 * spill and is yielded first once `ready` resolves. Both sides make progress meanwhile.
 */
export async function* holdUntil<T>(source: AsyncIterator<T>, ready: Promise<unknown>, onHeld?: (item: T) => void): AsyncGenerator<T> {
  let isReady = false;
  let readyError: unknown;
  ready.then(
    () => (isReady = true),
    (error: unknown) => {
      isReady = true;
      readyError = error;
    },
  );
  const spill = new Spill<T>();
  try {
    let done = false;
    while (!isReady) {
      const next = await source.next();
      if (next.done) {
        done = true;
        break;
      }
      await spill.write(next.value);
      onHeld?.(next.value);
    }
    await ready;
    if (readyError) throw readyError;
    if (spill.count > 0) yield* spill.read();
    if (done) return;
    for (;;) {
      const next = await source.next();
      if (next.done) return;
      yield next.value;
    }
  } finally {
    spill.remove();
    await source.return?.(undefined);
  }
}

/** Writes lines to a file private to the user (they hold emails), with backpressure. */
export async function writeLines(path: string, lines: AsyncIterable<string> | Iterable<string>): Promise<void> {
  const out = createPrivateWriteStream(path);
  const guard = new WriteGuard(path, out);
  try {
    for await (const line of lines) {
      guard.check();
      if (!out.write(`${line}\n`)) await guard.wait(once(out, 'drain'));
    }
  } finally {
    out.end();
    await guard.wait(once(out, 'close'));
  }
}

/** Writes items as JSON lines. */
export async function writeJsonl(path: string, items: AsyncIterable<unknown> | Iterable<unknown>): Promise<void> {
  async function* json() {
    for await (const item of items) yield JSON.stringify(item);
  }
  await writeLines(path, json());
}

// Temporary folders hold customer data: whatever ends the process (even a second Ctrl-C, which
// exits at once) removes those still present; what a killed process left behind is swept by the
// next start (sweepStaleTempDirs), which knows the owner from the folder's name.
const liveTempDirs = new Set<string>();

const TEMP_PREFIX = 'yotpo-insider-';
/** `yotpo-insider-<pid>-<host>-XXXXXX`: mkdtemp's six characters end it. */
const TEMP_NAME = /^yotpo-insider-(\d+)-([A-Za-z0-9._]+)-[A-Za-z0-9]{6}$/;

/** This host's name as it appears in a temporary folder's name (no `-`, which separates the parts). */
function hostTag(): string {
  return (
    hostname()
      .replace(/[^A-Za-z0-9.]/g, '_')
      .slice(0, 40) || 'host'
  );
}

/** A private (0700) folder for temporary files; `removeTempDir` deletes it, and so does the process's exit. */
export function privateTempDir(): string {
  let dir: string;
  try {
    dir = mkdtempSync(join(tmpdir(), `${TEMP_PREFIX}${process.pid}-${hostTag()}-`));
    chmodSync(dir, 0o700);
  } catch (error) {
    throw new LocalFileError(
      `cannot create a temporary folder in ${tmpdir()} (set TMPDIR to a writable one): ${(error as Error).message}`,
      'usage',
    );
  }
  if (liveTempDirs.size === 0) process.once('exit', removeAllTempDirs);
  liveTempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  liveTempDirs.delete(dir);
  if (liveTempDirs.size === 0) process.off('exit', removeAllTempDirs);
}

function removeAllTempDirs(): void {
  for (const dir of liveTempDirs) rmSync(dir, { recursive: true, force: true });
  liveTempDirs.clear();
}

/** Whether process `pid` runs on this host (one of another user counts: it is not ours to judge). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temporary folders (customer data) that processes of this user on this host left behind
 * when they were killed before their exit handler ran: those whose owner pid is no longer running.
 * Best effort: a folder that cannot be removed is left. Returns the folders removed.
 */
export function sweepStaleTempDirs(root: string = tmpdir()): string[] {
  const removed: string[] = [];
  const host = hostTag();
  const uid = process.getuid?.();
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return removed;
  }
  for (const name of names) {
    const match = TEMP_NAME.exec(name);
    if (!match || match[2] !== host) continue;
    const pid = Number(match[1]);
    if (pid === process.pid || processAlive(pid)) continue;
    const dir = join(root, name);
    try {
      const stat = lstatSync(dir);
      if (!stat.isDirectory() || (uid !== undefined && stat.uid !== uid)) continue;
      rmSync(dir, { recursive: true, force: true });
      removed.push(dir);
    } catch {
      // another process swept it first, or it is not ours to remove
    }
  }
  return removed;
}

/**
 * Copies an input that can be read only once (stdin, a FIFO) byte for byte to a private temporary
 * file, for a command that reads its input twice. Gzip, a BOM and invalid UTF-8 are kept as they
 * were: readLines of the copy sees what it would have seen.
 */
export async function spoolInput(input: string): Promise<{ path: string; remove: () => void }> {
  const source: Readable = await openInputStream(input);
  const dir = privateTempDir();
  const path = join(dir, 'input');
  try {
    const out = createPrivateWriteStream(path, { what: 'the temporary copy of the input' });
    const guard = new WriteGuard(`the temporary copy of the input ${path}`, out);
    try {
      await pipeline(source, out);
    } catch (error) {
      guard.check();
      throw new LocalFileError(`cannot read ${input === '-' ? 'stdin' : input}: ${(error as Error).message}`, 'usage');
    }
  } catch (error) {
    removeTempDir(dir);
    throw error;
  }
  return { path, remove: () => removeTempDir(dir) };
}

/**
 * Watches the streams of one output file: its first error (disk full) becomes a LocalFileError
 * naming the file (exit 3: the run stops with its state saved), thrown by the writer's next call,
 * instead of an unhandled 'error' that would crash the run without saving its state.
 */
export class WriteGuard {
  private error: LocalFileError | undefined;
  private readonly failed: Promise<never>;

  constructor(what: string, ...streams: Writable[]) {
    let reject: (error: LocalFileError) => void = () => undefined;
    this.failed = new Promise<never>((_, fail) => (reject = fail));
    this.failed.catch(() => undefined);
    for (const stream of streams) {
      stream.on('error', (error: Error) => {
        if (this.error) return;
        this.error = new LocalFileError(`cannot write ${what}: ${error.message}`, 'stopped');
        reject(this.error);
      });
    }
  }

  check(): void {
    if (this.error) throw this.error;
  }

  /** Waits for `promise` (a drain, a close), or fails as soon as the file does: neither hangs. */
  async wait(promise: Promise<unknown>): Promise<void> {
    try {
      await Promise.race([promise, this.failed]);
    } catch (error) {
      this.check();
      throw error;
    }
  }
}

/** Errors that mean a pipe's reader is gone (`| head`), not that a disk failed. */
const CLOSED_PIPE = new Set(['EPIPE', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END', 'ECONNRESET']);

export function isClosedPipeError(error: unknown): boolean {
  return CLOSED_PIPE.has((error as NodeJS.ErrnoException | undefined)?.code ?? '');
}

/**
 * Watches stdout or stderr for a reader that went away (SPEC §5: a closed stderr silences the run,
 * a closed stdout is no crash): the stream's EPIPE becomes `closed` (and one `onClosed` call)
 * instead of an uncaught 'error'. Writers check `closed` and stop writing there.
 */
export class PipeWatch {
  closed = false;

  constructor(stream: Writable, onClosed?: () => void) {
    // EPIPE or anything else: once a standard stream fails, nothing more can be written to it.
    stream.on('error', () => {
      if (this.closed) return;
      this.closed = true;
      onClosed?.();
    });
  }
}

/**
 * Fails early, before any request, when a file the run will write cannot be created: a folder, a
 * symbolic link (never followed), a path without write permission (exit 2).
 */
export function assertWritable(path: string, what: string): void {
  let dir = dirname(path);
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  let link = false;
  try {
    link = lstatSync(path).isSymbolicLink();
  } catch {
    // absent: the folder decides
  }
  if (link) throw new LocalFileError(`${what} ${path} is a symbolic link: refusing to follow it`, 'usage');
  try {
    if (!statSync(dir).isDirectory()) throw new Error(`${dir} is not a folder`);
    if (existsSync(path) && statSync(path).isDirectory()) throw new Error('it is a folder');
    if (existsSync(path)) accessSync(path, constants.W_OK);
    else accessSync(dir, constants.W_OK);
  } catch (error) {
    throw new LocalFileError(`cannot write ${what} ${path}: ${(error as Error).message}`, 'usage');
  }
}
