// Lock files: who holds a piece of the store (pid, host, start), created exclusively so two runs
// never both believe they hold it. A holder whose pid is dead on this host is taken over with a
// warning; a holder on another host is never presumed dead.

import { closeSync, openSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalFileError } from '../errors.js';
import { makePrivateDir, writeDurably, writeFileAtomic } from '../io/durable.js';
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

/** Whether `holder` is a process that is certainly gone: its pid is dead on this very host. */
export function holderIsGone(holder: LockHolder): boolean {
  if (holder.host !== hostname()) return false;
  if (holder.pid === process.pid) return false;
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

/** Creates the lock file if nobody holds it (or its holder is gone); never waits. */
export function tryLock(path: string, me: LockHolder): Acquired {
  makePrivateDir(dirname(path));
  const body = `${JSON.stringify(me)}\n`;
  try {
    const fd = openSync(path, 'wx', 0o600);
    try {
      writeDurably(fd, body);
    } finally {
      closeSync(fd);
    }
    return { acquired: true };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST')
      throw new LocalFileError(`cannot create the lock ${path}: ${(error as Error).message}`);
  }
  const holder = readHolder(path);
  // A lock file with no readable holder was torn by a crash mid-write: as dead as a dead pid.
  if (holder && !holderIsGone(holder)) return { acquired: false, holder };
  // Take over: the new holder replaces the old in one rename; reading it back tells which of two
  // simultaneous takers won.
  const mine = `${path}.${process.pid}.take`;
  writeFileAtomic(mine, body);
  renameSync(mine, path);
  const now = readHolder(path);
  if (now?.pid === me.pid && now.host === me.host && now.started_at === me.started_at) {
    return { acquired: true, ...(holder ? { tookOverFrom: holder } : {}) };
  }
  return { acquired: false, holder: now };
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
