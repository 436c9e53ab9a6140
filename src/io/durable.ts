// Durable, private files: what the state store and every output build on. A file the tool writes
// is 0600 and a folder it creates 0700 whatever the umask (SPEC §4); an output path that is a
// symbolic link is refused, never followed; a replaced file is written beside its target, fsync'd,
// renamed over it and its folder fsync'd, so a crash leaves either the old or the new content.

import {
  chmodSync,
  closeSync,
  constants,
  createWriteStream,
  fchmodSync,
  fstatSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  type WriteStream,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { LocalFileError } from '../errors.js';

/**
 * What a failed open or mkdir means for the run: a path that cannot work (a symbolic link, a folder,
 * no permission, a read-only file system) is the operator's to change (exit 2); anything else (disk
 * full, an I/O error) is a file that stopped accepting writes (exit 3, resumable).
 */
export function fileErrorKind(error: unknown): 'usage' | 'stopped' {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const badPath = ['ELOOP', 'EISDIR', 'ENOTDIR', 'EACCES', 'EPERM', 'EROFS', 'ENOENT', 'ENAMETOOLONG', 'EEXIST', 'ENXIO', 'ETXTBSY'];
  return code !== undefined && badPath.includes(code) ? 'usage' : 'stopped';
}

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
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // mkdir's mode is masked by the umask: set it outright on the folders this call created.
    for (const folder of created) chmodSync(folder, 0o700);
  } catch (error) {
    throw new LocalFileError(`cannot create the folder ${dir}: ${(error as Error).message}`, fileErrorKind(error));
  }
}

function isSymbolicLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
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
 * or the mode it had. `append` keeps what is there; otherwise it is truncated. A device (/dev/null,
 * /dev/stdout) is written as it is: its mode is the system's, not ours to change.
 */
export function openPrivate(path: string, { append = false, what }: { append?: boolean; what?: string | undefined } = {}): number {
  const label = fileLabel(path, what);
  makePrivateDir(dirname(path));
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | (append ? constants.O_APPEND : constants.O_TRUNC);
  let fd: number;
  try {
    fd = openSync(path, flags, 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOOP')
      throw new LocalFileError(`${label} is a symbolic link: refusing to follow it`, 'usage');
    throw new LocalFileError(`cannot write ${label}: ${(error as Error).message}`, fileErrorKind(error));
  }
  try {
    if (fstatSync(fd).isFile()) fchmodSync(fd, 0o600);
  } catch (error) {
    closeSync(fd);
    throw new LocalFileError(`cannot make ${label} private (0600): ${(error as Error).message}`, fileErrorKind(error));
  }
  return fd;
}

/** `the failed file /x/failed.jsonl`, or the bare path when there is no description. */
export function fileLabel(path: string, what?: string): string {
  return what && what !== path ? `${what} ${path}` : path;
}

/**
 * A write stream on a private file (openPrivate's guarantees), for outputs written with backpressure.
 * Its write errors (disk full) arrive as 'error' events: watch it with a WriteGuard (files.ts).
 */
export function createPrivateWriteStream(path: string, options: { append?: boolean; what?: string | undefined } = {}): WriteStream {
  const fd = openPrivate(path, options);
  return createWriteStream(path, { fd, autoClose: true });
}

/** Writes all of `text` at the file's position (or end, when appending), without fsync. */
export function writeFully(fd: number, text: string | Buffer): void {
  const buffer = typeof text === 'string' ? Buffer.from(text) : text;
  let offset = 0;
  while (offset < buffer.length) offset += writeSync(fd, buffer, offset, buffer.length - offset);
}

/** Writes all of `text` at the file's position (or end, when appending), then fsyncs. */
export function writeDurably(fd: number, text: string | Buffer): void {
  writeFully(fd, text);
  fsyncSync(fd);
}

/** fsync of a file, where the file supports it (a device such as /dev/null may not: that is no failure). */
export function syncFile(fd: number): void {
  try {
    fsyncSync(fd);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EROFS') throw error;
  }
}

/**
 * Replaces `path` with `text` atomically and durably (temp file, fsync, rename, fsync of the folder).
 * A `path` that is a symbolic link is refused like any output (the rename would replace the link).
 */
export function writeFileAtomic(path: string, text: string, what?: string): void {
  if (isSymbolicLink(path)) throw new LocalFileError(`${fileLabel(path, what)} is a symbolic link: refusing to replace it`, 'usage');
  const temp = `${path}.${process.pid}.${Date.now().toString(36)}.tmp`;
  try {
    const fd = openPrivate(temp, { what: what ?? path });
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
    throw new LocalFileError(`cannot write ${fileLabel(path, what)}: ${(error as Error).message}`);
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
