// Replay input (SPEC §4): a JSONL file, `-` for stdin, or a FIFO; gzip either by a `.gz` name or by
// its magic bytes. Streamed line by line from the bytes (never the whole input in memory, never a
// seek, so a pipe works), with each line's UTF-8 validity known.

import { isUtf8 } from 'node:buffer';
import { promises as fs, statSync } from 'node:fs';
import { pipeline, Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { UsageError } from '../errors.js';

export interface InputLine {
  /** 1-based, counting every physical line, blank ones included. */
  lineNumber: number;
  /** The line as read, without its line ending (invalid UTF-8 sequences become U+FFFD). */
  text: string;
  /** The line's bytes were not valid UTF-8: `text` is not what was written. */
  invalidUtf8?: true;
}

const GZIP_MAGIC = [0x1f, 0x8b] as const;
const BOM = '\uFEFF';
const LF = 0x0a;
const CR = 0x0d;

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

/**
 * Whether an input can be read only once (stdin, a FIFO, a device): a command that reads its input
 * twice copies it first (files.ts spoolInput).
 */
export function readableOnce(input: string): boolean {
  if (input === '-') return true;
  try {
    return !statSync(input).isFile();
  } catch {
    return false; // reading it will say what is wrong
  }
}

/**
 * The raw bytes of an input (file path, FIFO, or `-` for stdin), read sequentially: no positional
 * read, so a pipe never fails with ESPIPE. A missing or unreadable path throws a UsageError naming it.
 */
export async function openInputStream(input: string): Promise<Readable> {
  if (input === '-') return process.stdin;
  let handle: fs.FileHandle;
  try {
    // A FIFO's open waits for its writer; it runs off the main thread, so nothing else is held up.
    handle = await fs.open(input, 'r');
  } catch (error) {
    throw new UsageError(`cannot read ${input}: ${describe(error)}`);
  }
  try {
    if ((await handle.stat()).isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw new UsageError(`cannot read ${input}: ${describe(error)}`);
  }
  return handle.createReadStream({ autoClose: true });
}

const asBuffer = (chunk: Buffer | string): Buffer => (typeof chunk === 'string' ? Buffer.from(chunk) : chunk);

/**
 * The input's bytes, gunzipped when it is gzip: by its name, or by its first two bytes (read ahead,
 * then handed on unchanged), since a pipe has no name to go by.
 */
async function openBytes(input: string): Promise<AsyncIterable<Buffer>> {
  const raw = await openInputStream(input);
  // stdin is not ours to destroy when the reader stops early; a file's stream is.
  const iterator = (input === '-' ? raw.iterator({ destroyOnReturn: false }) : raw[Symbol.asyncIterator]()) as AsyncIterator<
    Buffer | string
  >;
  const chunks: Buffer[] = [];
  let length = 0;
  let done = false;
  try {
    while (length < GZIP_MAGIC.length) {
      const next = await iterator.next();
      if (next.done) {
        done = true;
        break;
      }
      const chunk = asBuffer(next.value);
      chunks.push(chunk);
      length += chunk.length;
    }
  } catch (error) {
    throw new UsageError(`cannot read ${input === '-' ? 'stdin' : input}: ${describe(error)}`);
  }
  const head = Buffer.concat(chunks);
  async function* bytes(): AsyncGenerator<Buffer> {
    try {
      if (head.length > 0) yield head;
      if (done) return;
      for (;;) {
        const next = await iterator.next();
        if (next.done) return;
        yield asBuffer(next.value);
      }
    } finally {
      await iterator.return?.();
    }
  }
  const gzip = (input !== '-' && input.toLowerCase().endsWith('.gz')) || isGzip(head);
  if (!gzip) return bytes();
  // pipeline destroys each stream when one fails, so a read error or bad gzip data surfaces in the
  // iteration of the gunzip stream, and stopping that iteration closes the file.
  return pipeline(Readable.from(bytes(), { objectMode: false }), createGunzip(), () => undefined);
}

/**
 * Splits a byte stream into lines the way readline does with crlfDelay Infinity: a line ends at
 * \r\n, \n or a lone \r; a last line without an ending is a line; no empty line after a final
 * ending. Splitting on ASCII bytes never cuts a UTF-8 sequence (their bytes are all >= 0x80).
 */
async function* splitLines(chunks: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let partial: Buffer[] = [];
  let afterCr = false;
  for await (const chunk of chunks) {
    let start = 0;
    if (afterCr) {
      afterCr = false;
      if (chunk[0] === LF) start = 1;
    }
    let nextLf = chunk.indexOf(LF, start);
    let nextCr = chunk.indexOf(CR, start);
    while (nextLf !== -1 || nextCr !== -1) {
      const end = nextCr === -1 || (nextLf !== -1 && nextLf < nextCr) ? nextLf : nextCr;
      const piece = chunk.subarray(start, end);
      yield partial.length === 0 ? piece : Buffer.concat([...partial, piece]);
      partial = [];
      start = end + 1;
      if (end === nextCr) {
        if (start === chunk.length) afterCr = true;
        else if (chunk[start] === LF) start += 1;
      }
      if (nextLf !== -1 && nextLf < start) nextLf = chunk.indexOf(LF, start);
      if (nextCr !== -1 && nextCr < start) nextCr = chunk.indexOf(CR, start);
    }
    if (start < chunk.length) partial.push(chunk.subarray(start));
  }
  if (partial.length > 0) yield Buffer.concat(partial);
}

function decodeLine(bytes: Buffer, lineNumber: number): InputLine {
  let text = bytes.toString('utf8');
  if (lineNumber === 1 && text.startsWith(BOM)) text = text.slice(1);
  // Only a line holding U+FFFD can be invalid; a valid one holding it (written on purpose) is rare.
  if (text.includes('\uFFFD') && !isUtf8(bytes)) return { lineNumber, text, invalidUtf8: true };
  return { lineNumber, text };
}

/**
 * Yields every physical line of the input (file path, FIFO, or `-` for stdin), 1-based, blank lines
 * included. A `.gz` file (or gzip data) is gunzipped. A missing or unreadable file throws a
 * UsageError naming the path before anything is yielded; a read or gunzip error mid-way throws one
 * naming the path and the line reached.
 */
export async function* readLines(input: string): AsyncGenerator<InputLine> {
  const label = input === '-' ? 'stdin' : input;
  const bytes = await openBytes(input);
  let lineNumber = 0;
  const lines = splitLines(bytes);
  try {
    for (;;) {
      let next: IteratorResult<Buffer>;
      try {
        next = await lines.next();
      } catch (error) {
        if (error instanceof UsageError) throw error;
        throw new UsageError(`cannot read ${label} after line ${lineNumber}: ${describe(error)}`);
      }
      if (next.done) return;
      lineNumber += 1;
      yield decodeLine(next.value, lineNumber);
    }
  } finally {
    // A reader that stops early closes the file (stdin stays open: it is not ours).
    await lines.return(undefined);
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
