// `npm run demo`: the sandbox in-process, a real backfill and a replay against it over HTTP, and a
// check that the sandbox received every sendable customer and event exactly once.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { normaliseEmail } from '../core/transform.js';
import type { Io } from '../pipeline/report.js';
import { customerAt, reviewAt, startSandbox } from '../sandbox/index.js';
import { runBackfill } from './backfill.js';
import { runReplay } from './replay.js';
import { runVerifyCommand } from './verify-run.js';

const FIXTURE = resolve(dirname(fileURLToPath(import.meta.url)), '../../fixtures/events.jsonl');

/** The emails a backfill must deliver: valid loyalty emails, and reviewers with an included review. */
export function expectedBackfillEmails(seed: number, customers: number, reviews: number): Set<string> {
  const expected = new Set<string>();
  for (let i = 0; i < customers; i++) {
    const email = normaliseEmail(customerAt(seed, i).email);
    if (email) expected.add(email);
  }
  for (let j = 0; j < reviews; j++) {
    const review = reviewAt(seed, j, customers);
    const email = normaliseEmail(review.email);
    if (email && review.deleted !== true) expected.add(email);
  }
  return expected;
}

export async function runDemo(options: { customers: number; reviews: number; seed?: number }, io: Io): Promise<number> {
  const seed = options.seed ?? 1;
  const say = (line: string) => io.stderr.write(`${line}\n`);
  const sandbox = await startSandbox({ customers: options.customers, reviews: options.reviews, seed });
  const workdir = mkdtempSync(join(tmpdir(), 'yotpo-insider-demo-'));
  try {
    say(`sandbox: ${options.customers} loyalty customers and ${options.reviews} reviews on ${sandbox.url}`);
    say('');
    say('$ yotpo-insider backfill');
    const demoIo: Io = { ...io, env: { ...sandbox.env, YOTPO_INSIDER_STATE_DIR: join(workdir, 'state') }, cwd: workdir };
    const started = Date.now();
    const backfill = await runBackfill({}, demoIo);
    const wall = Date.now() - started;

    const expected = expectedBackfillEmails(seed, options.customers, options.reviews);
    const received = sandbox.received();
    const counts = new Map<string, number>();
    for (const user of received) {
      const email = user.identifiers?.email ?? '';
      counts.set(email, (counts.get(email) ?? 0) + 1);
    }
    const missing = [...expected].filter((email) => !counts.has(email));
    const twice = [...counts].filter(([, count]) => count > 1);
    say('');
    let ok = missing.length === 0 && twice.length === 0 && backfill.exit_code === 0;
    say(
      `${ok ? '✔' : '✘'} Insider (sandbox) received ${counts.size.toLocaleString('en-US')} users of ${expected.size.toLocaleString('en-US')} sendable, ` +
        `${missing.length} missing, ${twice.length} sent twice; ${backfill.requests.insider} Insider requests, ${backfill.requests.yotpo} Yotpo requests, ${(wall / 1000).toFixed(1)} s`,
    );

    say('');
    say('$ yotpo-insider replay fixtures/events.jsonl');
    const before = sandbox.received().length;
    const replay = await runReplay(FIXTURE, { rejects: join(workdir, 'events.rejects.jsonl') }, demoIo);
    const events = sandbox
      .received()
      .slice(before)
      .reduce((sum, user) => sum + (user.events?.length ?? 0), 0);
    const replayOk = events === replay.events.sent && replay.events.failed === 0;
    say('');
    say(
      `${replayOk ? '✔' : '✘'} Insider (sandbox) received ${events} events of ${replay.events.sent} sent; ` +
        `${replay.events.rejected} bad lines rejected (see the rejects file), ${replay.events.skipped} skipped`,
    );
    ok &&= replayOk;

    say('');
    say('$ yotpo-insider verify');
    const verified = await runVerifyCommand(backfill.run_id ? { run: backfill.run_id } : {}, demoIo);
    say('');
    say(
      `${verified === 0 ? '✔' : '✘'} verify: a sample of the backfill read back from Insider (sandbox) ${verified === 0 ? 'matches what was sent' : 'does not match; see above'}`,
    );
    ok &&= verified === 0;
    return ok ? 0 : 1;
  } finally {
    await sandbox.close();
    rmSync(workdir, { recursive: true, force: true });
  }
}
