// What the operator sees on stderr: notes, warnings, --verbose request lines and progress. stdout
// is reserved for data (the --json summary, a CSV written to `-`). Every line is redacted.

import type { Writable } from 'node:stream';
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

export interface ReporterOptions {
  quiet?: boolean;
  verbose?: boolean;
}

export class Reporter {
  constructor(
    private readonly io: Io,
    private readonly options: ReporterOptions = {},
  ) {
  }

  private write(line: string): void {
    this.io.stderr.write(`${redact(line)}\n`);
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
