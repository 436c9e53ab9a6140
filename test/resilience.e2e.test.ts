// Nothing lost, nothing twice: faults injected by the sandbox, per-user failures, the failed file
// and `retry`, auth failures and unavailable APIs, and an interrupt with a resume.

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runBackfill } from '../src/commands/backfill.js';
import { runRetry } from '../src/commands/retry.js';
import { ReviewsApi } from '../src/yotpo/reviews.js';
import { ApiClient, newRequestCounters } from '../src/io/http.js';
import { DEFAULT_RETRY_POLICY } from '../src/io/retry.js';
import { customerAt, isRejectedEmail, startSandbox, type Sandbox } from '../src/sandbox/index.js';
import {
  captureIo,
  FAST,
  normalised,
  REVIEW_ATTRIBUTES,
  receivedCounts,
  runNode,
  sandboxCustomers,
  savedCheckpoint,
  spawnCli,
  workdir,
} from './helpers.js';

const SEED = 11;
const CUSTOMERS = 1200;

function readJsonl(path: string): Record<string, unknown>[] {
  return readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));
}

describe('resilience over the sandbox', () => {
  let sandbox: Sandbox;
  const sendable = new Set(
    sandboxCustomers(SEED, CUSTOMERS)
      .map((c) => normalised(c.email))
      .filter((e): e is string => !!e),
  );

  before(async () => {
    sandbox = await startSandbox({ customers: CUSTOMERS, reviews: 0, seed: SEED });
  });
  after(() => sandbox.close());

  test('under 5xx, 429 and per-user rejections every other user arrives once; retry delivers the rest', async () => {
    sandbox.reset();
    const rejectRate = 0.05;
    sandbox.setFaults({ failRate: 0.2, rateLimitRps: 10, rejectRate });
    const cwd = workdir();
    const io = captureIo(sandbox.env, cwd);
    let summary;
    try {
      summary = await runBackfill(
        { ...FAST, maxRetryAfter: 5, reviews: false, batchSize: 50, maxAttempts: 10, failed: 'failed.jsonl' },
        io,
      );
    } finally {
      sandbox.setFaults({ failRate: 0, rateLimitRps: 0, rejectRate: 0 });
    }
    assert.equal(summary.exit_code, 1, io.err());
    assert.ok(summary.requests.retries > 0, 'faults were retried');
    assert.ok(sandbox.stats().faults.failed > 0 && sandbox.stats().faults.rateLimited > 0, 'both kinds of fault happened');

    const rejected = [...sendable].filter((email) => isRejectedEmail(email, rejectRate));
    assert.ok(rejected.length > 10);
    const delivered = receivedCounts(sandbox);
    for (const email of sendable) {
      if (rejected.includes(email)) assert.equal(delivered.has(email), false);
      else assert.equal(delivered.get(email), 1, `${email} delivered ${delivered.get(email) ?? 0} times`);
    }
    const failed = readJsonl(join(cwd, 'failed.jsonl'));
    assert.deepEqual(failed.map((line) => (line.user as { identifiers: { email: string } }).identifiers.email).sort(), rejected.sort());
    for (const line of failed) {
      assert.match(String(line.error), /sandbox rejected this user/);
      assert.equal(line.status, 200);
    }
    assert.equal(summary.users.failed, rejected.length);

    // With the cause fixed, `retry` sends exactly those users, each once.
    sandbox.reset();
    const retryIo = captureIo(sandbox.env, cwd);
    const retried = await runRetry('failed.jsonl', { ...FAST }, retryIo);
    assert.equal(retried.exit_code, 0, retryIo.err());
    assert.deepEqual([...receivedCounts(sandbox).keys()].sort(), rejected.sort());
    assert.ok([...receivedCounts(sandbox).values()].every((n) => n === 1));
    assert.equal(retried.users.succeeded, rejected.length);
    assert.equal(retried.failed_file, null);
  });

  test('a 400 on a whole batch is split down to the one bad user', async () => {
    sandbox.reset();
    const bad = [...sendable][123]!;
    sandbox.setFaults({ badRequestEmails: [bad] });
    const cwd = workdir();
    try {
      const summary = await runBackfill({ ...FAST, reviews: false, batchSize: 64, failed: 'failed.jsonl' }, captureIo(sandbox.env, cwd));
      assert.equal(summary.exit_code, 1);
      assert.equal(summary.users.failed, 1);
    } finally {
      sandbox.setFaults({ badRequestEmails: [] });
    }
    const failed = readJsonl(join(cwd, 'failed.jsonl'));
    assert.equal(failed.length, 1);
    assert.equal((failed[0]!.user as { identifiers: { email: string } }).identifiers.email, bad);
    assert.equal(failed[0]!.status, 400);
    const delivered = receivedCounts(sandbox);
    assert.equal(delivered.size, sendable.size - 1);
    assert.ok([...delivered.values()].every((n) => n === 1));
    // 64 → 32 → 16 → 8 → 4 → 2 → 1: six levels of halves, each with one 400.
    assert.equal(sandbox.requests().filter((r) => r.api === 'insider' && r.status === 400).length, 7);
  });

  test('Yotpo unreachable: exit 3 after the retries, with the state saved', async () => {
    const cwd = workdir();
    const io = captureIo({ ...sandbox.env, YOTPO_LOYALTY_URL: 'http://127.0.0.1:9' }, cwd);
    const summary = await runBackfill({ ...FAST, reviews: false, maxAttempts: 3 }, io);
    assert.equal(summary.exit_code, 3);
    assert.equal(summary.requests.loyalty, 3);
    assert.match(io.err(), /Yotpo Loyalty API unavailable after 3 attempt\(s\)/);
    assert.match(io.err(), /to resume, run: yotpo-insider backfill/);
    assert.equal(summary.state_file, savedCheckpoint(cwd).file, 'the checkpoint is saved');
  });

  test('wrong Reviews secret: exit 3 naming the Reviews variables', async () => {
    const io = captureIo({ ...sandbox.env, YOTPO_API_SECRET: 'wrong-secret-1234' });
    const summary = await runBackfill({ ...FAST }, io);
    assert.equal(summary.exit_code, 3);
    assert.match(io.err(), /Yotpo Reviews API rejected the credentials \(HTTP 401\); check YOTPO_APP_KEY, YOTPO_API_SECRET/);
    assert.equal(sandbox.received().filter(() => false).length, 0);
  });
});

describe('Reviews token', () => {
  test('cached for the run, renewed once on a 401, and a second 401 stops', async () => {
    const sandbox = await startSandbox({ customers: 10, reviews: 250, seed: 3 });
    try {
      const counters = newRequestCounters();
      const client = new ApiClient({
        api: 'reviews',
        baseUrl: sandbox.url,
        headers: {},
        rps: 0,
        retry: { ...DEFAULT_RETRY_POLICY, baseDelayMs: 1 },
        timeoutMs: 5000,
        counters,
      });
      const api = new ReviewsApi(client, { url: sandbox.url, appKey: sandbox.env.YOTPO_APP_KEY!, secret: sandbox.env.YOTPO_API_SECRET! });
      await api.page(1);
      await api.page(2);
      assert.equal(sandbox.stats().tokensIssued, 1, 'one token for many pages');
      sandbox.expireReviewTokens();
      assert.ok((await api.page(3)).length > 0);
      assert.equal(sandbox.stats().tokensIssued, 2, 'renewed once');

      const wrong = new ReviewsApi(client, { url: sandbox.url, appKey: sandbox.env.YOTPO_APP_KEY!, secret: 'not-the-secret' });
      await assert.rejects(wrong.page(1), /rejected the credentials \(HTTP 401\)/);
    } finally {
      await sandbox.close();
    }
  });
});

describe('interrupt and resume', () => {
  test('SIGINT: exit 130 with the state saved; the re-run fetches only the remaining pages', async () => {
    const customers = 3000;
    const sandbox = await startSandbox({ customers, reviews: 0, seed: 5, latencyMs: 15 });
    const cwd = workdir();
    try {
      const live = spawnCli(['backfill', '--no-reviews', '--loyalty-rps', '0', '--insider-rps', '0', '--batch-size', '50'], {
        cwd,
        env: sandbox.env,
      });
      // Interrupted once twelve batches (600 users) were stored.
      await sandbox.waitForStored(12);
      live.child.kill('SIGINT');
      const { code } = await live.closed;
      const stderr = live.stderr;
      assert.equal(code, 130, stderr);
      assert.match(stderr, /to resume, run: yotpo-insider backfill/);
      const state = { backfill: savedCheckpoint(cwd) };
      const firstRun = sandbox.received().length;
      assert.ok(firstRun < customers * 0.95, `interrupted before the end (${firstRun})`);
      assert.equal(state.backfill.phase, 'loyalty');
      assert.ok(state.backfill.pages_confirmed >= 6, JSON.stringify(state));

      const loyaltyBefore = sandbox.requests().filter((r) => r.api === 'loyalty').length;
      const io = captureIo(sandbox.env, cwd);
      const summary = await runBackfill({ ...FAST, reviews: false, batchSize: 50 }, io);
      assert.equal(summary.exit_code, 0, io.err());
      assert.equal(summary.resumed, true);
      assert.match(io.err(), /resuming the backfill/);
      const loyaltyAfter = sandbox.requests().filter((r) => r.api === 'loyalty').length - loyaltyBefore;
      assert.equal(loyaltyAfter, customers / 100 - state.backfill.pages_confirmed, 'only the remaining pages are fetched');

      const expected = new Set(
        sandboxCustomers(5, customers)
          .map((c) => normalised(c.email))
          .filter(Boolean),
      );
      const counts = receivedCounts(sandbox);
      assert.deepEqual(new Set(counts.keys()), expected, 'the union covers every user');
      assert.deepEqual(
        [...counts.values()].filter((n) => n !== 1),
        [],
        'nobody twice',
      );
    } finally {
      await sandbox.close();
    }
  });
});

describe('resume in the reviewer phase', () => {
  test('an interrupt while reviewer-only users are sent resumes from the snapshot, without paging reviews again', async () => {
    const customers = 300;
    const sandbox = await startSandbox({ customers, reviews: 3000, seed: 9 });
    const cwd = workdir();
    try {
      const loyaltySendable = sandboxCustomers(9, customers).filter((c) => normalised(c.email)).length;
      const controller = new AbortController();
      const timer = setInterval(() => {
        if (sandbox.received().length >= loyaltySendable + 150) controller.abort();
      }, 1);
      const first = await runBackfill({ ...FAST, batchSize: 25, concurrency: 1 }, captureIo(sandbox.env, cwd), {
        signal: controller.signal,
      });
      clearInterval(timer);
      assert.equal(first.exit_code, 130);
      const saved = savedCheckpoint(cwd);
      const state: Record<string, any> = { ...saved, reviewers_file: join(dirname(saved.file), saved.reviewers_file) };
      assert.equal(state.phase, 'reviewers');
      assert.ok(state.reviewers_confirmed > 0);
      assert.ok(existsSync(state.reviewers_file));

      const reviewRequestsBefore = sandbox.requests().filter((r) => r.api === 'reviews').length;
      const io = captureIo(sandbox.env, cwd);
      const second = await runBackfill({ ...FAST, batchSize: 25 }, io);
      assert.equal(second.exit_code, 0, io.err());
      assert.equal(sandbox.requests().filter((r) => r.api === 'reviews').length, reviewRequestsBefore, 'reviews not paged again');
      assert.equal(existsSync(state.reviewers_file), false, 'the snapshot is removed once the run is done');

      const counts = receivedCounts(sandbox);
      assert.deepEqual(
        [...counts.values()].filter((n) => n !== 1),
        [],
        'nobody twice',
      );
      // Everyone a fresh run would send arrived: loyalty customers and reviewers with an included review.
      const fresh = await startSandbox({ customers, reviews: 3000, seed: 9 });
      try {
        await runBackfill({ ...FAST }, captureIo(fresh.env));
        assert.deepEqual(new Set(counts.keys()), new Set(fresh.received().map((u) => String(u.identifiers?.email))));
      } finally {
        await fresh.close();
      }
    } finally {
      await sandbox.close();
    }
  });
});

describe('resume in the loyalty phase, with reviews', () => {
  // By design: a resumed run sends again the users of pages past the confirmed position (the same
  // upsert), and, with no matched-reviewers log, may send a loyalty customer confirmed before the
  // interrupt again as a reviewer-only user (the same review attributes and nothing else). Either
  // way Insider ends with the values of an uninterrupted run.
  test('a user sent again by the resume carries the same values (all, or its review attributes only); every user arrives', async () => {
    const customers = 2000;
    const sandbox = await startSandbox({ customers, reviews: 3000, seed: 13 });
    const cwd = workdir();
    try {
      const controller = new AbortController();
      const timer = setInterval(() => {
        if (sandbox.received().length >= 700) controller.abort();
      }, 1);
      const first = await runBackfill({ ...FAST, batchSize: 50, concurrency: 1 }, captureIo(sandbox.env, cwd), {
        signal: controller.signal,
      });
      clearInterval(timer);
      assert.equal(first.exit_code, 130);
      const state = savedCheckpoint(cwd);
      assert.equal(state.phase, 'loyalty');
      assert.ok(state.pages_confirmed > 0 && state.pages_confirmed < customers / 100);

      const io = captureIo(sandbox.env, cwd);
      const second = await runBackfill({ ...FAST, batchSize: 50 }, io);
      assert.equal(second.exit_code, 0, io.err());
      assert.equal(savedCheckpoint(cwd).phase, 'done');
      const counts = receivedCounts(sandbox);
      const twice = [...counts].filter(([, n]) => n !== 1);
      const loyaltyEmails = new Set(Array.from({ length: customers }, (_, i) => normalised(customerAt(13, i).email)).filter(Boolean));
      for (const [email, n] of twice) {
        assert.equal(n, 2, `${email} at most twice`);
        assert.ok(loyaltyEmails.has(email), `${email}: only a loyalty customer is sent again`);
        const [full, again] = sandbox.received().filter((u) => u.identifiers?.email === email);
        const reviewOnly = Object.keys(again?.attributes?.custom ?? {}).every((name) => REVIEW_ATTRIBUTES.includes(name));
        if (reviewOnly) {
          for (const name of Object.keys(again?.attributes?.custom ?? {}))
            assert.deepEqual(again?.attributes?.custom?.[name], full?.attributes?.custom?.[name]);
        } else {
          assert.deepEqual(again?.attributes, full?.attributes, `${email}: sent again with the same values`);
        }
      }

      const fresh = await startSandbox({ customers, reviews: 3000, seed: 13 });
      try {
        await runBackfill({ ...FAST }, captureIo(fresh.env));
        assert.deepEqual(new Set(counts.keys()), new Set(fresh.received().map((u) => String(u.identifiers?.email))));
        // Each user arrived with the same attributes as in an uninterrupted run.
        const byEmail = new Map(fresh.received().map((u) => [String(u.identifiers?.email), u.attributes]));
        const firstArrival = new Map<string, unknown>();
        for (const user of sandbox.received())
          if (!firstArrival.has(String(user.identifiers?.email))) firstArrival.set(String(user.identifiers?.email), user.attributes);
        for (const [email, attributes] of firstArrival) assert.deepEqual(attributes, byEmail.get(email));
      } finally {
        await fresh.close();
      }
    } finally {
      await sandbox.close();
    }
  });
});

describe('stopping cleanly', () => {
  test('a loyalty failure stops the review paging too', async () => {
    const sandbox = await startSandbox({ customers: 200, reviews: 20_000, seed: 17, latencyMs: 40 });
    try {
      const io = captureIo({ ...sandbox.env, YOTPO_LOYALTY_API_KEY: 'wrong-loyalty-key-5521' });
      const summary = await runBackfill({ ...FAST, pagesInFlight: 4 }, io);
      assert.equal(summary.exit_code, 3);
      assert.match(io.err(), /Yotpo Loyalty API rejected the credentials/);
      const reviewRequests = () => sandbox.requests().filter((r) => r.api === 'reviews').length;
      // 200 review pages exist, 4 at a time at 40 ms each: paging that went on would make ~40
      // requests in this wait; only the token and the pages already in flight may arrive.
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.ok(reviewRequests() <= 10, `review paging went on after the run ended: ${reviewRequests()} requests`);
    } finally {
      await sandbox.close();
    }
  });

  /**
   * A Yotpo that answers the loyalty listing with `loyaltyStatus` after 300 ms (or never, when null), gives a
   * utoken, and never answers a review page. `closed` resolves when the client gives up on the
   * first request left hanging.
   */
  async function hangingYotpo(loyaltyStatus: number | null) {
    let hungUp: () => void = () => undefined;
    const closed = new Promise<void>((resolve) => (hungUp = resolve));
    const server = createServer((req: IncomingMessage, res) => {
      req.resume();
      if (req.url?.startsWith('/api/user/')) {
        res.writeHead(404).end(); // no metadata endpoint: the schema check is unavailable
      } else if (req.url?.startsWith('/oauth/token')) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: 'token-1' }));
      } else if (req.url?.includes('/reviews') || loyaltyStatus === null) {
        res.on('close', hungUp); // never answered: only the client can end it
      } else {
        // Answered once the review paging is under way.
        setTimeout(() => res.writeHead(loyaltyStatus, { 'content-type': 'application/json' }).end('{"error":"unauthorized"}'), 300);
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const env = {
      YOTPO_LOYALTY_URL: url,
      YOTPO_API_URL: url,
      YOTPO_LOYALTY_API_KEY: 'k',
      YOTPO_LOYALTY_GUID: 'g',
      YOTPO_APP_KEY: 'app',
      YOTPO_API_SECRET: 'secret',
      INSIDER_PARTNER_NAME: 'brand',
      INSIDER_API_KEY: 'key',
      INSIDER_API_URL: url,
    };
    const close = () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    };
    return { env, closed, close };
  }

  test('an interrupt aborts a Yotpo request in flight instead of waiting for its answer', { timeout: 15_000 }, async () => {
    const yotpo = await hangingYotpo(null);
    try {
      const controller = new AbortController();
      const running = runBackfill({ ...FAST, reviews: false, timeout: 120_000 }, captureIo(yotpo.env), { signal: controller.signal });
      setTimeout(() => controller.abort(), 200);
      const summary = await running;
      assert.equal(summary.exit_code, 130);
      await yotpo.closed; // the hanging request was abandoned by the client, not by a timeout
    } finally {
      await yotpo.close();
    }
  });

  test('a loyalty failure abandons the review request in flight', { timeout: 15_000 }, async () => {
    const yotpo = await hangingYotpo(401);
    try {
      const summary = await runBackfill({ ...FAST, timeout: 120_000 }, captureIo(yotpo.env));
      assert.equal(summary.exit_code, 3);
      await yotpo.closed;
    } finally {
      await yotpo.close();
    }
  });

  test('temporary files (customer data) are removed even when the process exits at once (a second Ctrl-C)', async () => {
    const tmp = workdir();
    const streams = join(import.meta.dirname, '..', 'src', 'io', 'files.ts');
    const script = `
      import { writeFileSync } from 'node:fs';
      import { dirname, join } from 'node:path';
      const { privateTempDir } = await import(${JSON.stringify(streams)});
      const dir = privateTempDir();
      writeFileSync(join(dir, 'spill.jsonl'), '{"email":"a@example.com"}\\n');
      console.log(dir);
      process.exit(130);
    `;
    const { code, stdout, stderr } = await runNode(['--import', 'tsx', '--input-type=module', '-e', script], {
      env: { ...process.env, TMPDIR: tmp },
    });
    assert.equal(code, 130, stderr);
    assert.ok(stdout.trim().startsWith(tmp), `the folder was made in TMPDIR: ${stdout}`);
    assert.deepEqual(
      readdirSync(tmp).filter((name) => name.startsWith('yotpo-insider-')),
      [],
      'nothing left behind',
    );
  });
});
