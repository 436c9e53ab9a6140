// Async-generator plumbing: read ahead of the consumer by a bounded number of items, and hold
// items on disk (not in memory) until the consumer may start.

import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';

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
  private readonly dir = mkdtempSync(join(tmpdir(), 'yotpo-insider-'));
  readonly path = join(this.dir, 'spill.jsonl');
  private readonly out = createWriteStream(this.path, { mode: 0o600 });
  count = 0;

  async write(item: T): Promise<void> {
    this.count++;
    if (!this.out.write(`${JSON.stringify(item)}\n`)) await once(this.out, 'drain');
  }

  async *read(): AsyncGenerator<T> {
    this.out.end();
    await once(this.out, 'close');
    const lines = createInterface({ input: createReadStream(this.path), crlfDelay: Infinity });
    for await (const line of lines) if (line) yield JSON.parse(line) as T;
  }

  remove(): void {
    if (!this.out.closed) this.out.destroy();
    rmSync(this.dir, { recursive: true, force: true });
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

/** Writes items as JSON lines (private to the user: they hold emails), with backpressure. */
export async function writeJsonl(path: string, items: AsyncIterable<unknown> | Iterable<unknown>): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  const out = createWriteStream(path, { mode: 0o600 });
  for await (const item of items) {
    if (!out.write(`${JSON.stringify(item)}\n`)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'close');
}
