// Output files and inputs (SPEC §4 "file modes", §5, §6): every file 0600 and folder 0700 whatever
// the umask or an existing file's mode, symbolic links refused and their targets untouched, a full
// disk is exit 3, temp folders of killed runs swept at the next start, FIFO and pipe input, invalid
// UTF-8 flagged per line; the audit CSV's BOM, line order and a closed stdout.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { after, describe, test } from 'node:test';
import { parse } from 'csv-parse/sync';
import { EVENT_COLUMNS, eventRow, USER_COLUMNS, userRow } from '../src/core/audit-row.js';
import { AuditCsv } from '../src/io/csv.js';
import { makePrivateDir, writeFileAtomic } from '../src/io/durable.js';
import {
  assertWritable,
  isClosedPipeError,
  PipeWatch,
  privateTempDir,
  removeTempDir,
  Spill,
  spoolInput,
  sweepStaleTempDirs,
  writeLines,
} from '../src/io/files.js';
import { JsonlWriter } from '../src/io/jsonl.js';
import { readableOnce, readLines, type InputLine } from '../src/io/lines.js';
import { LocalFileError } from '../src/errors.js';

const FILES_MODULE = fileURLToPath(new URL('../src/io/files.ts', import.meta.url));
const CSV_MODULE = fileURLToPath(new URL('../src/io/csv.ts', import.meta.url));
const ROW_MODULE = fileURLToPath(new URL('../src/core/audit-row.ts', import.meta.url));
const HAS_DEV_FULL = existsSync('/dev/full') ? false : 'no /dev/full on this system';
const HAS_MKFIFO = spawnSync('mkfifo', ['--version']).error ? 'no mkfifo on this system' : false;

const scratch = mkdtempSync(join(tmpdir(), 'yotpo-insider-files-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let folders = 0;
const folder = () => {
  const dir = join(scratch, `case-${++folders}`);
  mkdirSync(dir);
  return dir;
};

const modeOf = (path: string) => statSync(path).mode & 0o777;
const exitCodeIs = (code: 2 | 3) => (error: unknown) => error instanceof LocalFileError && error.exitCode === code;

/** Each writer the tool has, writing one record to `path`. */
const WRITERS: Record<string, (path: string) => Promise<void>> = {
  'failed file (JsonlWriter)': async (path) => {
    const writer = new JsonlWriter<{ n: number }>(path, 'the failed file');
    writer.write({ n: 1 });
    await writer.close();
  },
  'audit CSV': async (path) => {
    const csv = new AuditCsv(path, USER_COLUMNS, process.stdout);
    csv.write(userRow('would_send', '', 'a@example.com', {}));
    await csv.close();
  },
  writeLines: (path) => writeLines(path, ['one', 'two']),
  writeFileAtomic: async (path) => writeFileAtomic(path, '{"state":1}\n'),
};

describe('file modes', () => {
  test('every writer creates 0600 files and 0700 folders under umask 0', async (t) => {
    const previous = process.umask(0);
    t.after(() => process.umask(previous));
    for (const [name, write] of Object.entries(WRITERS)) {
      const root = folder();
      const path = join(root, 'new', 'nested', 'out.txt');
      await write(path);
      assert.equal(modeOf(path), 0o600, `${name}: file`);
      assert.equal(modeOf(join(root, 'new')), 0o700, `${name}: created folder`);
      assert.equal(modeOf(join(root, 'new', 'nested')), 0o700, `${name}: created folder`);
    }
    const dir = folder();
    const existingMode = modeOf(dir);
    makePrivateDir(join(dir, 'a', 'b'));
    assert.equal(modeOf(join(dir, 'a')), 0o700);
    assert.equal(modeOf(join(dir, 'a', 'b')), 0o700);
    assert.equal(modeOf(dir), existingMode, 'an existing folder keeps its mode');

    const temp = privateTempDir();
    t.after(() => removeTempDir(temp));
    assert.equal(modeOf(temp), 0o700, 'temporary folder');
    const spill = new Spill<{ n: number }>();
    t.after(() => spill.remove());
    await spill.write({ n: 1 });
    assert.equal(modeOf(spill.path), 0o600, 'spill file');
    const read: { n: number }[] = [];
    for await (const item of spill.read()) read.push(item);
    assert.deepEqual(read, [{ n: 1 }]);
  });

  test('a file that existed as 0644 is 0600 once written', async () => {
    for (const [name, write] of Object.entries(WRITERS)) {
      const path = join(folder(), 'existing.txt');
      writeFileSync(path, 'old\n');
      chmodSync(path, 0o644);
      await write(path);
      assert.equal(modeOf(path), 0o600, name);
    }
  });

  test('an output path that is a symbolic link is refused (exit 2) and its target untouched', async () => {
    for (const [name, write] of Object.entries(WRITERS)) {
      const dir = folder();
      const target = join(dir, 'target.txt');
      const link = join(dir, 'link.txt');
      writeFileSync(target, 'precious\n');
      chmodSync(target, 0o644);
      symlinkSync(target, link);
      await assert.rejects(write(link), exitCodeIs(2), name);
      assert.throws(() => assertWritable(link, 'the output'), exitCodeIs(2), `${name}: checked before the run`);
      assert.equal(readFileSync(target, 'utf8'), 'precious\n', `${name}: target content`);
      assert.equal(modeOf(target), 0o644, `${name}: target mode`);
      assert.ok(lstatSync(link).isSymbolicLink(), `${name}: the link is left as it was`);
    }
  });

  test('assertWritable refuses a folder and a path under a file (exit 2), accepts a new file', () => {
    const dir = folder();
    assert.throws(() => assertWritable(dir, 'the output'), exitCodeIs(2));
    writeFileSync(join(dir, 'plain'), '');
    assert.throws(() => assertWritable(join(dir, 'plain', 'out.csv'), 'the output'), exitCodeIs(2));
    assertWritable(join(dir, 'new', 'out.csv'), 'the output');
  });

  test('a disk that stops accepting writes (/dev/full) is a LocalFileError of exit 3', { skip: HAS_DEV_FULL }, async () => {
    assertWritable('/dev/full', 'the output');
    const jsonl = new JsonlWriter<{ n: number }>('/dev/full', 'the failed file');
    assert.throws(
      () => jsonl.write({ n: 1 }),
      (error) => exitCodeIs(3)(error) && /cannot write the failed file \/dev\/full/.test((error as Error).message),
    );
    await jsonl.close();
    await assert.rejects(WRITERS['audit CSV']!('/dev/full'), exitCodeIs(3));
    await assert.rejects(writeLines('/dev/full', ['x'.repeat(100_000)]), exitCodeIs(3));
    assert.equal(modeOf('/dev/full') & 0o666, 0o666, 'a device keeps its own mode');
  });
});

/** Starts a process that creates a private temp folder under `root` and waits; resolves with its folder. */
async function tempDirOwner(root: string) {
  const script = `import { privateTempDir } from ${JSON.stringify(FILES_MODULE)}; import { writeFileSync } from 'node:fs';
    const dir = privateTempDir(); writeFileSync(dir + '/customers.jsonl', '{"email":"a@example.com"}\\n'); console.log(dir); process.stdin.resume();`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    env: { ...process.env, TMPDIR: root },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const [chunk] = (await once(child.stdout, 'data')) as [Buffer];
  return { child, dir: chunk.toString('utf8').trim() };
}

describe('temporary folders', () => {
  test('a killed process leaves its folder; the next start sweeps it and keeps those of live processes', async (t) => {
    const root = folder();
    const killed = await tempDirOwner(root);
    const alive = await tempDirOwner(root);
    t.after(() => alive.child.kill('SIGKILL'));
    assert.match(killed.dir, new RegExp(`/yotpo-insider-${killed.child.pid}-`), 'named with the owner pid');
    killed.child.kill('SIGKILL');
    await once(killed.child, 'exit');
    assert.ok(existsSync(killed.dir), 'SIGKILL runs no exit handler: the folder is left');
    const otherHost = join(root, `yotpo-insider-${killed.child.pid}-some.other.host-abcdef`);
    mkdirSync(otherHost);
    const unrelated = join(root, 'yotpo-insider-test-abcdef');
    mkdirSync(unrelated);

    const removed = sweepStaleTempDirs(root);
    assert.deepEqual(removed, [killed.dir]);
    assert.ok(!existsSync(killed.dir), 'the dead pid folder is swept');
    assert.ok(existsSync(alive.dir), 'a live process keeps its folder');
    assert.ok(existsSync(otherHost), 'another host may run that pid: kept');
    assert.ok(existsSync(unrelated), 'a folder not named by the tool is kept');
  });

  test('a folder of this process is kept by the sweep and removed at removeTempDir', () => {
    const dir = privateTempDir();
    assert.deepEqual(
      sweepStaleTempDirs().filter((removed) => removed === dir),
      [],
    );
    assert.ok(existsSync(dir));
    removeTempDir(dir);
    assert.ok(!existsSync(dir));
  });
});

async function collect(input: string): Promise<InputLine[]> {
  const lines: InputLine[] = [];
  for await (const line of readLines(input)) lines.push(line);
  return lines;
}

const writers: ChildProcess[] = [];
after(() => {
  for (const child of writers) if (child.exitCode === null) child.kill('SIGKILL');
});

/** A FIFO in a fresh folder, written by a child process (so this process only reads). */
function fifoWithWriter(bytes: Buffer): string {
  const path = join(folder(), 'input.fifo');
  const made = spawnSync('mkfifo', [path]);
  assert.equal(made.status, 0, String(made.stderr));
  const dataFile = `${path}.data`;
  writeFileSync(dataFile, bytes);
  const child = spawn(
    process.execPath,
    ['-e', `require('fs').createReadStream(${JSON.stringify(dataFile)}).pipe(require('fs').createWriteStream(${JSON.stringify(path)}))`],
    { stdio: 'inherit' },
  );
  // A writer whose reader never came (a failed assertion) must not keep the test process alive.
  child.unref();
  writers.push(child);
  return path;
}

const manyLines = (count: number) =>
  Array.from({ length: count }, (_, i) => JSON.stringify({ line: i + 1, email: `user${i}@example.com` }));

describe('input lines', () => {
  test('a FIFO is read whole, plain or gzip (no seek, no ESPIPE)', { skip: HAS_MKFIFO }, async () => {
    const texts = manyLines(20_000);
    const plain = fifoWithWriter(Buffer.from(`${texts.join('\n')}\n`));
    assert.equal(readableOnce(plain), true);
    const lines = await collect(plain);
    assert.equal(lines.length, texts.length);
    assert.deepEqual(
      lines.map((line) => line.text),
      texts,
    );
    assert.deepEqual(
      lines.map((line) => line.lineNumber),
      texts.map((_, i) => i + 1),
    );

    const gzipped = fifoWithWriter(gzipSync(`${texts.join('\n')}\n`));
    assert.deepEqual(
      (await collect(gzipped)).map((line) => line.text),
      texts,
      'gzip found by its magic bytes, without a seek',
    );
  });

  test('a FIFO spooled for two passes reads the same bytes twice', { skip: HAS_MKFIFO }, async () => {
    const bytes = Buffer.concat([Buffer.from('\uFEFF{"a":1}\r\n'), Buffer.from([0x7b, 0xff, 0x7d, 0x0a]), Buffer.from('{"b":2}')]);
    const fifo = fifoWithWriter(bytes);
    const spooled = await spoolInput(fifo);
    try {
      assert.equal(readableOnce(spooled.path), false);
      assert.equal(modeOf(spooled.path), 0o600);
      assert.deepEqual(readFileSync(spooled.path), bytes, 'byte for byte');
      const first = await collect(spooled.path);
      assert.deepEqual(await collect(spooled.path), first);
      assert.deepEqual(first, [
        { lineNumber: 1, text: '{"a":1}' },
        { lineNumber: 2, text: '{\uFFFD}', invalidUtf8: true },
        { lineNumber: 3, text: '{"b":2}' },
      ]);
    } finally {
      spooled.remove();
    }
    assert.ok(!existsSync(spooled.path));
  });

  test('invalid UTF-8 is flagged per line; valid non-ASCII and a literal U+FFFD are not', async () => {
    const path = join(folder(), 'input.jsonl');
    writeFileSync(
      path,
      Buffer.concat([
        Buffer.from('{"name":"Gölď 🥇 金"}\n'),
        Buffer.from([0x7b, 0x22, 0xc3, 0x22, 0x7d, 0x0a]), // a lone lead byte
        Buffer.from('{"name":"\uFFFD on purpose"}\n'),
        Buffer.from([0xed, 0xa0, 0x80, 0x0a]), // an encoded surrogate, never valid UTF-8
        Buffer.from('\n'),
        Buffer.from([0xf0, 0x9f, 0xa5]), // a sequence cut short by the end of the input
      ]),
    );
    const lines = await collect(path);
    assert.deepEqual(
      lines.map((line) => [line.lineNumber, line.invalidUtf8 ?? false]),
      [
        [1, false],
        [2, true],
        [3, false],
        [4, true],
        [5, false],
        [6, true],
      ],
    );
    assert.equal(lines[0]!.text, '{"name":"Gölď 🥇 金"}');
  });

  test('line endings split across read chunks: \\r\\n is one ending, a character cut by the chunk is whole', async () => {
    const chunk = 64 * 1024; // the read stream's chunk size
    const path = join(folder(), 'input.jsonl');
    const long = 'a'.repeat(chunk - 1);
    // \r is the first chunk's last byte and its \n the second's first; é's two bytes straddle the
    // second and third chunks (1 + 5 + chunk - 7 bytes before it in the second).
    writeFileSync(path, `${long}\r\nb\rc\r\n${'x'.repeat(chunk - 7)}é\n\uFEFFkept`);
    const lines = await collect(path);
    assert.deepEqual(
      lines.map((line) => line.text.slice(-3)),
      ['aaa', 'b', 'c', 'xxé', 'ept'],
    );
    assert.equal(lines[0]!.text.length, chunk - 1);
    assert.ok(lines.every((line) => !line.invalidUtf8));
    assert.equal(lines[4]!.text, '\uFEFFkept', 'only the first line loses a BOM');
  });

  test('a BOM on the first line is dropped; a missing file and a folder are exit 2', async () => {
    const path = join(folder(), 'input.jsonl');
    writeFileSync(path, '\uFEFF{"a":1}\n\n{"b":2}\n');
    assert.deepEqual(await collect(path), [
      { lineNumber: 1, text: '{"a":1}' },
      { lineNumber: 2, text: '' },
      { lineNumber: 3, text: '{"b":2}' },
    ]);
    await assert.rejects(
      collect(join(folder(), 'missing.jsonl')),
      (error: Error & { exitCode?: number }) => error.exitCode === 2 && /no such file/.test(error.message),
    );
    await assert.rejects(
      collect(folder()),
      (error: Error & { exitCode?: number }) => error.exitCode === 2 && /is a directory/.test(error.message),
    );
  });
});

describe('audit CSV', () => {
  const readCsvFile = (path: string) => parse(readFileSync(path), { bom: false }) as string[][];

  test('a UTF-8 byte-order mark only with the excel option', async () => {
    const dir = folder();
    for (const excel of [false, true]) {
      const path = join(dir, `audit-${excel}.csv`);
      const csv = new AuditCsv(path, USER_COLUMNS, process.stdout, { excel });
      csv.write(userRow('would_send', '', 'gölď@example.com', { name: 'Gölď' }, { source: 'loyalty' }));
      await csv.close();
      const bytes = readFileSync(path);
      const hasBom = bytes.subarray(0, 3).equals(Buffer.from([0xef, 0xbb, 0xbf]));
      assert.equal(hasBom, excel, `excel: ${excel}`);
      assert.ok(
        bytes
          .subarray(hasBom ? 3 : 0)
          .toString('utf8')
          .startsWith('status,reason,email,'),
      );
    }
  });

  test('source and omitted end every backfill row; omitted ends every replay row; status uncertain', async () => {
    const dir = folder();
    const users = join(dir, 'users.csv');
    const csv = new AuditCsv(users, USER_COLUMNS, process.stdout);
    csv.write(
      userRow(
        'uncertain',
        'answer lost',
        'a@example.com',
        { name: 'A' },
        { source: 'reviewer', omitted: ['birthday: no year', 'yotpo_points_earned: not a number'] },
      ),
    );
    csv.write(userRow('sent', '', 'b@example.com', {}));
    await csv.close();
    const [header, first, second] = readCsvFile(users);
    assert.deepEqual(header!.slice(-2), ['source', 'omitted']);
    assert.equal(header!.length, USER_COLUMNS.length);
    assert.deepEqual(first!.slice(0, 3), ['uncertain', 'answer lost', 'a@example.com']);
    assert.deepEqual(first!.slice(-2), ['reviewer', 'birthday: no year|yotpo_points_earned: not a number']);
    assert.deepEqual(second!.slice(-2), ['', ''], 'no source given, nothing omitted');

    const events = join(dir, 'events.csv');
    const replay = new AuditCsv(events, EVENT_COLUMNS, process.stdout);
    replay.write(
      eventRow(
        1,
        'would_send',
        '',
        'a@example.com',
        'yotpo_points_earned',
        '2026-11-20T14:03:11Z',
        {},
        {},
        new Map([['event.yotpo_event_reward_point: not a number', 1]]).keys(),
      ),
    );
    await replay.close();
    const [eventHeader, row] = readCsvFile(events);
    assert.equal(eventHeader!.at(-1), 'omitted');
    assert.equal(row!.at(-1), 'event.yotpo_event_reward_point: not a number');
    assert.equal(row!.length, eventHeader!.length);
  });

  test('rows settled out of order are written in input line order, holding only the early ones', async () => {
    const path = join(folder(), 'ordered.csv');
    const csv = new AuditCsv(path, EVENT_COLUMNS, process.stdout);
    const lines = [1, 2, 4, 5, 7, 8]; // 3 and 6 are blank: never reserved
    for (const line of lines) csv.reserveLine(line);
    const row = (line: number) => eventRow(line, 'sent', '', `u${line}@example.com`, undefined, undefined, {}, {});
    const written = () => csv.rows;
    csv.writeLine(2, row(2));
    csv.writeLine(5, row(5));
    assert.equal(written(), 0, 'line 1 is not settled: nothing written yet');
    csv.writeLine(1, row(1));
    assert.equal(written(), 2, 'lines 1 and 2 go out as soon as 1 is settled');
    csv.writeLine(4, row(4));
    assert.equal(written(), 4, '4 and the held 5');
    csv.writeLine(8, row(8));
    csv.writeLine(7, row(7));
    assert.equal(written(), 6);
    csv.reserveLine(9);
    csv.reserveLine(10);
    csv.writeLine(10, row(10));
    await csv.close();
    const order = readCsvFile(path)
      .slice(1)
      .map((cells) => Number(cells[0]));
    assert.deepEqual(order, [1, 2, 4, 5, 7, 8, 10], 'a row held when the run stopped is still written, in order');
  });

  test('stdout that fails with EPIPE: the writer reports it and drops rows, nothing throws', async () => {
    let calls = 0;
    const closed = new Writable({
      write(_chunk, _encoding, callback) {
        callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    const csv = new AuditCsv('-', USER_COLUMNS, closed, { onStdoutClosed: () => calls++ });
    for (let i = 0; i < 1000 && !csv.stdoutClosed; i++) {
      csv.write(userRow('would_send', '', `u${i}@example.com`, {}));
      await csv.drained();
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(csv.stdoutClosed, true);
    assert.equal(calls, 1);
    csv.write(userRow('would_send', '', 'late@example.com', {}));
    await csv.drained();
    await csv.close();
  });

  test('a real pipe closed by its reader (| head -1): the process stops quietly with exit 0', async () => {
    const script = `import { AuditCsv } from ${JSON.stringify(CSV_MODULE)};
      import { USER_COLUMNS, userRow } from ${JSON.stringify(ROW_MODULE)};
      const csv = new AuditCsv('-', USER_COLUMNS, process.stdout, { onStdoutClosed: () => process.stderr.write('stdout closed\\n') });
      for (let i = 0; i < 10_000_000 && !csv.stdoutClosed; i++) {
        csv.write(userRow('would_send', '', 'u' + i + '@example.com', { name: 'x'.repeat(100) }));
        await csv.drained();
        if (i % 100 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      await csv.close();
      process.exitCode = csv.stdoutClosed ? 0 : 5;`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const [first] = (await once(child.stdout, 'data')) as [Buffer];
    assert.ok(first.toString('utf8').startsWith('status,reason,email,'), 'the header came first');
    child.stdout.destroy(); // the reader goes away, as `head -1` does after its line
    const [code] = (await once(child, 'exit')) as [number];
    assert.equal(code, 0, stderr);
    assert.match(stderr, /stdout closed/);
    assert.doesNotMatch(stderr, /EPIPE|Error/);
  });
});

describe('standard streams', () => {
  test('PipeWatch turns an EPIPE on stdout or stderr into `closed`, called back once, never thrown', async () => {
    const stream = new Writable({
      write(_chunk, _encoding, callback) {
        callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    let calls = 0;
    const watch = new PipeWatch(stream, () => calls++);
    assert.equal(watch.closed, false);
    stream.write('first\n');
    await once(stream, 'error');
    stream.write('after\n');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(watch.closed, true);
    assert.equal(calls, 1);
    assert.equal(isClosedPipeError(Object.assign(new Error('x'), { code: 'EPIPE' })), true);
    assert.equal(isClosedPipeError(Object.assign(new Error('x'), { code: 'ENOSPC' })), false);
  });
});
