// The state file and the files beside it: a resume under other options is refused, a run stopped
// after its last loyalty page resumes in the reviewer phase, --fresh gets past a corrupt state, the
// file's sections survive each other, the replay ledger is appended and survives a torn line, and
// a file that cannot be written stops the run with exit 2 instead of crashing it.

import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runBackfill } from '../src/commands/backfill.js';
import { JsonlWriter, type FailedRecord } from '../src/io/jsonl.js';
import { toBatchItem } from '../src/core/batcher.js';
import { Delivery } from '../src/pipeline/delivery.js';
import { toInsiderUser } from '../src/core/transform.js';
import { ApiClient, newRequestCounters } from '../src/io/http.js';
import { Ledger } from '../src/pipeline/ledger.js';
import { DEFAULT_RETRY_POLICY } from '../src/io/retry.js';
import { Uploader, type Outcome } from '../src/pipeline/uploader.js';
import { startSandbox, type Sandbox } from '../src/sandbox/index.js';
import { captureIo, FAST, normalised, receivedCounts, sandboxCustomers, workdir } from './helpers.js';

const statePathIn = (cwd: string) => join(cwd, '.yotpo-insider/state.json');
const readState = (cwd: string) => JSON.parse(readFileSync(statePathIn(cwd), 'utf8')) as Record<string, any>;

function writeState(cwd: string, state: unknown | string): void {
  mkdirSync(join(cwd, '.yotpo-insider'), { recursive: true });
  writeFileSync(statePathIn(cwd), typeof state === 'string' ? state : JSON.stringify(state));
}

describe('state file', () => {
  let sandbox: Sandbox;
  before(async () => {
    sandbox = await startSandbox({ customers: 250, reviews: 400, seed: 21 });
  });
  after(() => sandbox.close());

  test('a resume under other options is refused with exit 2 naming both, before any request; --fresh starts over', async () => {
    const cwd = workdir();
    // One page of a loyalty-only backfill, then stopped by --limit: an unfinished backfill.
    const partial = await runBackfill({ ...FAST, reviews: false, limit: 100 }, captureIo(sandbox.env, cwd));
    assert.equal(partial.exit_code, 0);
    assert.equal(readState(cwd).backfill.phase, 'loyalty');
    sandbox.reset();
    await assert.rejects(
      runBackfill({ ...FAST }, captureIo(sandbox.env, cwd)),
      (error: Error & { exitCode?: number }) =>
        error.exitCode === 2 &&
        /unfinished backfill of loyalty \(recent\), --no-reviews; this run asks for loyalty \(recent\), reviews\. .*--fresh/.test(error.message),
    );
    await assert.rejects(runBackfill({ ...FAST, reviews: false, since: '2026-01-01' }, captureIo(sandbox.env, cwd)), /asks for .*--since 2026-01-01T00:00:00.000Z/);
    assert.equal(sandbox.requests().length, 0, 'nothing requested');

    sandbox.reset();
    const fresh = await runBackfill({ ...FAST, fresh: true }, captureIo(sandbox.env, cwd));
    assert.equal(fresh.exit_code, 0);
    assert.equal(fresh.resumed, false);
    assert.deepEqual(readState(cwd).backfill.scope, { loyalty: true, reviews: true, since: null, endpoint: 'recent' });
  });

  test('the same options resume (a date written another way is the same --since)', async () => {
    const cwd = workdir();
    await runBackfill({ ...FAST, reviews: false, since: '2026-01-01', limit: 100 }, captureIo(sandbox.env, cwd));
    const io = captureIo(sandbox.env, cwd);
    const resumed = await runBackfill({ ...FAST, reviews: false, since: '2026-01-01T00:00:00Z' }, io);
    assert.equal(resumed.exit_code, 0, io.err());
    assert.equal(resumed.resumed, true);
    assert.equal(readState(cwd).backfill.phase, 'done');
  });

  test('a run stopped after its last loyalty page resumes in the reviewer phase: nobody is sent twice, nobody missed', async () => {
    const cwd = workdir();
    sandbox.reset();
    // --limit equal to the number of customers: every loyalty page is read and confirmed, and the
    // run stops before the reviewer-only users.
    const first = await runBackfill({ ...FAST, limit: 250, batchSize: 40 }, captureIo(sandbox.env, cwd));
    assert.equal(first.exit_code, 0);
    const state = readState(cwd).backfill;
    assert.equal(state.phase, 'reviewers', 'the last page settled: the loyalty phase is over');
    assert.equal(state.cursor, null);
    const loyaltySent = first.users.sent;

    const io = captureIo(sandbox.env, cwd);
    const second = await runBackfill({ ...FAST, batchSize: 40 }, io);
    assert.equal(second.exit_code, 0, io.err());
    assert.equal(second.resumed, true);
    assert.equal(second.users.read, second.users.sent, 'the resume reads only the reviewer-only users');
    const counts = receivedCounts(sandbox);
    assert.deepEqual([...counts].filter(([, n]) => n !== 1), [], 'nobody twice');

    const loyaltyEmails = new Set(sandboxCustomers(21, 250).map((c) => normalised(c.email)).filter(Boolean));
    const reviewerOnly = [...counts.keys()].filter((email) => !loyaltyEmails.has(email));
    assert.ok(reviewerOnly.length > 0, 'reviewer-only users were sent by the resume');
    assert.equal(counts.size, loyaltySent + second.users.sent);
    assert.equal(readState(cwd).backfill.phase, 'done');
  });

  test('--fresh gets past a state file that is not JSON; without it the run stops with exit 2', async () => {
    const cwd = workdir();
    writeState(cwd, '{"backfill": {"phase": "loy');
    await assert.rejects(runBackfill({ ...FAST, reviews: false }, captureIo(sandbox.env, cwd)), /is not valid JSON; move it away or pass --fresh/);

    const fresh = await runBackfill({ ...FAST, reviews: false, fresh: true }, captureIo(sandbox.env, cwd));
    assert.equal(fresh.exit_code, 0);
    assert.equal(readState(cwd).backfill.phase, 'done');
  });

  test('a backfill keeps the sections others write into the state file while it runs', async () => {
    const cwd = workdir();
    const slow = await startSandbox({ customers: 1000, reviews: 0, seed: 22, latencyMs: 30 });
    try {
      let finished = false;
      const running = runBackfill({ ...FAST, reviews: false, batchSize: 20, concurrency: 1 }, captureIo(slow.env, cwd)).finally(() => (finished = true));
      // Another command (a replay) records its section mid-run, the way it does: read, add, rewrite.
      while (!existsSync(statePathIn(cwd)) && !finished) await new Promise((resolve) => setTimeout(resolve, 5));
      const current = JSON.parse(readFileSync(statePathIn(cwd), 'utf8'));
      assert.notEqual(current.backfill.phase, 'done', 'the section is written while the backfill still runs');
      writeState(cwd, { ...current, replay: { ledger_file: 'state.json.ledger.txt', events_delivered: 7 } });
      assert.equal((await running).exit_code, 0);
      const state = readState(cwd);
      assert.equal(state.replay?.events_delivered, 7, 'the replay section survived');
      assert.equal(state.backfill.phase, 'done');
    } finally {
      await slow.close();
    }
  });
});

describe('replay ledger', () => {
  test('keys are appended beside the state file and read back; a torn last line does not swallow the next key', async () => {
    const cwd = workdir();
    const statePath = statePathIn(cwd);
    const ledger = await Ledger.open(statePath, { forWriting: true });
    ledger.addAll(['k1', 'k2']);
    ledger.addAll(['k2', 'k3']);
    ledger.save();
    assert.equal(readFileSync(`${statePath}.ledger.txt`, 'utf8'), 'k1\nk2\nk3\n', 'each key once, in order');
    assert.deepEqual(readState(cwd).replay.events_delivered, 3);

    appendFileSync(`${statePath}.ledger.txt`, 'k4-torn'); // a crash mid-write
    const reopened = await Ledger.open(statePath, { forWriting: true });
    assert.ok(reopened.has('k1') && reopened.has('k3'));
    reopened.addAll(['k5']);
    const again = await Ledger.open(statePath, { forWriting: false });
    assert.ok(again.has('k5'), 'the next key sits on its own line');
    assert.equal(again.has('k4-tornk5'), false);
  });

  test('a state file from before the key file (keys in replay.delivered) keeps its keys; a live run moves them to the key file', async () => {
    const cwd = workdir();
    const statePath = statePathIn(cwd);
    writeState(cwd, { backfill: { phase: 'done' }, replay: { delivered: ['old1', 'old2'], updated_at: '2026-01-01T00:00:00Z' } });

    const dry = await Ledger.open(statePath, { forWriting: false });
    assert.ok(dry.has('old1') && dry.has('old2'), 'a dry run sees the old keys');
    assert.equal(existsSync(`${statePath}.ledger.txt`), false, 'a dry run writes nothing');

    const live = await Ledger.open(statePath, { forWriting: true });
    assert.ok(live.has('old1') && live.has('old2'));
    assert.equal(readFileSync(`${statePath}.ledger.txt`, 'utf8'), 'old1\nold2\n');
    const state = readState(cwd);
    assert.equal(state.replay.delivered, undefined, 'the old array is gone once its keys are in the key file');
    assert.equal(state.replay.events_delivered, 2);
    assert.equal(state.backfill.phase, 'done', 'other sections kept');
    const reopened = await Ledger.open(statePath, { forWriting: false });
    assert.equal(reopened.size, 2);
  });

  test('a dry run leaves a torn key file as it is', async () => {
    const cwd = workdir();
    const statePath = statePathIn(cwd);
    mkdirSync(join(cwd, '.yotpo-insider'), { recursive: true });
    writeFileSync(`${statePath}.ledger.txt`, 'k1\nk2-torn');
    const dry = await Ledger.open(statePath, { forWriting: false });
    assert.ok(dry.has('k1'));
    assert.equal(readFileSync(`${statePath}.ledger.txt`, 'utf8'), 'k1\nk2-torn');
  });
});

describe('files that cannot be written', () => {
  let sandbox: Sandbox;
  before(async () => {
    sandbox = await startSandbox({ customers: 300, reviews: 0, seed: 23 });
  });
  after(() => sandbox.close());

  test('a failed file under a path that is not a folder: exit 2 before any request', async () => {
    const cwd = workdir();
    writeFileSync(join(cwd, 'plain-file'), '');
    const before = sandbox.requests().length;
    await assert.rejects(
      runBackfill({ ...FAST, reviews: false, failed: 'plain-file/failed.jsonl' }, captureIo(sandbox.env, cwd)),
      (error: Error & { exitCode?: number }) => error.exitCode === 2 && /cannot write the failed file .*plain-file\/failed\.jsonl: .*is not a folder/.test(error.message),
    );
    assert.equal(sandbox.requests().length, before);
  });

  test('an audit CSV on a full disk stops the dry run with exit 2, naming the file', async () => {
    const io = captureIo(sandbox.env);
    const summary = await runBackfill({ ...FAST, reviews: false, dryRun: true, out: '/dev/full' }, io);
    assert.equal(summary.exit_code, 2);
    assert.match(io.err(), /cannot write the audit CSV \/dev\/full: ENOSPC/);
  });

  test('a failed file on a full disk stops the run with exit 2, and a resume delivers or records every user it could not record', async () => {
    const cwd = workdir();
    sandbox.reset();
    sandbox.setFaults({ rejectRate: 0.2 });
    try {
      const io = captureIo(sandbox.env, cwd);
      const summary = await runBackfill({ ...FAST, reviews: false, batchSize: 50, concurrency: 1, failed: '/dev/full' }, io);
      assert.equal(summary.exit_code, 2, io.err());
      assert.match(io.err(), /cannot write \/dev\/full: ENOSPC/);
      assert.ok(readState(cwd).backfill.pages_confirmed < 3, 'not every page confirmed');

      // The resume, with a failed file that can be written: every customer is now in Insider or in
      // that file; none was counted as handled while its failure went unrecorded.
      const failedPath = join(cwd, 'failed.jsonl');
      const resumed = await runBackfill({ ...FAST, reviews: false, batchSize: 50, concurrency: 1, failed: failedPath }, captureIo(sandbox.env, cwd));
      assert.equal(resumed.resumed, true);
      assert.equal(resumed.exit_code, 1, 'some users failed');
      const recorded = readFileSync(failedPath, 'utf8').trim().split('\n').map((line) => normalised(JSON.parse(line).user.identifiers.email));
      const accounted = new Set([...receivedCounts(sandbox).keys(), ...recorded]);
      const expected = sandboxCustomers(21, 250).map((c) => normalised(c.email)).filter((e): e is string => e !== undefined && /@/.test(e));
      const missing = expected.filter((email) => !accounted.has(email));
      assert.deepEqual(missing, []);
    } finally {
      sandbox.setFaults({ rejectRate: 0 });
    }
  });

  test('an output path that is a folder is refused before any request', async () => {
    const cwd = workdir();
    mkdirSync(join(cwd, 'a-folder'));
    sandbox.reset();
    await assert.rejects(
      runBackfill({ ...FAST, reviews: false, failed: join(cwd, 'a-folder') }, captureIo(sandbox.env, cwd)),
      (error: Error & { exitCode?: number }) => error.exitCode === 2 && /a-folder: it is a folder/.test(error.message),
    );
    assert.equal(sandbox.requests().length, 0);
  });
});

describe('Insider 200 bodies the uploader cannot trust', () => {
  let server: Server;
  let url: string;
  let nextBody: unknown;
  let answerAfterMs = 0;
  before(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        setTimeout(() => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(nextBody));
        }, answerAfterMs);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const insiderClient = () =>
    new ApiClient({
      api: 'insider',
      baseUrl: url,
      headers: { 'content-type': 'application/json' },
      rps: 0,
      retry: { ...DEFAULT_RETRY_POLICY, baseDelayMs: 1 },
      timeoutMs: 5000,
      counters: newRequestCounters(),
    });

  async function upload(body: unknown): Promise<{ outcomes: Map<string, Outcome>; fatal: Error | undefined }> {
    nextBody = body;
    const outcomes = new Map<string, Outcome>();
    const uploader = new Uploader<null>({
      client: insiderClient(),
      concurrency: 1,
      skipHook: true,
      onOutcome: (item, outcome) => outcomes.set(item.user.identifiers.email, outcome),
    });
    const items = ['a@example.com', 'b@example.com', 'c@example.com'].map((email) => toBatchItem(toInsiderUser(email, {}), null));
    await uploader.submit({ items });
    await uploader.drain();
    return { outcomes, fatal: uploader.fatal };
  }

  test('a 200 without a data object stops the run and counts nobody delivered', async () => {
    const { outcomes, fatal } = await upload({ status: 'ok' });
    assert.equal(outcomes.size, 0);
    assert.match(String(fatal?.message), /without a result/);
  });

  test('failures counted but not attributed fail every user not named, for retry', async () => {
    const { outcomes, fatal } = await upload({
      data: { successful: { count: 1 }, fail: { count: 2, errors: { 'users.1.attributes.email.email': ['invalid'] } } },
    });
    assert.equal(fatal, undefined);
    const named = outcomes.get('b@example.com');
    assert.equal(named?.status === 'failed' && named.uncertain, undefined, 'a named failure is certain');
    for (const email of ['a@example.com', 'c@example.com']) {
      const outcome = outcomes.get(email);
      assert.equal(outcome?.status, 'failed');
      assert.match(outcome?.status === 'failed' ? outcome.error : '', /1 failure\(s\) in this batch without saying which user/);
      assert.equal(outcome?.status === 'failed' && outcome.uncertain, true);
    }
  });

  test('answers that arrive after the grace period: no outcome is recorded, but a delivery still reaches recordDelivery', async () => {
    nextBody = { data: { successful: { count: 1 }, fail: { count: 1, errors: { 'users.1.attributes.email.email': ['invalid'] } } } };
    answerAfterMs = 300;
    try {
      const failedPath = join(workdir(), 'failed.jsonl');
      const outcomes: string[] = [];
      const late: string[] = [];
      const delivery = new Delivery<string>({
        insider: insiderClient(),
        concurrency: 1,
        batchSize: 2,
        skipHook: true,
        failedFile: new JsonlWriter<FailedRecord>(failedPath),
        onOutcome: (item) => outcomes.push(item.tag),
        recordDelivery: (item, outcome) => outcome.status === 'succeeded' && late.push(item.tag),
      });
      await delivery.add(toInsiderUser('a@example.com', {}), 'a');
      await delivery.add(toInsiderUser('b@example.com', {}), 'b'); // the batch of two is posted
      await delivery.wrapUp(false, 20);
      assert.deepEqual(outcomes, [], 'nothing arrived within the grace period');
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.deepEqual(outcomes, [], 'late outcomes are not recorded: the run has closed its files');
      assert.deepEqual(late, ['a'], 'the delivered user is still reported, for the ledger');
      assert.equal(existsSync(failedPath), false);
    } finally {
      answerAfterMs = 0;
    }
  });

  test('every failure attributed: the others succeed', async () => {
    const { outcomes } = await upload({
      data: { successful: { count: 2 }, fail: { count: 1, errors: { 'users.2.attributes.birthday.date': ['must end with Z'] } } },
    });
    assert.deepEqual([...outcomes.values()].map((o) => o.status), ['succeeded', 'succeeded', 'failed']);
  });
});
