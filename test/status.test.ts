// `yotpo-insider status` (SPEC §4): the account's folder, its checkpoints, the ledger by state and the
// last runs, after a run that completed, one interrupted (SIGINT) and one that crashed (SIGKILL).

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { main } from '../src/cli.js';
import { runBackfill } from '../src/commands/backfill.js';
import { runReplay } from '../src/commands/replay.js';
import { startSandbox, type Sandbox } from '../src/sandbox/index.js';
import { captureIo, FAST, spawnCli, workdir } from './helpers.js';

let sandbox: Sandbox;
before(async () => {
  sandbox = await startSandbox({ customers: 250, reviews: 0, seed: 41 });
});
after(() => sandbox.close());

function eventFile(cwd: string, count: number): void {
  const base = Date.now() - 3600 * 1000;
  const lines = Array.from({ length: count }, (_, i) =>
    JSON.stringify({
      topic: 'swell/points/earned',
      customer: { email: `m${i % 40}@example.com` },
      perk: { id: 7_000_000 + i, reward_points: 1, completed_at: new Date(base + i * 1000).toISOString().replace(/\.\d+Z$/, 'Z') },
    }),
  );
  writeFileSync(join(cwd, 'events.jsonl'), `${lines.join('\n')}\n`);
}

/** Starts a replay, holds its first batch unanswered, then sends `signal`; resolves with the exit. */
async function stoppedReplay(cwd: string, signal: 'SIGINT' | 'SIGKILL'): Promise<{ code: number | null; pid: number }> {
  sandbox.setFaults({ afterStore: { mode: 'hold', count: 1 } });
  const stored = sandbox.storedBatches;
  const live = spawnCli(['replay', 'events.jsonl', '--insider-rps', '0', '--batch-size', '20', '--concurrency', '1'], {
    cwd,
    env: sandbox.env,
  });
  await sandbox.waitForStored(stored + 1);
  live.child.kill(signal);
  sandbox.setFaults({ afterStore: null });
  // SIGINT: the wrap-up waits for the answer in flight; SIGKILL: nothing is left to answer.
  sandbox.releaseHeld();
  const { code } = await live.closed;
  return { code, pid: live.child.pid! };
}

async function status(cwd: string, json: boolean): Promise<{ code: number; out: string; err: string }> {
  const io = captureIo(sandbox.env, cwd);
  const code = await main(['node', 'yotpo-insider', 'status', ...(json ? ['--json'] : [])], io);
  return { code, out: io.out(), err: io.err() };
}

test('status after a completed, an interrupted and a crashed run: the crashed one did not finish', async () => {
  const cwd = workdir();
  eventFile(cwd, 200);
  const completed = await runBackfill({ ...FAST, reviews: false, limit: 100 }, captureIo(sandbox.env, cwd));
  assert.equal(completed.exit_code, 0);
  const interrupted = await stoppedReplay(cwd, 'SIGINT');
  assert.equal(interrupted.code, 130);
  const crashed = await stoppedReplay(cwd, 'SIGKILL');
  assert.equal(crashed.code, null, 'killed');

  const { code, out } = await status(cwd, true);
  assert.equal(code, 0);
  const report = JSON.parse(out);
  assert.equal(report.account.partner.toLowerCase(), sandbox.env.INSIDER_PARTNER_NAME!.toLowerCase());
  assert.equal(report.state_dir, completed.state_dir);
  assert.deepEqual(
    report.runs.map((run: { command: string; outcome: string; exit_code?: number; pid: number }) => [
      run.command,
      run.outcome,
      run.exit_code ?? null,
    ]),
    [
      ['backfill', 'finished', 0],
      ['replay', 'finished', 130],
      ['replay', 'did not finish', null],
    ],
  );
  assert.equal(report.runs[2].pid, crashed.pid);
  assert.equal(report.checkpoints.length, 1, 'the --limit backfill left its checkpoint');
  assert.equal(report.checkpoints[0].phase, 'loyalty');
  assert.ok(report.checkpoints[0].pages_confirmed >= 1);
  assert.ok(report.ledger.keys.delivered > 0, JSON.stringify(report.ledger));
  assert.ok(report.ledger.keys['in flight'] > 0, 'the crashed run left keys in flight: status only reads');

  const plain = await status(cwd, false);
  assert.equal(plain.code, 0);
  assert.equal(plain.out, '', 'the readable form is on stderr');
  assert.match(plain.err, new RegExp(`state: +${completed.state_dir!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  assert.match(plain.err, /backfill loyalty \(recent\), --no-reviews: loyalty, \d+ loyalty page\(s\)/);
  assert.match(plain.err, /ledger: \d+ delivered, \d+ uncertain, \d+ in flight, \d+ released/);
  const runLines = plain.err.split('\n').filter((line) => line.startsWith('run '));
  assert.equal(runLines.length, 3);
  assert.match(runLines[0]!, /backfill, started .*, ended .*, exit 0$/);
  assert.match(runLines[1]!, /replay, started .*, ended .*, exit 130$/);
  assert.match(runLines[2]!, /replay, started .*, did not finish$/);
});

test('status of an account with no state yet, and without Insider variables', async () => {
  const cwd = workdir();
  const empty = await status(cwd, false);
  assert.equal(empty.code, 0, empty.err);
  assert.match(empty.err, /backfill checkpoints: none/);
  assert.match(empty.err, /runs: none yet/);

  const io = captureIo({}, cwd);
  assert.equal(await main(['node', 'yotpo-insider', 'status'], io), 2);
  assert.match(io.err(), /INSIDER_PARTNER_NAME/);
});

test('a replay after a crash turns its in-flight keys uncertain, and status shows them', async () => {
  const cwd = workdir();
  eventFile(cwd, 100);
  await stoppedReplay(cwd, 'SIGKILL');
  const again = await runReplay('events.jsonl', { insiderRps: 0, batchSize: 20, failed: 'failed.jsonl' }, captureIo(sandbox.env, cwd));
  assert.ok(again.events.skipped > 0);
  const report = JSON.parse((await status(cwd, true)).out);
  assert.equal(report.ledger.keys['in flight'], 0);
  assert.equal(report.ledger.keys.uncertain, again.skipped_reasons['delivery uncertain']);
  assert.match((await status(cwd, false)).err, /uncertain events: yotpo-insider verify --uncertain resolves them/);
});
