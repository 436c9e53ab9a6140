// The state store's parts on their own (SPEC §4): the life of an event key in the shared ledger,
// recovery after a crash (a dead run's in-flight keys, a torn last line), a ledger shorter than its
// recorded count, two writers on one folder, lock takeover, and a folder of another account.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { StoreError } from '../src/errors.js';
import { Ledger, type EventRef } from '../src/state/ledger.js';
import { currentHolder, tryLock, unlock } from '../src/state/lock.js';
import { StateStore } from '../src/state/store.js';

function folder(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'yotpo-insider-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const ref = (key: string): EventRef => ({ key, email: 'a@example.com', event_name: 'points_earned', timestamp: '2026-11-01T10:00:00Z' });

/** The pid of a process that has exited: certainly dead on this host. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

const logLines = (dir: string) =>
  readFileSync(join(dir, 'ledger.log'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { k: string; s: string });

describe('ledger: the life of an event key', () => {
  test('in flight → delivered; in flight → uncertain → released → reserved again', async (t) => {
    const dir = folder(t);
    const first = await Ledger.open(dir, { runId: 'run-1', writable: true });
    assert.deepEqual(
      [...(await first.reserve([ref('k1'), ref('k2')]))],
      [
        ['k1', 'reserved'],
        ['k2', 'reserved'],
      ],
    );
    assert.equal(first.stateOf('k1'), 'in flight');
    await first.settle(['k1'], 'delivered');
    await first.settle(['k2'], 'uncertain');
    assert.equal(first.stateOf('k1'), 'delivered');
    assert.equal(first.stateOf('k2'), 'uncertain');
    assert.deepEqual(
      first.uncertainEntries().map((entry) => [entry.key, entry.email, entry.run]),
      [['k2', 'a@example.com', 'run-1']],
      'an uncertain key keeps what identifies it',
    );
    await first.close();

    const second = await Ledger.open(dir, { runId: 'run-2', writable: true });
    const verdicts = await second.reserve([ref('k1'), ref('k2')]);
    assert.equal(verdicts.get('k1'), 'already delivered');
    assert.equal(verdicts.get('k2'), 'delivery uncertain');
    assert.equal(
      (await second.reserve([ref('k1')], { delivered: true })).get('k1'),
      'reserved',
      'replay --force sends a delivered key again',
    );
    await second.settle(['k1'], 'delivered');
    await second.settle(['k2'], 'released');
    assert.equal(second.stateOf('k2'), 'released');
    assert.equal((await second.reserve([ref('k2')])).get('k2'), 'reserved', 'a released key is sent again');
    assert.equal(second.stateOf('k2'), 'in flight');
    await second.close();

    const reader = await Ledger.open(dir, { runId: 'reader', writable: false });
    assert.deepEqual(reader.counts(), { 'in flight': 1, delivered: 1, uncertain: 0, released: 0 });
  });

  test('a dry run (read-only) says what would be sent and writes nothing', async (t) => {
    const dir = folder(t);
    const dry = await Ledger.open(dir, { runId: 'dry', writable: false });
    assert.equal((await dry.reserve([ref('k1')])).get('k1'), 'reserved');
    await dry.close();
    assert.throws(() => readFileSync(join(dir, 'ledger.log')), /ENOENT/);
  });

  test("a dead run's in-flight keys become uncertain when a live run opens the ledger", async (t) => {
    const dir = folder(t);
    const dead = deadPid();
    writeFileSync(
      join(dir, 'ledger.log'),
      `${JSON.stringify({ k: 'k1', s: 'f', r: 'crashed-run', p: dead, h: hostname(), t: '2026-11-01T10:00:00Z', e: 'a@example.com', n: 'points_earned', ts: '2026-11-01T10:00:00Z' })}\n`,
    );
    // A run of another host is never presumed dead.
    appendFileSync(
      join(dir, 'ledger.log'),
      `${JSON.stringify({ k: 'k2', s: 'f', r: 'remote-run', p: dead, h: 'another-host.example', t: '2026-11-01T10:00:00Z' })}\n`,
    );
    const reader = await Ledger.open(dir, { runId: 'reader', writable: false });
    assert.equal(reader.stateOf('k1'), 'in flight', 'a read-only open changes nothing');

    const live = await Ledger.open(dir, { runId: 'run-2', writable: true });
    assert.equal(live.recoveredUncertain, 1);
    assert.equal(live.stateOf('k1'), 'uncertain');
    assert.equal(live.stateOf('k2'), 'in flight');
    const verdicts = await live.reserve([ref('k1'), ref('k2')]);
    assert.equal(verdicts.get('k1'), 'delivery uncertain', 'never sent again silently');
    assert.equal(verdicts.get('k2'), 'in flight elsewhere');
    assert.deepEqual(
      live.uncertainEntries().map((entry) => [entry.key, entry.run, entry.email]),
      [['k1', 'crashed-run', 'a@example.com']],
    );
  });

  test('a torn last line (a crash mid-append) is cut off, and the next record sits on its own line', async (t) => {
    const dir = folder(t);
    const first = await Ledger.open(dir, { runId: 'run-1', writable: true });
    await first.reserve([ref('k1')]);
    await first.settle(['k1'], 'delivered');
    appendFileSync(join(dir, 'ledger.log'), '{"k":"k2","s":"f","r":"run-1"'); // torn
    const second = await Ledger.open(dir, { runId: 'run-2', writable: true });
    assert.equal(second.stateOf('k1'), 'delivered');
    assert.equal(second.stateOf('k2'), undefined, 'the torn record never happened');
    await second.reserve([ref('k3')]);
    assert.deepEqual(
      logLines(dir).map((line) => [line.k, line.s]),
      [
        ['k1', 'f'],
        ['k1', 'd'],
        ['k3', 'f'],
      ],
    );
  });

  test('a ledger shorter than the count ledger.json records stops the run (StoreError, exit 2)', async (t) => {
    const dir = folder(t);
    const ledger = await Ledger.open(dir, { runId: 'run-1', writable: true });
    await ledger.reserve([ref('k1'), ref('k2')]);
    await ledger.settle(['k1', 'k2'], 'delivered');
    await ledger.close();
    assert.equal(JSON.parse(readFileSync(join(dir, 'ledger.json'), 'utf8')).records, 4);
    const firstLine = readFileSync(join(dir, 'ledger.log'), 'utf8').indexOf('\n') + 1;
    truncateSync(join(dir, 'ledger.log'), firstLine);
    for (const writable of [true, false]) {
      await assert.rejects(
        Ledger.open(dir, { runId: 'run-2', writable }),
        (error: Error & { exitCode?: number }) =>
          error instanceof StoreError && error.exitCode === 2 && /holds 1 record\(s\) but .*ledger\.json says 4/.test(error.message),
      );
    }
    rmSync(join(dir, 'ledger.log'));
    await assert.rejects(Ledger.open(dir, { runId: 'run-3', writable: true }), /holds 0 record\(s\)/, 'a lost ledger too');
  });

  test('two writers on one folder never both reserve one key', async (t) => {
    const dir = folder(t);
    const a = await Ledger.open(dir, { runId: 'run-a', writable: true });
    const b = await Ledger.open(dir, { runId: 'run-b', writable: true });
    const keys = Array.from({ length: 200 }, (_, i) => ref(`k${i}`));
    const rounds = await Promise.all([
      ...Array.from({ length: 10 }, () => a.reserve(keys)),
      ...Array.from({ length: 10 }, () => b.reserve(keys)),
    ]);
    for (const { key } of keys) {
      const reserved = rounds.filter((verdicts) => verdicts.get(key) === 'reserved').length;
      assert.equal(reserved, 1, `${key} reserved ${reserved} times`);
    }
    const inFlight = logLines(dir).filter((line) => line.s === 'f');
    assert.equal(inFlight.length, keys.length, 'one in-flight record per key');
    assert.equal(new Set(inFlight.map((line) => line.k)).size, keys.length);
  });
});

describe('locks', () => {
  test('a live holder keeps the lock; a dead one is taken over, saying whose it was', (t) => {
    const dir = folder(t);
    const path = join(dir, 'checkpoints', 'backfill-x.lock');
    const parent = { pid: process.ppid, host: hostname(), started_at: '2026-11-01T10:00:00.000Z' };
    assert.equal(tryLock(path, parent).acquired, true);
    const me = currentHolder('run-me');
    const refused = tryLock(path, me);
    assert.equal(refused.acquired, false);
    assert.deepEqual(!refused.acquired && refused.holder, parent, 'the holder is named');

    const dead = { pid: deadPid(), host: hostname(), started_at: '2026-11-01T10:00:00.000Z' };
    writeFileSync(path, `${JSON.stringify(dead)}\n`);
    const taken = tryLock(path, me);
    assert.equal(taken.acquired, true);
    assert.deepEqual(taken.acquired && taken.tookOverFrom, dead);
    assert.equal(JSON.parse(readFileSync(path, 'utf8')).pid, process.pid);

    const remote = { pid: dead.pid, host: 'another-host.example', started_at: dead.started_at };
    writeFileSync(path, `${JSON.stringify(remote)}\n`);
    assert.equal(tryLock(path, me).acquired, false, 'a holder on another host is never presumed dead');
    unlock(path, me);
    assert.equal(JSON.parse(readFileSync(path, 'utf8')).host, 'another-host.example', 'unlock removes only its own lock');
  });
});

describe('account folders', () => {
  const brand = { partner: 'Brand', url: 'https://unification.useinsider.com' };

  test('one folder per account; a folder of another account is refused naming both', (t) => {
    const root = folder(t);
    const env = { YOTPO_INSIDER_STATE_DIR: root };
    const store = StateStore.open({ account: brand, env, cwd: root, writable: true });
    const same = StateStore.open({
      account: { partner: ' brand ', url: 'https://unification.useinsider.com/' },
      env,
      cwd: root,
      writable: true,
    });
    assert.equal(same.dir, store.dir, 'the partner name and URL are compared normalised');
    const other = StateStore.open({ account: { ...brand, partner: 'other-brand' }, env, cwd: root, writable: true });
    const sandbox = StateStore.open({
      account: { ...brand, url: 'http://127.0.0.1:4010' },
      env,
      cwd: root,
      writable: true,
    });
    assert.equal(new Set([store.dir, other.dir, sandbox.dir]).size, 3, 'another partner or URL is another folder');
    assert.match(
      JSON.stringify(JSON.parse(readFileSync(join(store.dir, 'account.json'), 'utf8'))),
      /"partner":"brand","url":"https:\/\/unification\.useinsider\.com"/,
    );

    assert.throws(
      () =>
        StateStore.open({
          account: { ...brand, partner: 'other-brand' },
          dir: store.dir,
          env,
          cwd: root,
          writable: false,
        }),
      (error: Error & { exitCode?: number }) =>
        error instanceof StoreError &&
        error.exitCode === 2 &&
        /belongs to partner brand at https:\/\/unification\.useinsider\.com, but this run writes to partner other-brand at https:\/\/unification\.useinsider\.com/.test(
          error.message,
        ),
    );
  });

  test('a dry run opens the store without creating anything', (t) => {
    const root = folder(t);
    const store = StateStore.open({
      account: brand,
      env: { YOTPO_INSIDER_STATE_DIR: join(root, 'state') },
      cwd: root,
      writable: false,
    });
    assert.deepEqual(store.checkpointFiles(), []);
    assert.throws(() => readFileSync(join(store.dir, 'account.json')), /ENOENT/);
  });
});
