// Runs the CLI (from source, through test/cli-entry.ts) inside a real pseudo-terminal with
// util-linux `script`, and replays what the terminal received on a small screen model: the
// escape sequences cli-progress and readline write (cursor up/down/column, erase line and
// below, autowrap), so a test can read the screen as an operator would see it, at any moment.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The CLI from source, and the loader that runs it from any working folder. */
export const ENTRY = fileURLToPath(new URL('./cli-entry.ts', import.meta.url));
export const TSX = import.meta.resolve('tsx');

const quote = (word: string) => `'${word.replaceAll("'", "'\\''")}'`;

export interface PtyRun {
  code: number | null;
  /** Every byte the terminal received, in order. */
  output: string;
}

/**
 * Runs `yotpo-insider <args>` in a pty of `columns` × `rows`; `onOutput` sees each chunk as it
 * comes (to follow the screen as the run goes), with `type` to send keys (`\x03` is Ctrl-C).
 */
export function runInPty(
  args: readonly string[],
  options: {
    cwd: string;
    env: Record<string, string | undefined>;
    columns?: number;
    rows?: number;
    onOutput?: (chunk: string, type: (keys: string) => void) => void;
  },
): Promise<PtyRun> {
  const command = `stty cols ${options.columns ?? 100} rows ${options.rows ?? 40} && exec ${[process.execPath, '--import', TSX, ENTRY, ...args].map(quote).join(' ')}`;
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qfec', command, '/dev/null'], {
      cwd: options.cwd,
      env: { ...options.env, TERM: 'xterm' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    // Decoded as a stream: a character split between two chunks stays whole.
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text: string) => {
      output += text;
      options.onOutput?.(text, (keys) => child.stdin.write(keys));
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text: string) => (output += text));
    child.on('error', reject);
    child.on('close', (code) => {
      child.stdin.end();
      resolve({ code, output });
    });
    child.stdin.on('error', () => undefined); // keys typed as the terminal closes
  });
}

/**
 * A terminal screen without a height limit (what scrolled off stays): fed the output as it comes
 * (a sequence split between chunks waits for its end), read at any moment.
 */
export class Screen {
  private readonly rows: string[][] = [[]];
  private row = 0;
  private col = 0;
  private wrap = true;
  private pending = '';

  constructor(private readonly columns = 100) {}

  feed(text: string): this {
    const output = this.pending + text;
    this.pending = '';
    for (let i = 0; i < output.length; i++) {
      const char = output[i]!;
      if (char === '\x1b') {
        const rest = output.slice(i + 1, i + 20);
        const csi = /^\[([?]?)([\d;]*)([A-Za-z])/.exec(rest);
        if (!csi && /^(\[[?\d;]*)?$/.test(rest)) {
          this.pending = output.slice(i);
          return this;
        }
        if (!csi) {
          i++; // ESC 7 / ESC 8 and the like: no effect on the text
          continue;
        }
        i += csi[0].length;
        this.control(csi[1] ?? '', csi[2] ?? '', csi[3]!);
      } else if (char === '\r') this.col = 0;
      else if (char === '\n') this.down();
      else if (char === '\b') this.col = Math.max(0, this.col - 1);
      else if (char >= ' ') this.put(char);
    }
    return this;
  }

  lines(): string[] {
    return Array.from(this.rows, (cells) => (cells ?? []).join('').trimEnd());
  }

  private line(): string[] {
    return (this.rows[this.row] ??= []);
  }

  private down(): void {
    this.row++;
    this.line();
  }

  private put(char: string): void {
    if (this.col >= this.columns) {
      if (!this.wrap) return;
      this.down();
      this.col = 0;
    }
    const cells = this.line();
    while (cells.length < this.col) cells.push(' ');
    cells[this.col++] = char;
  }

  private control(privateMode: string, params: string, command: string): void {
    const count = Number(params.split(';')[0] || '1');
    if (privateMode) {
      if (params === '7') this.wrap = command === 'h';
      return;
    }
    if (command === 'A') this.row = Math.max(0, this.row - count);
    else if (command === 'B') this.row += count;
    else if (command === 'G') this.col = count - 1;
    else if (command === 'C') this.col += count;
    else if (command === 'D') this.col = Math.max(0, this.col - count);
    else if (command === 'K') {
      if (params === '2') this.rows[this.row] = [];
      else if (params === '1') this.line().fill(' ', 0, this.col + 1);
      else this.line().splice(this.col);
    } else if (command === 'J') {
      this.line().splice(this.col);
      this.rows.splice(this.row + 1);
    }
  }
}

/** The screen after `output`. */
export function screenOf(output: string, columns = 100): string[] {
  return new Screen(columns).feed(output).lines();
}
