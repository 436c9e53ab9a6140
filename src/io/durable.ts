// Durable, private files: what the state store and every output build on. A file the tool writes
// is 0600 and a folder it creates 0700 whatever the umask (SPEC §4); an output path that is a
// symbolic link is refused, never followed; a replaced file is written beside its target, fsync'd,
// renamed over it and its folder fsync'd, so a crash leaves either the old or the new content.

import { closeSync, constants, fchmodSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync, chmodSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { LocalFileError } from '../errors.js';

/** Creates `dir` (and missing parents) as 0700; an existing folder keeps its mode. */
export function makePrivateDir(dir: string): void {
  let missing = dir;
  const created: string[] = [];
  while (!exists(missing)) {
    created.push(missing);
    const parent = dirname(missing);
    if (parent === missing) break;
    missing = parent;
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // mkdir's mode is masked by the umask: set it outright on the folders this call created.
  for (const folder of created) chmodSync(folder, 0o700);
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Opens a file for writing without following a symbolic link, and makes it 0600 whatever the umask
 * or the mode it had. `append` keeps what is there; otherwise it is truncated.
 */
export function openPrivate(path: string, { append = false, what = path }: { append?: boolean; what?: string } = {}): number {
  makePrivateDir(dirname(path));
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | (append ? constants.O_APPEND : constants.O_TRUNC);
  let fd: number;
  try {
    fd = openSync(path, flags, 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOOP') throw new LocalFileError(`${what} ${path} is a symbolic link: refusing to follow it`, 'usage');
    throw new LocalFileError(`cannot write ${what} ${path}: ${(error as Error).message}`);
  }
  fchmodSync(fd, 0o600);
  return fd;
}

/** Writes all of `text` at the file's position (or end, when appending), then fsyncs. */
export function writeDurably(fd: number, text: string | Buffer): void {
  const buffer = typeof text === 'string' ? Buffer.from(text) : text;
  let offset = 0;
  while (offset < buffer.length) offset += writeSync(fd, buffer, offset, buffer.length - offset);
  fsyncSync(fd);
}

/** Replaces `path` with `text` atomically and durably (temp file, fsync, rename, fsync of the folder). */
export function writeFileAtomic(path: string, text: string, what = path): void {
  const temp = `${path}.${process.pid}.${Date.now().toString(36)}.tmp`;
  try {
    const fd = openPrivate(temp, { what });
    try {
      writeDurably(fd, text);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
    syncDir(dirname(path));
  } catch (error) {
    rmSync(temp, { force: true });
    if (error instanceof LocalFileError) throw error;
    throw new LocalFileError(`cannot write ${what} ${path}: ${(error as Error).message}`);
  }
}

/** fsync of a folder, so a rename or a new file in it survives a power loss. */
export function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some file systems refuse fsync on a folder; the rename itself is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
