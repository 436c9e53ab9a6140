// What the operator sees on stderr: notes, warnings, --verbose request lines and progress. stdout
// is reserved for data (the --json summary, a CSV written to `-`). Every line is redacted. While
// progress bars are drawn, every line goes above them (through the display), never over them. A
// closed stderr (EPIPE) silences the run instead of stopping it (SPEC §5).

import type { Writable } from 'node:stream';
import { PipeWatch } from '../io/files.js';
import { redact } from '../io/redact.js';

export interface Io {
  stdout: Writable;
  stderr: Writable;
  /** Whether stderr is a terminal (progress bars) or a pipe/file (plain lines). */
  stderrIsTty: boolean;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export function processIo(): Io {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stderrIsTty: Boolean(process.stderr.isTTY) && process.env.TERM !== 'dumb',
    env: process.env,
    cwd: process.cwd(),
  };
}

/** Something drawn on a stream (progress bars) that other lines must be printed above. */
export interface StreamDisplay {
  /** Prints one line (no newline) above the display. */
  printAbove(line: string): void;
}

const displays = new WeakMap<Writable, StreamDisplay>();
const watches = new WeakMap<Writable, PipeWatch>();

/** The progress display tells here that it draws on `stream` (undefined: it stopped). */
export function showDisplay(stream: Writable, display: StreamDisplay | undefined): void {
  if (display) displays.set(stream, display);
  else displays.delete(stream);
}

/** One watch per stream however many reporters write to it (a listener each would pile up). */
export function streamClosed(stream: Writable): boolean {
  let watch = watches.get(stream);
  if (!watch) {
    watch = new PipeWatch(stream);
    watches.set(stream, watch);
  }
  return watch.closed;
}

/**
 * Writes one line to `io.stderr`: above the progress bars when they are shown, nowhere once the
 * stream is closed. For lines printed outside a Reporter (the CLI's first Ctrl-C notice).
 */
export function printAboveProgress(io: Pick<Io, 'stderr'>, line: string): void {
  const stream = io.stderr;
  if (streamClosed(stream)) return;
  try {
    const display = displays.get(stream);
    if (display) display.printAbove(line);
    else stream.write(`${line}\n`);
  } catch {
    // A stream that throws instead of emitting 'error' is closed all the same.
  }
}

export interface ReporterOptions {
  quiet?: boolean;
  verbose?: boolean;
}

export class Reporter {
  constructor(
    private readonly io: Io,
    private readonly options: ReporterOptions = {},
  ) {}

  private write(line: string): void {
    printAboveProgress(this.io, redact(line));
  }

  /** A normal note (suppressed by --quiet). */
  info(line: string): void {
    if (!this.options.quiet) this.write(line);
  }

  /** Always shown. */
  error(line: string): void {
    this.write(line);
  }

  /** The final summary: shown even with --quiet. */
  result(line: string): void {
    this.write(line);
  }

  warn(line: string): void {
    if (!this.options.quiet) this.write(`warning: ${line}`);
  }

  get verboseEnabled(): boolean {
    return Boolean(this.options.verbose);
  }

  verbose = (line: string): void => {
    if (this.options.verbose) this.write(line);
  };
}
