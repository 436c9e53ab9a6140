// Async-generator plumbing: read ahead of the consumer by a bounded number of items, and hold
// items on disk (not in memory) until the consumer may start.

import { accessSync, constants, createReadStream, createWriteStream, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Writable } from 'node:stream';
import { UsageError } from '../errors.js';

/**
 * Pulls up to `ahead` items from `source` before the consumer asks for them, so the next page is
 * being fetched while the current one is processed; the bound keeps memory flat when the consumer
 * is slower.
 */
export async function* prefetch<T>(source: AsyncIterator<T>, ahead: number): AsyncGenerator<T> {
  const buffer: Promise<IteratorResult<T>>[] = [];
  let exhausted = false;
  const fill = () => {
    while (!exhausted && buffer.length < ahead) {
      const next = source.next();
      next.then((r) => r.done && (exhausted = true), () => (exhausted = true));
      buffer.push(next);
    }
  };
  try {
    for (;;) {
      fill();
      const result = await buffer.shift()!;
      if (result.done) return;
      fill();
      yield result.value;
    }
  } finally {
    await source.return?.(undefined);
  }
}

/** A JSONL file in a private temporary folder, for items that arrive before they can be used. */
export class Spill<T> {
  private readonly dir = privateTempDir();
  readonly path = join(this.dir, 'spill.jsonl');
  private readonly out = createWriteStream(this.path, { mode: 0o600 });
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
export async function* holdUntil<T>(
  source: AsyncIterator<T>,
  ready: Promise<unknown>,
): AsyncGenerator<T> {
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
  mkdirSync(dirname(path), { recursive: true });
  const out = createWriteStream(path, { mode: 0o600 });
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
// exits at once) removes those still present.
const liveTempDirs = new Set<string>();

/** A private folder for temporary files; `removeTempDir` deletes it, and so does the process's exit. */
export function privateTempDir(): string {
  let dir: string;
  try {
    dir = mkdtempSync(join(tmpdir(), 'yotpo-insider-'));
  } catch (error) {
    throw new UsageError(`cannot create a temporary folder in ${tmpdir()} (set TMPDIR to a writable one): ${(error as Error).message}`);
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

/**
 * Watches the streams of one output file: its first error (disk full, no permission) becomes a
 * UsageError naming the file, thrown by the writer's next call, instead of an unhandled 'error'
 * that would crash the run without saving its state.
 */
export class WriteGuard {
  private error: UsageError | undefined;
  private readonly failed: Promise<never>;

  constructor(what: string, ...streams: Writable[]) {
    let reject: (error: UsageError) => void = () => undefined;
    this.failed = new Promise<never>((_, fail) => (reject = fail));
    this.failed.catch(() => undefined);
    for (const stream of streams) {
      stream.on('error', (error: Error) => {
        if (this.error) return;
        this.error = new UsageError(`cannot write ${what}: ${error.message}`);
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

/** Fails early, before any request, when a file the run will write cannot be created. */
export function assertWritable(path: string, what: string): void {
  let dir = dirname(path);
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  try {
    if (!statSync(dir).isDirectory()) throw new Error(`${dir} is not a folder`);
    if (existsSync(path) && statSync(path).isDirectory()) throw new Error('it is a folder');
    if (existsSync(path)) accessSync(path, constants.W_OK);
    else accessSync(dir, constants.W_OK);
  } catch (error) {
    throw new UsageError(`cannot write ${what} ${path}: ${(error as Error).message}`);
  }
}
