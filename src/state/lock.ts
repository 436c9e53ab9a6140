// Lock files: who holds a piece of the store (pid, host, start), created exclusively so two runs
// never both believe they hold it. A holder whose pid is dead on this host is taken over with a
// warning; a holder on another host is never presumed dead.

import { randomBytes } from 'node:crypto';
import { closeSync, linkSync, readFileSync, rmSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalFileError } from '../errors.js';
import { makePrivateDir, openPrivate, writeDurably } from '../io/durable.js';
import { dirname } from 'node:path';

export interface LockHolder {
  pid: number;
  host: string;
  started_at: string;
  run?: string;
}

export function describeHolder(holder: LockHolder): string {
  return `pid ${holder.pid} on ${holder.host}, started ${holder.started_at}`;
}

/** When this process started: a holder with this pid but an earlier start is a previous process (a restarted container reuses pids). */
const PROCESS_STARTED_AT = new Date(performance.timeOrigin).toISOString();

/** Whether `holder` is a process that is certainly gone: its pid is dead on this very host. */
export function holderIsGone(holder: LockHolder): boolean {
  if (holder.host !== hostname()) return false;
  if (holder.pid === process.pid) return holder.started_at !== '' && holder.started_at < PROCESS_STARTED_AT;
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

export function currentHolder(run?: string): LockHolder {
  return { pid: process.pid, host: hostname(), started_at: new Date().toISOString(), ...(run ? { run } : {}) };
}

function readHolder(path: string): LockHolder | undefined {
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as LockHolder;
    return typeof parsed.pid === 'number' ? parsed : undefined;
  } catch {
    return undefined;
  }
}

export type Acquired = { acquired: true; tookOverFrom?: LockHolder } | { acquired: false; holder: LockHolder | undefined };

/** A lock file whose holder cannot be read yet is being written, or was torn by a crash this long ago. */
const TORN_AFTER_MS = 5000;

/**
 * Creates the lock file if nobody holds it (or its holder is gone); never waits. The holder is
 * written beside the lock and linked into place, so a lock is never seen without its holder; a
 * takeover happens under a token only one taker can create, so no live lock is ever removed.
 */
export function tryLock(path: string, me: LockHolder): Acquired {
  makePrivateDir(dirname(path));
  const unique = `${process.pid}.${randomBytes(4).toString('hex')}`;
  const mine = `${path}.${unique}.new`;
  const fd = openPrivate(mine, { what: 'the lock' });
  try {
    writeDurably(fd, `${JSON.stringify(me)}\n`);
  } finally {
    closeSync(fd);
  }
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      if (link(mine, path)) return { acquired: true };
      const holder = readHolder(path);
      if (holder === undefined) {
        const age = ageMs(path);
        if (age === undefined) continue; // released meanwhile: try again
        if (age < TORN_AFTER_MS) return { acquired: false, holder: undefined };
      } else if (!holderIsGone(holder)) {
        return { acquired: false, holder };
      }
      // The holder is gone. One taker at a time, under a token of its own: it checks the lock still
      // holds what was judged dead, removes it and links its own, so no live lock is ever moved.
      const token = `${path}.takeover`;
      if (!link(mine, token)) {
        if ((ageMs(token) ?? 0) < TORN_AFTER_MS) return { acquired: false, holder };
        rmSync(token, { force: true }); // a taker that died mid-takeover
        if (!link(mine, token)) return { acquired: false, holder };
      }
      try {
        const now = readHolder(path);
        if (ageMs(path) !== undefined && !sameHolder(now, holder)) return { acquired: false, holder: now };
        rmSync(path, { force: true });
        if (link(mine, path)) return { acquired: true, ...(holder ? { tookOverFrom: holder } : {}) };
      } finally {
        rmSync(token, { force: true });
      }
    }
    return { acquired: false, holder: readHolder(path) };
  } finally {
    rmSync(mine, { force: true });
  }
}

/** Links `from` to `to`; false when `to` exists (the lock is held). */
function link(from: string, to: string): boolean {
  try {
    linkSync(from, to);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new LocalFileError(`cannot create the lock ${to}: ${(error as Error).message}`);
  }
}

function sameHolder(a: LockHolder | undefined, b: LockHolder | undefined): boolean {
  if (!a || !b) return a === b;
  return a.pid === b.pid && a.host === b.host && a.started_at === b.started_at;
}

/** How old the file is; undefined when there is none. */
function ageMs(path: string): number | undefined {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}

export function unlock(path: string, me: LockHolder): void {
  const holder = readHolder(path);
  if (holder && holder.pid === me.pid && holder.host === me.host) rmSync(path, { force: true });
}

/**
 * A short exclusive section (a ledger append): waits for the lock, which is held for
 * milliseconds at a time, and runs `work` under it.
 */
export async function withShortLock<T>(path: string, work: () => T, { patienceMs = 30_000 } = {}): Promise<T> {
  const me = currentHolder();
  let waited = 0;
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    const attempt = tryLock(path, me);
    if (attempt.acquired) break;
    if (waited >= patienceMs) {
      throw new LocalFileError(
        `the lock ${path} has been held for ${patienceMs / 1000} s by ${attempt.holder ? describeHolder(attempt.holder) : 'an unknown process'}`,
      );
    }
    await sleep(delay);
    waited += delay;
  }
  try {
    return work();
  } finally {
    unlock(path, me);
  }
}
