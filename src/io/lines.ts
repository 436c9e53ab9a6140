// Replay input (SPEC §4): a JSONL file, `-` for stdin, gzip either by a `.gz` name or by its magic
// bytes. Streamed line by line; never the whole file in memory.

import { promises as fs } from 'node:fs';
import { createInterface } from 'node:readline';
import { PassThrough, Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { UsageError } from '../errors.js';

export interface InputLine {
  /** 1-based, counting every physical line, blank ones included. */
  lineNumber: number;
  /** The line as read, without its line ending. */
  text: string;
}

const GZIP_MAGIC = [0x1f, 0x8b] as const;
const BOM = '\uFEFF';

function isGzip(head: Uint8Array): boolean {
  return head.length >= 2 && head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1];
}

function describe(error: unknown): string {
  if (error && typeof error === 'object' && 'code' in error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'no such file';
    if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
    if (code === 'EISDIR') return 'is a directory';
  }
  return error instanceof Error ? error.message : String(error);
}

/** Opens a file for reading, or fails with a message that names it (exit 2, SPEC §5). */
async function openInput(path: string): Promise<{ stream: Readable; gzip: boolean }> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(path, 'r');
  } catch (error) {
    throw new UsageError(`cannot read ${path}: ${describe(error)}`);
  }
  try {
    const stat = await handle.stat();
    if (stat.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    const head = new Uint8Array(2);
    const { bytesRead } = await handle.read(head, 0, 2, 0);
    const gzip = path.toLowerCase().endsWith('.gz') || isGzip(head.subarray(0, bytesRead));
    const stream = handle.createReadStream({ start: 0, autoClose: true });
    return { stream, gzip };
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw new UsageError(`cannot read ${path}: ${describe(error)}`);
  }
}

/** stdin, with gzip detected from its first two bytes (a pipe has no file name to go by). */
async function openStdin(): Promise<{ stream: Readable; gzip: boolean }> {
  const stdin = process.stdin;
  const chunks: Buffer[] = [];
  let length = 0;
  // Read until two bytes are known (or the input ends), then hand everything on unchanged.
  const iterator = stdin[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
  let done = false;
  while (length < 2) {
    const next = await iterator.next();
    if (next.done) {
      done = true;
      break;
    }
    const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
    chunks.push(chunk);
    length += chunk.length;
  }
  const head = Buffer.concat(chunks);
  async function* rest(): AsyncGenerator<Buffer> {
    if (head.length > 0) yield head;
    if (done) return;
    for (;;) {
      const next = await iterator.next();
      if (next.done) return;
      yield typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
    }
  }
  return { stream: Readable.from(rest(), { objectMode: false }), gzip: isGzip(head) };
}

/**
 * Yields every physical line of the input (file path or `-` for stdin), 1-based, blank lines
 * included. A `.gz` file (or gzip data on stdin) is gunzipped. A missing or unreadable file throws
 * a UsageError naming the path before anything is yielded; a read or gunzip error mid-way throws
 * one naming the path and the line reached.
 */
export async function* readLines(input: string): AsyncGenerator<InputLine> {
  const label = input === '-' ? 'stdin' : input;
  const { stream: source, gzip } = input === '-' ? await openStdin() : await openInput(input);

  let failure: unknown;
  const text = new PassThrough();
  const fail = (error: unknown) => {
    failure ??= error;
    text.end();
  };
  source.on('error', fail);
  if (gzip) {
    const gunzip = createGunzip();
    gunzip.on('error', fail);
    source.pipe(gunzip).pipe(text);
  } else {
    source.pipe(text);
  }

  const lines = createInterface({ input: text, crlfDelay: Infinity });
  let lineNumber = 0;
  try {
    for await (const line of lines) {
      lineNumber += 1;
      yield { lineNumber, text: lineNumber === 1 && line.startsWith(BOM) ? line.slice(1) : line };
    }
  } finally {
    lines.close();
    if (input !== '-') source.destroy();
    else source.unpipe();
  }
  if (failure !== undefined) {
    throw new UsageError(`cannot read ${label} after line ${lineNumber}: ${describe(failure)}`);
  }
}

/** The same split as readLines over a string in memory (for tests and small inputs). */
export function linesOf(text: string): InputLine[] {
  if (text === '') return [];
  // readline (crlfDelay Infinity) ends a line at \r\n, \n or a lone \r.
  const parts = text.split(/\r\n|\r|\n/);
  if (parts[parts.length - 1] === '') parts.pop();
  return parts.map((line, index) => ({
    lineNumber: index + 1,
    text: index === 0 && line.startsWith(BOM) ? line.slice(1) : line,
  }));
}
