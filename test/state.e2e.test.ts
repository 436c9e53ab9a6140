// The state store from outside (SPEC §4): state belongs to the Insider account, not the working
// folder (a file replayed from two folders is sent once; another account gets everything; a
// checkpoint is never resumed against another account; --state of another account's folder is
// refused), checkpoints per source and scope, --fresh past a corrupt checkpoint, files that cannot
// be written, and the Insider answers the upload cannot trust.

import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { runBackfill } from '../src/commands/backfill.js';
import { runReplay } from '../src/commands/replay.js';
import { toBatchItem } from '../src/core/batcher.js';
import { toInsiderUser } from '../src/core/transform.js';
import { uploadBatch, type UserOutcome } from '../src/insider/upload.js';
import { ApiClient, newRequestCounters } from '../src/io/http.js';
import { DEFAULT_RETRY_POLICY } from '../src/io/retry.js';
import { Delivery } from '../src/pipeline/delivery.js';
import { startSandbox, type Sandbox } from '../src/sandbox/index.js';
import { captureIo, FAST, normalised, REVIEW_ATTRIBUTES, receivedCounts, sandboxCustomers, savedCheckpoint, workdir } from './helpers.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/events.jsonl', import.meta.url));
/** Fixture lines that become events (the rest are rejected, skipped or duplicates). */
const FIXTURE_SENT = 23;

function eventCount(sandbox: Sandbox): number {
  return sandbox.received().reduce((sum, user) => sum + (user.events?.length ?? 0), 0);
}

describe('state belongs to the Insider account', () => {
  let sandbox: Sandbox;
  let other: Sandbox;
  before(async () => {
    sandbox = await startSandbox({ customers: 250, reviews: 0, seed: 24 });
    other = await startSandbox({ customers: 250, reviews: 0, seed: 24 });
  });
  after(async () => {
    await sandbox.close();
    await other.close();
  });

  test('one webhook file replayed from two working folders sends its events once; another account receives all of them', async () => {
    const root = join(workdir(), 'state-root');
    const first = workdir();
    const second = workdir();
    copyFileSync(FIXTURE, join(first, 'events.jsonl'));
    copyFileSync(FIXTURE, join(second, 'copy-of-events.jsonl'));
    sandbox.reset();
    const a = await runReplay('events.jsonl', { ...FAST }, captureIo({ ...sandbox.env, YOTPO_INSIDER_STATE_DIR: root }, first));
    assert.equal(a.events.succeeded, FIXTURE_SENT);
    const b = await runReplay('copy-of-events.jsonl', { ...FAST }, captureIo({ ...sandbox.env, YOTPO_INSIDER_STATE_DIR: root }, second));
    assert.equal(b.state_dir, a.state_dir, 'one account, one folder, whatever the working folder');
    assert.equal(b.events.sent, 0);
    assert.equal(b.skipped_reasons['already delivered'], FIXTURE_SENT);
    assert.equal(eventCount(sandbox), FIXTURE_SENT, 'each event reached the account once');

    // Another Insider URL (a second sandbox) is another account: it gets every event.
    other.reset();
    const c = await runReplay('copy-of-events.jsonl', { ...FAST }, captureIo({ ...other.env, YOTPO_INSIDER_STATE_DIR: root }, second));
    assert.notEqual(c.state_dir, a.state_dir);
    assert.equal(c.events.succeeded, FIXTURE_SENT);
    assert.equal(eventCount(other), FIXTURE_SENT);
  });

  test('an interrupted backfill against one account is not resumed against another', async () => {
    const cwd = workdir();
    sandbox.reset();
    const partial = await runBackfill({ ...FAST, reviews: false, limit: 100 }, captureIo(sandbox.env, cwd));
    assert.equal(partial.exit_code, 0);
    assert.equal(savedCheckpoint(cwd).phase, 'loyalty', 'stopped by --limit: unfinished');

    // The same Yotpo store, written to the other sandbox's Insider.
    other.reset();
    const io = captureIo({ ...sandbox.env, INSIDER_API_URL: other.url }, cwd);
    const elsewhere = await runBackfill({ ...FAST, reviews: false }, io);
    assert.equal(elsewhere.exit_code, 0, io.err());
    assert.equal(elsewhere.resumed, false);
    assert.notEqual(elsewhere.state_dir, partial.state_dir);
    const sendable = new Set(
      sandboxCustomers(24, 250)
        .map((c) => normalised(c.email))
        .filter(Boolean),
    );
    assert.equal(receivedCounts(other).size, sendable.size, 'the other account gets everybody');

    const resumed = await runBackfill({ ...FAST, reviews: false }, captureIo(sandbox.env, cwd));
    assert.equal(resumed.resumed, true, 'the first account still resumes its own');
  });

  test("--state naming another account's folder exits 2 naming both accounts, before any request", async () => {
    const cwd = workdir();
    copyFileSync(FIXTURE, join(cwd, 'events.jsonl'));
    const mine = await runReplay('events.jsonl', { ...FAST }, captureIo(sandbox.env, cwd));
    other.reset();
    const io = captureIo(other.env, cwd);
    const refused = await runReplay('events.jsonl', { ...FAST, state: mine.state_dir!, json: true }, io);
    assert.equal(refused.exit_code, 2);
    assert.match(
      String(refused.error),
      new RegExp(`belongs to partner sandboxbrand at ${sandbox.url}, but this run writes to partner sandboxbrand at ${other.url}`),
    );
    assert.equal(JSON.parse(io.out()).exit_code, 2, 'the summary is printed with --json');
    assert.deepEqual(other.requests(), []);
  });
});

describe('backfill checkpoints', () => {
  let sandbox: Sandbox;
  before(async () => {
    sandbox = await startSandbox({ customers: 250, reviews: 400, seed: 21 });
  });
  after(() => sandbox.close());

  test('another scope is another checkpoint: it starts over and leaves the first one to resume', async () => {
    const cwd = workdir();
    // One page of a loyalty-only backfill, then stopped by --limit: an unfinished backfill.
    const partial = await runBackfill({ ...FAST, reviews: false, limit: 100 }, captureIo(sandbox.env, cwd));
    assert.equal(partial.exit_code, 0);
    const first = savedCheckpoint(cwd);
    assert.equal(first.phase, 'loyalty');
    assert.deepEqual(first.scope, { loyalty: true, reviews: false, endpoint: 'recent', since: null, withAnniversary: false });

    const wider = await runBackfill({ ...FAST }, captureIo(sandbox.env, cwd));
    assert.equal(wider.exit_code, 0);
    assert.equal(wider.resumed, false, 'loyalty + reviews does not resume the loyalty-only checkpoint');
    assert.notEqual(wider.state_file, first.file);
    assert.equal(JSON.parse(readFileSync(first.file, 'utf8')).phase, 'loyalty', 'the first checkpoint is untouched');

    const resumed = await runBackfill({ ...FAST, reviews: false }, captureIo(sandbox.env, cwd));
    assert.equal(resumed.resumed, true);
    assert.equal(resumed.state_file, first.file);
    const partialAgain = await runBackfill({ ...FAST, reviews: false, limit: 100 }, captureIo(sandbox.env, cwd));
    assert.equal(partialAgain.exit_code, 0);
    const fresh = await runBackfill({ ...FAST, reviews: false, fresh: true }, captureIo(sandbox.env, cwd));
    assert.equal(fresh.resumed, false, '--fresh starts over');
  });

  test('the same options resume (a date written another way is the same --since)', async () => {
    const cwd = workdir();
    await runBackfill({ ...FAST, reviews: false, since: '2026-01-01', limit: 100 }, captureIo(sandbox.env, cwd));
    const io = captureIo(sandbox.env, cwd);
    const resumed = await runBackfill({ ...FAST, reviews: false, since: '2026-01-01T00:00:00Z' }, io);
    assert.equal(resumed.exit_code, 0, io.err());
    assert.equal(resumed.resumed, true);
    assert.equal(savedCheckpoint(cwd).phase, 'done');
  });

  // Known bug: the store keeps no record of the loyalty customers matched before the stop, so the
  // resumed reviewer phase lists the loyalty customers who reviewed as reviewer-only users again.
  // With no matched-reviewers log, the resumed reviewer phase may send a loyalty customer who also
  // reviews again, with its review attributes alone (the same values: a harmless upsert).
  test('a run stopped after its last loyalty page resumes in the reviewer phase: nobody missed, a repeat carries the same review attributes only', async () => {
    const cwd = workdir();
    sandbox.reset();
    // --limit equal to the number of customers: every loyalty page is read and confirmed, and the
    // run stops before the reviewer-only users.
    const first = await runBackfill({ ...FAST, limit: 250, batchSize: 40 }, captureIo(sandbox.env, cwd));
    assert.equal(first.exit_code, 0);
    const state = savedCheckpoint(cwd);
    assert.equal(state.phase, 'reviewers', 'the last page settled: the loyalty phase is over');
    assert.equal(state.cursor, null);
    const loyaltySent = first.users.sent;

    const io = captureIo(sandbox.env, cwd);
    const second = await runBackfill({ ...FAST, batchSize: 40 }, io);
    assert.equal(second.exit_code, 0, io.err());
    assert.equal(second.resumed, true);
    assert.equal(second.users.read, second.users.sent, 'the resume reads only the reviewer-only users');
    const counts = receivedCounts(sandbox);
    const loyaltyEmails = new Set(
      sandboxCustomers(21, 250)
        .map((c) => normalised(c.email))
        .filter(Boolean),
    );
    for (const [email, n] of counts) {
      if (n === 1) continue;
      assert.equal(n, 2, `${email} at most twice`);
      assert.ok(loyaltyEmails.has(email), `${email}: only a loyalty customer who reviews is sent again`);
      const [full, again] = sandbox.received().filter((u) => u.identifiers?.email === email);
      for (const [name, value] of Object.entries(again?.attributes?.custom ?? {})) {
        assert.ok(REVIEW_ATTRIBUTES.includes(name), `${email}: ${name} is a review attribute`);
        assert.deepEqual(value, full?.attributes?.custom?.[name], `${email}: the same ${name}`);
      }
    }
    const reviewerOnly = [...counts.keys()].filter((email) => !loyaltyEmails.has(email));
    assert.ok(reviewerOnly.length > 0, 'reviewer-only users were sent by the resume');
    assert.equal(counts.size, loyaltySent + reviewerOnly.length);
    assert.equal(savedCheckpoint(cwd).phase, 'done');
  });

  test('--fresh gets past a checkpoint that cannot be read; without it the run stops with exit 2', async () => {
    const cwd = workdir();
    await runBackfill({ ...FAST, reviews: false, limit: 100 }, captureIo(sandbox.env, cwd));
    const { file } = savedCheckpoint(cwd);
    writeFileSync(file, '{"format": 2, "phase": "loy');
    const io = captureIo(sandbox.env, cwd);
    const broken = await runBackfill({ ...FAST, reviews: false }, io);
    assert.equal(broken.exit_code, 2);
    assert.match(io.err(), /the backfill checkpoint .* cannot be read; run with --fresh/);

    const fresh = await runBackfill({ ...FAST, reviews: false, fresh: true }, captureIo(sandbox.env, cwd));
    assert.equal(fresh.exit_code, 0);
    assert.equal(savedCheckpoint(cwd).phase, 'done');
  });
});

describe('files that cannot be written', () => {
  let sandbox: Sandbox;
  before(async () => {
    sandbox = await startSandbox({ customers: 300, reviews: 0, seed: 23 });
  });
  after(() => sandbox.close());

  test('a failed file under a path that is not a folder: exit 2 before anything is sent', async () => {
    const cwd = workdir();
    writeFileSync(join(cwd, 'plain-file'), '');
    sandbox.reset();
    const io = captureIo(sandbox.env, cwd);
    const summary = await runBackfill({ ...FAST, reviews: false, failed: 'plain-file/failed.jsonl' }, io);
    assert.equal(summary.exit_code, 2);
    assert.match(String(summary.error), /cannot write the failed file .*plain-file\/failed\.jsonl: .*is not a folder/);
    assert.deepEqual(
      sandbox.requests().filter((r) => !r.path.startsWith('/api/user/v3/metadata/')),
      [],
      'only the read-only schema check',
    );
  });

  test('an audit CSV on a full disk stops the dry run with exit 3, naming the file', async () => {
    const io = captureIo(sandbox.env);
    const summary = await runBackfill({ ...FAST, reviews: false, dryRun: true, out: '/dev/full' }, io);
    assert.equal(summary.exit_code, 3);
    assert.match(io.err(), /cannot write the audit CSV \/dev\/full: ENOSPC/);
  });

  test('a failed file on a full disk stops the run with exit 3, and a resume delivers or records every user it could not record', async () => {
    const cwd = workdir();
    sandbox.reset();
    sandbox.setFaults({ rejectRate: 0.2 });
    try {
      const io = captureIo(sandbox.env, cwd);
      const summary = await runBackfill({ ...FAST, reviews: false, batchSize: 50, concurrency: 1, failed: '/dev/full' }, io);
      assert.equal(summary.exit_code, 3, io.err());
      assert.match(io.err(), /cannot write \/dev\/full: ENOSPC/);
      assert.ok(savedCheckpoint(cwd).pages_confirmed < 3, 'not every page confirmed');

      // The resume, with a failed file that can be written: every customer is now in Insider or in
      // that file; none was counted as handled while its failure went unrecorded.
      const failedPath = join(cwd, 'failed.jsonl');
      const resumed = await runBackfill(
        { ...FAST, reviews: false, batchSize: 50, concurrency: 1, failed: failedPath },
        captureIo(sandbox.env, cwd),
      );
      assert.equal(resumed.resumed, true);
      assert.equal(resumed.exit_code, 1, 'some users failed');
      const recorded = readFileSync(failedPath, 'utf8')
        .trim()
        .split('\n')
        .map((line) => normalised(JSON.parse(line).user.identifiers.email));
      const accounted = new Set([...receivedCounts(sandbox).keys(), ...recorded]);
      const expected = sandboxCustomers(21, 250)
        .map((c) => normalised(c.email))
        .filter((e): e is string => e !== undefined && /@/.test(e));
      const missing = expected.filter((email) => !accounted.has(email));
      assert.deepEqual(missing, []);
    } finally {
      sandbox.setFaults({ rejectRate: 0 });
    }
  });

  test('an output path that is a folder is refused before anything is sent', async () => {
    const cwd = workdir();
    mkdirSync(join(cwd, 'a-folder'));
    sandbox.reset();
    const summary = await runBackfill({ ...FAST, reviews: false, failed: join(cwd, 'a-folder') }, captureIo(sandbox.env, cwd));
    assert.equal(summary.exit_code, 2);
    assert.match(String(summary.error), /a-folder: it is a folder/);
    assert.deepEqual(
      sandbox.requests().filter((r) => !r.path.startsWith('/api/user/v3/metadata/')),
      [],
    );
  });
});

describe('Insider 200 bodies the upload cannot trust', () => {
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
      retry: { ...DEFAULT_RETRY_POLICY, baseDelayMs: 1, maxAttempts: 2 },
      timeoutMs: 5000,
      counters: newRequestCounters(),
    });
  const settings = () => ({ client: insiderClient(), skipHook: true, maxBytes: 5_000_000, onAmbiguous: 'hold' as const });
  const items = () => ['a@example.com', 'b@example.com', 'c@example.com'].map((email) => toBatchItem(toInsiderUser(email, {}), email));

  test('a 200 without a data object stops the run and counts nobody delivered', async () => {
    nextBody = { status: 'ok' };
    const result = await uploadBatch(items(), settings());
    assert.ok(result.fatal, 'the run stops');
    assert.ok(
      result.outcomes.every((outcome) => outcome.status !== 'succeeded'),
      JSON.stringify(result.outcomes),
    );
  });

  test('failures counted but not attributed: every user not named fails (attributes only), nobody is delivered', async () => {
    nextBody = { data: { successful: { count: 1 }, fail: { count: 2, errors: { 'users.1.attributes.email.email': ['invalid'] } } } };
    const { outcomes, fatal } = await uploadBatch(items(), settings());
    assert.equal(fatal, undefined);
    assert.deepEqual(
      outcomes.map((outcome) => outcome.status),
      ['failed', 'failed', 'failed'],
    );
    const unnamed = outcomes[0] as Extract<UserOutcome, { status: 'failed' }>;
    assert.match(unnamed.error, /does not account for every user/);
    assert.match((outcomes[1] as Extract<UserOutcome, { status: 'failed' }>).error, /invalid/);
  });

  test('every failure attributed: the others succeed', async () => {
    nextBody = {
      data: { successful: { count: 2 }, fail: { count: 1, errors: { 'users.2.attributes.birthday.date': ['must end with Z'] } } },
    };
    const { outcomes } = await uploadBatch(items(), settings());
    assert.deepEqual(
      outcomes.map((outcome) => outcome.status),
      ['succeeded', 'succeeded', 'failed'],
    );
  });

  test('answers that arrive after the wrap-up gave up reach only the late handler (the ledger)', async () => {
    nextBody = { data: { successful: { count: 1 }, fail: { count: 1, errors: { 'users.1.attributes.email.email': ['invalid'] } } } };
    answerAfterMs = 300;
    try {
      const onTime: string[] = [];
      const late: string[] = [];
      let lateAnswered: () => void = () => undefined;
      const answered = new Promise<void>((resolve) => (lateAnswered = resolve));
      const delivery = new Delivery<string>(
        { ...settings(), concurrency: 1, batchSize: 2 },
        async (batch, outcomes) => void batch.forEach((item, i) => onTime.push(`${item.tag.tag} ${outcomes[i]!.status}`)),
        () => undefined,
        async (batch, outcomes) => {
          batch.forEach((item, i) => late.push(`${item.tag.tag} ${outcomes[i]!.status}`));
          lateAnswered();
        },
      );
      await delivery.add({ kind: 'send', user: toInsiderUser('a@example.com', {}), tag: 'a' });
      await delivery.add({ kind: 'send', user: toInsiderUser('b@example.com', {}), tag: 'b' }); // the batch of two is posted
      await delivery.wrapUp(false, 20);
      assert.deepEqual(onTime, [], 'nothing arrived within the grace period');
      await answered;
      assert.deepEqual(onTime, [], 'late outcomes are not routed: the run has closed its files');
      assert.deepEqual(late, ['a succeeded', 'b failed'], 'the late answer still reaches the ledger');
    } finally {
      answerAfterMs = 0;
    }
  });
});
