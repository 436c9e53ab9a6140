// The run log (SPEC §4): a line when a live run starts and one when it ends, so `status` can show a
// run that never finished, and `backfill --since last` finds the start of the last completed
// backfill. Beside it, verify's samples: the users Insider confirmed, a uniform few per run.

import { closeSync, existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { openPrivate, writeDurably } from '../io/durable.js';
import { holderIsGone, withShortLock } from './lock.js';

export interface RunStart {
  id: string;
  command: string;
  started_at: string;
  pid: number;
  host: string;
  /** What the run covers (a backfill's scope), for `status` and `--since last`. */
  scope?: string;
}

export interface RunEnd {
  id: string;
  ended_at: string;
  exit_code: number;
  counts: Record<string, unknown>;
  sample_file?: string;
  sample_size?: number;
}

export type RunRecord = RunStart & Partial<Omit<RunEnd, 'id'>> & { outcome: 'running' | 'finished' | 'did not finish' };

const FILE = 'runs.jsonl';

export class RunLog {
  constructor(
    private readonly dir: string,
    private readonly writable: boolean,
  ) {}

  get path(): string {
    return join(this.dir, FILE);
  }

  async started(entry: Omit<RunStart, 'pid' | 'host'>): Promise<void> {
    await this.append({ event: 'start', ...entry, pid: process.pid, host: hostname() });
  }

  async ended(entry: RunEnd): Promise<void> {
    await this.append({ event: 'end', ...entry });
  }

  /** Every run, oldest first; a start without an end is running, or did not finish when its process is gone. */
  list(): RunRecord[] {
    if (!existsSync(this.path)) return [];
    const runs = new Map<string, RunRecord>();
    for (const line of readFileSync(this.path, 'utf8').split('\n')) {
      if (!line) continue;
      let record: { event?: string } & Record<string, unknown>;
      try {
        record = JSON.parse(line) as typeof record;
      } catch {
        continue; // a torn last line after a crash
      }
      const { event, ...fields } = record;
      if (event === 'start') {
        const start = fields as unknown as RunStart;
        const gone = holderIsGone({ pid: start.pid, host: start.host, started_at: start.started_at });
        runs.set(start.id, { ...start, outcome: gone ? 'did not finish' : 'running' });
      } else if (event === 'end') {
        const end = fields as unknown as RunEnd;
        const run = runs.get(end.id);
        if (run) runs.set(end.id, { ...run, ...end, outcome: 'finished' });
      }
    }
    return [...runs.values()];
  }

  find(id: string): RunRecord | undefined {
    return this.list().find((run) => run.id === id);
  }

  private async append(record: object): Promise<void> {
    if (!this.writable) return;
    await withShortLock(join(this.dir, 'runs.lock'), () => {
      const fd = openPrivate(this.path, { append: true, what: 'the run log' });
      try {
        writeDurably(fd, `${JSON.stringify(record)}\n`);
      } finally {
        closeSync(fd);
      }
    });
  }
}
