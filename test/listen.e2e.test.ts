// `yotpo-insider listen` end to end (SPEC §8, §4, §5): the CLI spawned from source, real HTTP on
// 127.0.0.1, the sandbox as Insider. Accepted deliveries reach Insider once each; refused ones are
// never archived or are kept in rejects.jsonl; a SIGKILL while a batch is stored but unanswered loses
// no acknowledged delivery and sends none twice; an Insider outage or refused credentials are reported
// on /healthz and caught up after; a replay of the archive or a restart sends nothing new; the token
// is written nowhere; --no-forward only archives; SIGTERM exits 0 and loses nothing; unsafe binds and
// a port in use are refused.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as pause } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { describe, test, type TestContext } from 'node:test';
import { startSandbox, type Sandbox } from '../src/sandbox/index.js';

const ENTRY = fileURLToPath(new URL('./cli-entry.ts', import.meta.url));
/** Resolved here, so the CLI can run with the test's temp folder as its working folder. */
const TSX = import.meta.resolve('tsx');
const BOUNDED = { timeout: 120_000 };
/** Options that lift Insider pacing and shorten backoff, so the forwarder runs at loopback speed. */
const QUICK = ['--insider-rps', '0', '--retry-base-ms', '5', '--max-retry-after', '0.05'];

// ---- helpers -------------------------------------------------------------------------------

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'yotpo-insider-listen-e2e-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function sandboxFor(t: TestContext, port = 0): Promise<Sandbox> {
  const sandbox = await startSandbox({ customers: 0, reviews: 0, port });
  t.after(() => {
    sandbox.releaseHeld();
    return sandbox.close();
  });
  return sandbox;
}

/** The environment a listener runs with: the sandbox's Insider, a private state root, nothing inherited. */
function envFor(dir: string, sandbox: Sandbox, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    HOME: dir,
    YOTPO_INSIDER_STATE_DIR: join(dir, 'state'),
    INSIDER_API_URL: sandbox.env.INSIDER_API_URL!,
    INSIDER_PARTNER_NAME: sandbox.env.INSIDER_PARTNER_NAME!,
    INSIDER_API_KEY: sandbox.env.INSIDER_API_KEY!,
    ...extra,
  };
}

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface Cli {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<Finished>;
}

/** Every process output of the test, checked for the token at the end. */
type Outputs = string[];

function spawnCli(args: string[], cwd: string, env: Record<string, string>, outputs: Outputs): Cli {
  const child = spawn(process.execPath, ['--import', TSX, ENTRY, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<Finished>((resolve) =>
    child.on('close', (code, signal) => {
      outputs.push(stdout, stderr);
      resolve({ code, signal, stdout, stderr });
    }),
  );
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

interface Listener extends Cli {
  /** http://127.0.0.1:PORT */
  url: string;
  port: number;
}

/** Starts `listen` and resolves once it says where it listens; rejects if it exits first. */
async function startListener(
  t: TestContext,
  args: string[],
  cwd: string,
  env: Record<string, string>,
  outputs: Outputs,
): Promise<Listener> {
  const cli = spawnCli(['listen', ...args], cwd, env, outputs);
  t.after(async () => {
    if (cli.child.exitCode === null && cli.child.signalCode === null) cli.child.kill('SIGKILL');
    await cli.exited;
  });
  const url = await new Promise<string>((resolve, reject) => {
    const onData = () => {
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+)\/webhooks\/yotpo/.exec(cli.stderr());
      if (match) {
        cli.child.stderr!.off('data', onData);
        resolve(match[1]!);
      }
    };
    cli.child.stderr!.on('data', onData);
    void cli.exited.then((finished) => reject(new Error(`listen exited (${finished.code}) before listening: ${finished.stderr}`)));
  });
  return { ...cli, url, port: Number(new URL(url).port) };
}

async function stopWith(listener: Listener, signal: NodeJS.Signals): Promise<Finished> {
  listener.child.kill(signal);
  return listener.exited;
}

let serial = 0;
/** A points-earned webhook of its own member: one Insider event per delivery, told apart by email. */
function pointsEarned(label: string): { email: string; body: string } {
  const n = ++serial;
  const email = `${label}-${n}@example.com`;
  const at = new Date(Date.UTC(2026, 10, 20, 12, 0, 0) + n * 1000).toISOString();
  const body = {
    topic: 'swell/points/earned',
    name: 'Swell Points Earned',
    email,
    customer: { email, first_name: 'Member', last_name: String(n), points_balance: 100 + n, points_earned: 200 + n },
    perk: { id: 90_000_000 + n, reward_points: 10, completed: true, completed_at: at, history_title: 'Placed an order', created_at: at },
  };
  return { email, body: JSON.stringify(body) };
}

type Answer = number | 'no answer';

async function post(url: string, body: string, headers: Record<string, string> = {}): Promise<Answer> {
  try {
    const response = await fetch(`${url}/webhooks/yotpo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
    });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return 'no answer';
  }
}

async function health(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${url}/healthz`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Polls `probe` until it returns a value; a bounded number of tries, then fails naming `what`. */
async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, tries = 600, pauseMs = 50): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await pause(pauseMs);
  }
  throw new Error(`gave up waiting: ${what}`);
}

/** How many events Insider (the sandbox) received per member email. */
function eventsByEmail(sandbox: Sandbox): Map<string, number> {
  const counts = new Map<string, number>();
  for (const user of sandbox.received()) {
    const email = String(user.identifiers?.email);
    counts.set(email, (counts.get(email) ?? 0) + (user.events?.length ?? 0));
  }
  return counts;
}

function jsonLines(file: string): Record<string, unknown>[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

function dayFiles(archive: string): string[] {
  return readdirSync(archive)
    .filter((name) => /^webhooks-\d{4}-\d{2}-\d{2}\.jsonl$/.test(name))
    .map((name) => join(archive, name));
}

/** Emails of the users the failed files under `dir` name as uncertain deliveries. */
function uncertainEmails(dir: string): Set<string> {
  const emails = new Set<string>();
  for (const name of readdirSync(dir).filter((file) => /^failed-.*\.jsonl$/.test(file))) {
    for (const line of jsonLines(join(dir, name))) {
      if (line.delivery_uncertain !== true) continue;
      const user = line.user as { identifiers?: { email?: string } };
      emails.add(String(user.identifiers?.email));
    }
  }
  return emails;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((name) => join(dir, name))
    .filter((path) => statSync(path).isFile());
}

function foldersUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((name) => join(dir, name))
    .filter((path) => statSync(path).isDirectory());
}

function lastJson(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
}

/** Runs a `listen` that must be refused: one that listens instead is killed at once, and says so. */
async function refusedListen(
  args: string[],
  cwd: string,
  env: Record<string, string>,
  outputs: Outputs,
): Promise<Finished & { listened: boolean }> {
  const cli = spawnCli(['listen', ...args], cwd, env, outputs);
  let listened = false;
  cli.child.stderr!.on('data', () => {
    if (!listened && /listening on/.test(cli.stderr())) {
      listened = true;
      cli.child.kill('SIGKILL');
    }
  });
  return { ...(await cli.exited), listened };
}

// ---- tests ---------------------------------------------------------------------------------

describe('listen: accepting, refusing, forwarding', BOUNDED, () => {
  test('accepted deliveries answer 200 and reach Insider once each; 401s are not archived; malformed and unusable payloads are in rejects.jsonl, counted; a replay of the archive sends nothing new; the token is written nowhere', async (t) => {
    const dir = tempDir(t);
    const archive = join(dir, 'archive');
    const outputs: Outputs = [];
    const token = `wh-${randomBytes(12).toString('hex')}`;
    const sandbox = await sandboxFor(t);
    const env = envFor(dir, sandbox, { YOTPO_WEBHOOK_TOKEN: token });
    const listener = await startListener(
      t,
      ['--port', '0', '--archive', archive, '--batch-size', '4', '--json', ...QUICK],
      dir,
      env,
      outputs,
    );

    // Yotpo's way of sending the token is not documented: each accepted place is used in turn.
    const places: Array<(body: string) => Promise<Answer>> = [
      (body) => post(listener.url, body, { authorization: `Bearer ${token}` }),
      (body) => post(listener.url, body, { authorization: token }),
      (body) => post(listener.url, body, { 'x-webhook-token': token }),
      (body) => post(listener.url, body, { 'x-api-key': token }),
    ];
    const accepted = Array.from({ length: 10 }, () => pointsEarned('member'));
    for (const [i, delivery] of accepted.entries())
      assert.equal(await places[i % places.length]!(delivery.body), 200, `delivery ${delivery.email}`);
    const viaQuery = pointsEarned('query');
    const answer = await fetch(`${listener.url}/webhooks/yotpo?token=${token}`, { method: 'POST', body: viaQuery.body });
    assert.equal(answer.status, 200);
    accepted.push(viaQuery);

    const intruder = pointsEarned('intruder');
    assert.equal(await post(listener.url, intruder.body), 401, 'no token');
    assert.equal(await post(listener.url, intruder.body, { authorization: 'Bearer wrong-token' }), 401, 'wrong token');
    assert.equal(await post(listener.url, intruder.body, { 'x-webhook-token': `${token}x` }), 401, 'token with a suffix');

    const auth = { authorization: `Bearer ${token}` };
    assert.equal(await post(listener.url, '{"topic":"swell/points/earned",', auth), 400, 'invalid json');
    assert.equal(await post(listener.url, '[1,2]', auth), 400, 'not an object');
    // Archived (they are JSON objects), then rejected by the forwarder as replay would reject them.
    const unknown = JSON.stringify({
      topic: 'swell/gift_card/created',
      name: 'Swell Gift Card Created',
      email: 'gift@example.com',
      perk: { completed_at: '2026-11-21T12:00:00Z' },
    });
    const noEmail = JSON.stringify({
      topic: 'swell/points/earned',
      name: 'Swell Points Earned',
      customer: { first_name: 'Xena' },
      perk: { reward_points: 40, completed: true, completed_at: '2026-11-19T09:00:00Z' },
    });
    assert.equal(await post(listener.url, unknown, auth), 200);
    assert.equal(await post(listener.url, noEmail, auth), 200);

    const emails = accepted.map((delivery) => delivery.email);
    const healthy = await until('every archived delivery forwarded', async () => {
      const answer = await health(listener.url);
      const delivered = eventsByEmail(sandbox);
      return answer.body.forwarded === 13 && emails.every((email) => delivered.has(email)) ? answer : undefined;
    });
    assert.equal(healthy.status, 200);
    assert.deepEqual(
      { ...healthy.body, since: undefined },
      { status: 'ok', archived: 13, forwarded: 13, behind: 0, insider: 'ok', since: undefined },
    );

    const archived = dayFiles(archive).flatMap(jsonLines);
    assert.equal(archived.length, 13, 'the 11 accepted events and the 2 payloads replay rejects are archived; nothing refused is');
    assert.ok(!archived.some((line) => JSON.stringify(line).includes('intruder')), 'a 401 is never archived');
    const rejects = jsonLines(join(archive, 'rejects.jsonl'));
    const reasons = rejects.map((line) => line.reason).sort();
    assert.deepEqual(reasons, ['invalid json', 'no email', 'not an object', 'unknown event']);
    assert.ok(
      rejects.some((line) => line.reason === 'unknown event' && String(line.raw).includes('gift@example.com')),
      'the unknown event is kept with its payload',
    );

    const stopped = await stopWith(listener, 'SIGTERM');
    assert.equal(stopped.code, 0, stopped.stderr);
    const summary = lastJson(stopped.stdout) as { command: string; events: Record<string, number> };
    assert.equal(summary.command, 'listen');
    assert.equal(summary.events.rejected, 2, 'the archived payloads replay rejects are counted');
    assert.equal(summary.events.succeeded, 11);

    const delivered = eventsByEmail(sandbox);
    for (const email of emails) assert.equal(delivered.get(email), 1, `${email} reaches Insider once`);
    assert.equal(sandbox.received().length, emails.length, 'nothing else reaches Insider');

    // The archive is replay's input: against the same account, nothing in it is new.
    for (const file of dayFiles(archive)) {
      const replay = await spawnCli(['replay', file, '--json', ...QUICK], dir, env, outputs).exited;
      assert.ok(replay.code === 0 || replay.code === 1, replay.stderr);
      const replayed = lastJson(replay.stdout) as { events: Record<string, number> };
      assert.equal(replayed.events.sent, 0, `replay of ${file} sends nothing new`);
      assert.equal(replayed.events.rejected, 2, 'replay rejects what listen rejected');
    }
    assert.equal(sandbox.received().length, emails.length, 'replay sent nothing to Insider');

    // A restart on the same archive sends nothing again, and appends to the rejects file it shares.
    const restarted = await startListener(t, ['--port', '0', '--archive', archive, '--batch-size', '4', ...QUICK], dir, env, outputs);
    const unknownAgain = JSON.stringify({
      topic: 'swell/gift_card/created',
      name: 'Swell Gift Card Created',
      email: 'gift2@example.com',
      perk: { completed_at: '2026-11-22T12:00:00Z' },
    });
    assert.equal(await post(restarted.url, unknownAgain, auth), 200);
    await until('the restart forwards its delivery', async () => ((await health(restarted.url)).body.forwarded === 1 ? true : undefined));
    assert.equal((await stopWith(restarted, 'SIGTERM')).code, 0);
    assert.deepEqual(
      jsonLines(join(archive, 'rejects.jsonl')).map((line) => line.reason),
      [...rejects.map((line) => line.reason), 'unknown event'],
      'the earlier rejects are kept',
    );
    assert.equal(sandbox.received().length, emails.length, 'the restart sent nothing again');

    const files = filesUnder(dir);
    assert.ok(files.length > 0);
    for (const file of files) assert.equal(statSync(file).mode & 0o777, 0o600, `${file} is 0600`);
    for (const folder of foldersUnder(dir)) assert.equal(statSync(folder).mode & 0o777, 0o700, `${folder} is 0700`);
    for (const file of files) assert.ok(!readFileSync(file).includes(token), `the token is not in ${file}`);
    for (const text of outputs) assert.ok(!text.includes(token), 'the token is in no output');
  });
});

describe('listen: a crash', BOUNDED, () => {
  test('SIGKILL while 8 senders post and a batch is stored but unanswered: after a restart every acknowledged delivery is in Insider once or listed uncertain; none lost, none twice', async (t) => {
    const dir = tempDir(t);
    const archive = join(dir, 'archive');
    const outputs: Outputs = [];
    const sandbox = await sandboxFor(t);
    const env = envFor(dir, sandbox);
    // The first upsert Insider stores is not answered until released: the kill lands right there.
    sandbox.setFaults({ afterStore: { mode: 'hold', count: 1 } });
    const args = ['--archive', archive, '--batch-size', '10', ...QUICK];
    const first = await startListener(t, ['--port', '0', ...args], dir, env, outputs);
    let target = first.url;

    const acknowledged = new Set<string>();
    /** Bodies acknowledged by the listener that was killed. */
    const acknowledgedBeforeKill: string[] = [];
    let unansweredAttempts = 0;
    let killing = false;
    const sender = async (index: number) => {
      for (let n = 0; n < 15; n++) {
        const delivery = pointsEarned(`sender${index}`);
        // Yotpo retries a delivery that got no 200; bounded here, as it is there.
        for (let attempt = 0; attempt < 400; attempt++) {
          const answer = await post(target, delivery.body);
          if (answer === 200) {
            acknowledged.add(delivery.email);
            if (!killing) acknowledgedBeforeKill.push(delivery.body);
            break;
          }
          unansweredAttempts++;
          await pause(25);
        }
      }
    };
    const senders = Promise.all(Array.from({ length: 8 }, (_, index) => sender(index)));

    await sandbox.waitForStored(1);
    killing = true;
    const killed = await stopWith(first, 'SIGKILL');
    assert.equal(killed.signal, 'SIGKILL');
    const second = await startListener(t, ['--port', String(first.port), ...args], dir, env, outputs);
    target = second.url;
    sandbox.releaseHeld(); // the killed listener's connection is gone: nobody reads this answer
    await senders;
    assert.equal(acknowledged.size, 120, 'every delivery got its 200 in the end');
    assert.ok(unansweredAttempts > 0, 'the kill left deliveries unanswered, retried by their senders');
    // A 200 the kill cut off is, for Yotpo, no answer: it delivers again what the killed listener had
    // archived, the held batch's members among them.
    assert.ok(acknowledgedBeforeKill.length >= 10);
    for (const body of acknowledgedBeforeKill) assert.equal(await post(second.url, body), 200);
    // At least: a delivery archived whose 200 the kill cut off was delivered again by its sender too.
    const archivedLines = dayFiles(archive).flatMap(jsonLines).length;
    assert.ok(archivedLines >= 120 + acknowledgedBeforeKill.length, `the archive holds each redelivery (${archivedLines} lines)`);

    await until('every acknowledged delivery in Insider or uncertain', () => {
      const delivered = eventsByEmail(sandbox);
      const uncertain = uncertainEmails(archive);
      return [...acknowledged].every((email) => delivered.has(email) || uncertain.has(email)) ? true : undefined;
    });
    const stopped = await stopWith(second, 'SIGTERM');
    assert.equal(stopped.code, 0, stopped.stderr);

    const delivered = eventsByEmail(sandbox);
    const uncertain = uncertainEmails(archive);
    for (const [email, count] of delivered) assert.equal(count, 1, `${email} reached Insider ${count} times`);
    const lost = [...acknowledged].filter((email) => !delivered.has(email) && !uncertain.has(email));
    assert.deepEqual(lost, [], 'no acknowledged delivery is lost');
    assert.ok(uncertain.size > 0, 'the batch stored but unanswered at the kill is listed uncertain');
    for (const email of uncertain) assert.ok(acknowledged.has(email), `${email}: only acknowledged deliveries are uncertain`);

    const status = await spawnCli(['status', '--json'], dir, env, outputs).exited;
    assert.equal(status.code, 0, status.stderr);
    const keys = (lastJson(status.stdout) as { ledger: { keys: { 'in flight': number; delivered: number; uncertain: number } } }).ledger
      .keys;
    assert.equal(keys['in flight'], 0, 'nothing is left in flight');
    assert.equal(keys.uncertain, uncertain.size, 'the ledger holds as uncertain what the failed file lists');
    assert.equal(keys.delivered + keys.uncertain, acknowledged.size, 'every acknowledged delivery is delivered or uncertain in the ledger');
  });
});

describe('listen: Insider down', BOUNDED, () => {
  test('while Insider is unreachable deliveries are still accepted and /healthz is 503 degraded; once it is back everything is forwarded and /healthz is 200 ok', async (t) => {
    const dir = tempDir(t);
    const archive = join(dir, 'archive');
    const outputs: Outputs = [];
    const insider = await startSandbox({ customers: 0, reviews: 0 });
    const port = Number(new URL(insider.url).port);
    const env = envFor(dir, insider);
    const listener = await startListener(
      t,
      ['--port', '0', '--archive', archive, '--batch-size', '5', '--max-attempts', '2', '--timeout', '2000', ...QUICK],
      dir,
      env,
      outputs,
    );
    await insider.close();

    const during = Array.from({ length: 12 }, () => pointsEarned('outage'));
    for (const delivery of during.slice(0, 6)) assert.equal(await post(listener.url, delivery.body), 200, 'accepted while Insider is down');
    const degraded = await until('healthz degraded', async () => {
      const answer = await health(listener.url);
      return answer.body.status === 'degraded' ? answer : undefined;
    });
    assert.equal(degraded.status, 503);
    assert.equal(degraded.body.insider, 'retrying');
    for (const delivery of during.slice(6)) assert.equal(await post(listener.url, delivery.body), 200, 'still accepted while degraded');
    const stillDegraded = await health(listener.url);
    assert.equal(stillDegraded.body.archived, 12);
    assert.ok(Number(stillDegraded.body.behind) > 0, 'the outage leaves deliveries behind');

    // Insider comes back on the same address.
    const back = await sandboxFor(t, port);
    const emails = during.map((delivery) => delivery.email);
    const recovered = await until(
      'forwarded after the outage',
      async () => {
        const answer = await health(listener.url);
        const delivered = eventsByEmail(back);
        return answer.status === 200 && emails.every((email) => delivered.has(email)) ? answer : undefined;
      },
      1200,
    );
    assert.equal(recovered.body.status, 'ok');
    assert.equal(recovered.body.insider, 'ok');
    const delivered = eventsByEmail(back);
    for (const email of emails) assert.equal(delivered.get(email), 1, `${email} reaches Insider once`);
    const stopped = await stopWith(listener, 'SIGTERM');
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.deepEqual([...uncertainEmails(archive)], [], 'a refused connection is no uncertain delivery');
  });
});

/** Insider refusing the credentials, on `port`: every request gets its 401. Resolves to its stop. */
async function refusingInsider(t: TestContext, port: number): Promise<() => Promise<void>> {
  const server = createHttpServer((request, response) => {
    request.resume();
    request.on('end', () => {
      response.writeHead(401, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ success: false, message: 'Partner token authentication failed.' }));
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const close = () =>
    new Promise<void>((resolve) => {
      if (!server.listening) return resolve();
      server.close(() => resolve());
      server.closeAllConnections();
    });
  t.after(close);
  return close;
}

describe('listen: Insider refuses the credentials', BOUNDED, () => {
  test('deliveries are still accepted, /healthz is 503 with insider "rejected"; once the credentials are accepted again everything is forwarded', async (t) => {
    const dir = tempDir(t);
    const archive = join(dir, 'archive');
    const outputs: Outputs = [];
    const insider = await startSandbox({ customers: 0, reviews: 0 });
    const port = Number(new URL(insider.url).port);
    const env = envFor(dir, insider);
    const listener = await startListener(
      t,
      ['--port', '0', '--archive', archive, '--batch-size', '5', '--max-attempts', '2', ...QUICK],
      dir,
      env,
      outputs,
    );
    await insider.close();
    const stopRefusing = await refusingInsider(t, port);

    const deliveries = Array.from({ length: 8 }, () => pointsEarned('refused'));
    for (const delivery of deliveries.slice(0, 4)) assert.equal(await post(listener.url, delivery.body), 200);
    const rejected = await until('healthz says the credentials are rejected', async () => {
      const answer = await health(listener.url);
      return answer.body.insider === 'rejected' ? answer : undefined;
    });
    assert.equal(rejected.status, 503);
    assert.equal(rejected.body.status, 'degraded');
    for (const delivery of deliveries.slice(4))
      assert.equal(await post(listener.url, delivery.body), 200, 'still accepted while Insider refuses');

    await stopRefusing();
    const back = await sandboxFor(t, port);
    const emails = deliveries.map((delivery) => delivery.email);
    await until(
      'forwarded once the credentials are accepted',
      async () =>
        (await health(listener.url)).status === 200 && emails.every((email) => eventsByEmail(back).has(email)) ? true : undefined,
      1200,
    );
    const delivered = eventsByEmail(back);
    for (const email of emails) assert.equal(delivered.get(email), 1, `${email} reaches Insider once`);
    assert.equal((await stopWith(listener, 'SIGTERM')).code, 0);
  });
});

describe('listen: stopping', BOUNDED, () => {
  test('SIGTERM while a batch is unanswered and senders post exits 0; every acknowledged and every archived delivery reaches Insider once (before the exit, or from the next start)', async (t) => {
    const dir = tempDir(t);
    const archive = join(dir, 'archive');
    const outputs: Outputs = [];
    const sandbox = await sandboxFor(t);
    const env = envFor(dir, sandbox);
    sandbox.setFaults({ afterStore: { mode: 'slow', count: 1 }, afterStoreDelayMs: 1500 });
    const args = ['--archive', archive, '--batch-size', '5', ...QUICK];
    const listener = await startListener(t, ['--port', '0', ...args], dir, env, outputs);

    const acknowledged = new Set<string>();
    const first = Array.from({ length: 30 }, () => pointsEarned('stop'));
    const answers = await Promise.all(first.map((delivery) => post(listener.url, delivery.body)));
    assert.deepEqual(new Set(answers), new Set([200]));
    for (const delivery of first) acknowledged.add(delivery.email);
    await sandbox.waitForStored(1);

    // Senders keep posting through the signal, each until the listener stops answering 200.
    let posting = 0;
    const sender = async () => {
      for (let n = 0; n < 500; n++) {
        const delivery = pointsEarned('during-stop');
        posting++;
        if ((await post(listener.url, delivery.body)) !== 200) return;
        acknowledged.add(delivery.email);
      }
    };
    const senders = Promise.all(Array.from({ length: 4 }, () => sender()));
    await until('senders posting', () => (posting >= 8 ? true : undefined));
    const stopped = await stopWith(listener, 'SIGTERM');
    await senders;
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.ok(acknowledged.size > first.length, 'deliveries were acknowledged while the listener stopped');

    const archivedEmails = () =>
      dayFiles(archive).flatMap((file) => jsonLines(file).map((line) => String((line.body as { email?: unknown }).email)));
    const missing = () => {
      const delivered = eventsByEmail(sandbox);
      return [...acknowledged, ...archivedEmails()].filter((email) => !delivered.has(email));
    };
    if (missing().length > 0) {
      const next = await startListener(t, ['--port', '0', ...args], dir, env, outputs);
      await until('the rest forwarded by the next start', () => (missing().length === 0 ? true : undefined));
      const again = await stopWith(next, 'SIGTERM');
      assert.equal(again.code, 0, again.stderr);
    }
    const delivered = eventsByEmail(sandbox);
    for (const email of acknowledged) assert.equal(delivered.get(email), 1, `acknowledged ${email} reaches Insider once`);
    const archived = new Set(archivedEmails());
    for (const email of archived) assert.equal(delivered.get(email), 1, `archived ${email} reaches Insider once`);
    for (const email of delivered.keys()) assert.ok(archived.has(email), `${email} reached Insider without being archived`);
    assert.deepEqual([...uncertainEmails(archive)], []);
  });
});

describe('listen: stopping while Insider holds a batch', () => {
  // The stop grace (10 s in all) ends with the upload still unanswered: the process exits anyway.
  const STOP_BOUND = { timeout: 45_000 };
  test(
    'SIGTERM while a stored batch stays unanswered past the grace exits 0; the next start lists it uncertain and sends nothing twice',
    STOP_BOUND,
    async (t) => {
      const dir = tempDir(t);
      const archive = join(dir, 'archive');
      const outputs: Outputs = [];
      const sandbox = await sandboxFor(t);
      const env = envFor(dir, sandbox);
      sandbox.setFaults({ afterStore: { mode: 'hold', count: 1 } });
      // A request timeout far beyond the test's: only the 10 s stop grace can end this listener.
      const args = ['--archive', archive, '--batch-size', '5', '--timeout', '600000', ...QUICK];
      const listener = await startListener(t, ['--port', '0', ...args], dir, env, outputs);
      const deliveries = Array.from({ length: 5 }, () => pointsEarned('held-at-stop'));
      for (const delivery of deliveries) assert.equal(await post(listener.url, delivery.body), 200);
      await sandbox.waitForStored(1);
      const stopped = await stopWith(listener, 'SIGTERM');
      assert.equal(stopped.code, 0, stopped.stderr);
      sandbox.releaseHeld();

      const more = Array.from({ length: 3 }, () => pointsEarned('after-held'));
      const next = await startListener(t, ['--port', '0', ...args], dir, env, outputs);
      for (const delivery of more) assert.equal(await post(next.url, delivery.body), 200);
      const emails = [...deliveries, ...more].map((delivery) => delivery.email);
      await until('the next start settles every delivery', () => {
        const delivered = eventsByEmail(sandbox);
        const uncertain = uncertainEmails(archive);
        return emails.every((email) => uncertain.has(email) || delivered.has(email)) &&
          more.every((delivery) => delivered.has(delivery.email))
          ? true
          : undefined;
      });
      assert.equal((await stopWith(next, 'SIGTERM')).code, 0);
      const delivered = eventsByEmail(sandbox);
      for (const email of emails) assert.equal(delivered.get(email), 1, `${email} reaches Insider once`);
      const uncertain = uncertainEmails(archive);
      for (const delivery of deliveries) assert.ok(uncertain.has(delivery.email) || delivered.has(delivery.email));
    },
  );
});

describe('listen: stopping while Insider is down', BOUNDED, () => {
  test('SIGTERM while Insider is unreachable exits 0 after the grace; the next start forwards every archived delivery once', async (t) => {
    const dir = tempDir(t);
    const archive = join(dir, 'archive');
    const outputs: Outputs = [];
    const insider = await startSandbox({ customers: 0, reviews: 0 });
    const port = Number(new URL(insider.url).port);
    const env = envFor(dir, insider);
    const args = ['--archive', archive, '--batch-size', '5', '--max-attempts', '2', '--timeout', '2000', ...QUICK];
    const listener = await startListener(t, ['--port', '0', ...args], dir, env, outputs);
    await insider.close();

    const deliveries = Array.from({ length: 8 }, () => pointsEarned('down-at-stop'));
    for (const delivery of deliveries) assert.equal(await post(listener.url, delivery.body), 200);
    await until('healthz degraded', async () => ((await health(listener.url)).body.status === 'degraded' ? true : undefined));
    const stopped = await stopWith(listener, 'SIGTERM');
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.deepEqual([...uncertainEmails(archive)], [], 'nothing reached Insider, so nothing is uncertain');

    const back = await sandboxFor(t, port);
    const next = await startListener(t, ['--port', '0', ...args], dir, env, outputs);
    const emails = deliveries.map((delivery) => delivery.email);
    await until('forwarded by the next start', () => (emails.every((email) => eventsByEmail(back).has(email)) ? true : undefined));
    assert.equal((await stopWith(next, 'SIGTERM')).code, 0);
    const delivered = eventsByEmail(back);
    for (const email of emails) assert.equal(delivered.get(email), 1, `${email} reaches Insider once`);
    assert.equal(back.received().length, emails.length);
  });
});

describe('listen: --no-forward', BOUNDED, () => {
  test('--no-forward only archives; a later listen counts that archive as behind and forwards each delivery once', async (t) => {
    const dir = tempDir(t);
    const archive = join(dir, 'archive');
    const outputs: Outputs = [];
    const sandbox = await sandboxFor(t);
    const env = envFor(dir, sandbox);
    const archiving = await startListener(t, ['--port', '0', '--archive', archive, '--no-forward', ...QUICK], dir, env, outputs);
    const deliveries = Array.from({ length: 6 }, () => pointsEarned('archive-only'));
    for (const delivery of deliveries) assert.equal(await post(archiving.url, delivery.body), 200);
    const archivingHealth = await health(archiving.url);
    assert.equal(archivingHealth.status, 200);
    assert.deepEqual([archivingHealth.body.archived, archivingHealth.body.forwarded], [6, 0]);
    assert.equal((await stopWith(archiving, 'SIGTERM')).code, 0);
    assert.equal(sandbox.received().length, 0, 'nothing is forwarded with --no-forward');
    assert.equal(dayFiles(archive).flatMap(jsonLines).length, 6);

    // The whole archive goes out in one batch, stored but held: the backlog shows as behind.
    sandbox.setFaults({ afterStore: { mode: 'hold', count: 1 } });
    const forwarding = await startListener(t, ['--port', '0', '--archive', archive, '--batch-size', '6', ...QUICK], dir, env, outputs);
    await sandbox.waitForStored(1);
    const backlog = await health(forwarding.url);
    assert.deepEqual(
      [backlog.body.archived, backlog.body.forwarded, backlog.body.behind],
      [6, 0, 6],
      'an earlier run’s archive not yet forwarded is behind',
    );
    sandbox.releaseHeld();
    const emails = deliveries.map((delivery) => delivery.email);
    await until('the archive forwarded', () => (emails.every((email) => eventsByEmail(sandbox).has(email)) ? true : undefined));
    const caughtUp = await until('caught up', async () => {
      const answer = await health(forwarding.url);
      return answer.body.behind === 0 ? answer : undefined;
    });
    assert.deepEqual([caughtUp.status, caughtUp.body.archived, caughtUp.body.forwarded], [200, 6, 6]);
    assert.equal((await stopWith(forwarding, 'SIGTERM')).code, 0);
    const delivered = eventsByEmail(sandbox);
    for (const email of emails) assert.equal(delivered.get(email), 1, `${email} reaches Insider once`);
    assert.equal(sandbox.received().length, emails.length);
  });
});

describe('listen: refusals', BOUNDED, () => {
  test('a non-loopback --host without a token is refused (exit 2), before anything listens', async (t) => {
    const dir = tempDir(t);
    const outputs: Outputs = [];
    const sandbox = await sandboxFor(t);
    const result = await refusedListen(
      ['--host', '0.0.0.0', '--port', '0', '--archive', join(dir, 'archive')],
      dir,
      envFor(dir, sandbox),
      outputs,
    );
    assert.equal(result.listened, false, 'it listened on 0.0.0.0 without a token');
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /YOTPO_WEBHOOK_TOKEN/);
  });

  test('a port in use is refused (exit 2), naming the address', async (t) => {
    const dir = tempDir(t);
    const outputs: Outputs = [];
    const sandbox = await sandboxFor(t);
    const holder: Server = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => holder.close(() => resolve())));
    const { port } = holder.address() as { port: number };
    const result = await refusedListen(['--port', String(port), '--archive', join(dir, 'archive')], dir, envFor(dir, sandbox), outputs);
    assert.equal(result.listened, false);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, new RegExp(`127\\.0\\.0\\.1:${port}.*in use`));
  });
});
