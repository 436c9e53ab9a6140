// The webhook receiver, its archive and the archive reader (SPEC §8), over real HTTP on 127.0.0.1:
// accepted deliveries are archived once as envelopes and acknowledged only after the fsync that
// covers them (one fsync shared by the deliveries that queued meanwhile); the token is accepted in
// each place Yotpo may put it and is never archived; malformed, oversized and unauthorized bodies are
// refused; a failing archive answers 503; a delivery after UTC midnight goes to the next day's file;
// unsafe binds are refused; tailArchive reads across days, resumes, waits for partial lines, follows.

import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { StoreError, UsageError } from '../src/errors.js';
import { ArchiveWriter, REJECT_RAW_MAX, type ArchiveWriterOptions } from '../src/listen/archive.js';
import { measureDeliveries } from '../src/listen/bench-senders.js';
import { checkBindAllowed, startReceiver, type HealthBody, type Receiver, type ReceiverOptions } from '../src/listen/receiver.js';
import { tailArchive, type ArchiveLine, type ArchivePosition } from '../src/listen/tail.js';

const TOKEN = 'wh-secret-7f3a9c1d2e';
const OK_HEALTH: HealthBody = { status: 'ok', archived: 0, forwarded: 0, behind: 0, insider: 'ok', since: '2026-12-01T00:00:00.000Z' };

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'yotpo-insider-listen-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Setup {
  dir: string;
  archiveDir: string;
  writer: ArchiveWriter;
  receiver: Receiver;
  webhook: string;
}

async function setup(
  t: TestContext,
  options: Partial<ReceiverOptions> = {},
  writerOptions: Partial<ArchiveWriterOptions> = {},
): Promise<Setup> {
  const dir = tempDir(t);
  const archiveDir = join(dir, 'archive');
  const writer = new ArchiveWriter({ dir: archiveDir, ...writerOptions });
  const receiver = await startReceiver({
    host: '127.0.0.1',
    port: 0,
    archive: writer,
    rejects: (entry) => writer.appendReject(entry),
    health: () => OK_HEALTH,
    ...options,
  });
  t.after(async () => {
    await receiver.close();
    await writer.close();
  });
  return { dir, archiveDir, writer, receiver, webhook: `${receiver.url}/webhooks/yotpo` };
}

interface Answer {
  status: number;
  body: string;
}

function send(url: string, body: string | Buffer, headers: Record<string, string> = {}, method = 'POST', chunked = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const lengthHeader: Record<string, string | number> = chunked ? {} : { 'content-length': Buffer.byteLength(body) };
    const outgoing = request(url, { method, headers: { 'content-type': 'application/json', ...lengthHeader, ...headers } }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text }));
      response.on('error', reject);
    });
    outgoing.on('error', reject);
    if (chunked) {
      // Two writes without a length: the body arrives chunked.
      const bytes = Buffer.from(body);
      outgoing.write(bytes.subarray(0, bytes.length >> 1));
      outgoing.end(bytes.subarray(bytes.length >> 1));
    } else outgoing.end(body);
  });
}

const get = (url: string) => send(url, '', {}, 'GET');

function payload(index: number): Record<string, unknown> {
  return { topic: 'swell/redemption/created', customer_email: `c${index}@example.com`, points: index, created_at: '2026-12-01T10:00:00Z' };
}

function dayFiles(archiveDir: string): string[] {
  try {
    return readdirSync(archiveDir)
      .filter((name) => name.startsWith('webhooks-'))
      .sort();
  } catch {
    return [];
  }
}

function archivedLines(archiveDir: string): Record<string, unknown>[] {
  return dayFiles(archiveDir).flatMap((name) =>
    readFileSync(join(archiveDir, name), 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>),
  );
}

function rejectLines(archiveDir: string): Record<string, unknown>[] {
  let text: string;
  try {
    text = readFileSync(join(archiveDir, 'rejects.jsonl'), 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** Everything the archive folder holds, to prove a secret is nowhere in it. */
function archiveText(archiveDir: string): string {
  return readdirSync(archiveDir)
    .map((name) => readFileSync(join(archiveDir, name), 'utf8'))
    .join('\n');
}

/** Waits for a condition the code under test reaches asynchronously (bounded by the test's timeout). */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 2));
}

/** A gate a hook can wait on, opened by the test. */
function gate(t: TestContext): { wait: Promise<void>; open: () => void } {
  let open: () => void = () => {};
  const wait = new Promise<void>((resolve) => {
    open = () => resolve();
  });
  // Opened first thing after a failed test, so that closing the receiver is not held by it.
  t.after(() => open());
  return { wait, open };
}

/** A broken implementation fails these tests instead of hanging them. */
const BOUNDED = { timeout: 60_000 };

const mode = (path: string) => statSync(path).mode & 0o777;

describe('accepting deliveries', BOUNDED, () => {
  test('each accepted delivery is answered 200 and archived once as an envelope that keeps only eventid', async (t) => {
    const previousUmask = process.umask(0o022);
    t.after(() => process.umask(previousUmask));
    const { archiveDir, webhook, receiver, writer } = await setup(t);

    const first = await send(webhook, JSON.stringify(payload(1)), {
      eventid: 'evt-1',
      'x-forwarded-for': '10.1.2.3',
      'user-agent': 'Yotpo',
    });
    const second = await send(webhook, JSON.stringify(payload(2)));
    assert.deepEqual([first.status, second.status], [200, 200]);
    assert.deepEqual(JSON.parse(first.body), { ok: true });

    const lines = archivedLines(archiveDir);
    assert.equal(lines.length, 2);
    assert.deepEqual(Object.keys(lines[0] ?? {}), ['received_at', 'headers', 'body']);
    assert.deepEqual(lines[0]?.['headers'], { eventid: 'evt-1' });
    assert.deepEqual(lines[0]?.['body'], payload(1));
    assert.match(String(lines[0]?.['received_at']), /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    assert.deepEqual(Object.keys(lines[1] ?? {}), ['received_at', 'body'], 'no headers key without an eventid');
    assert.deepEqual(lines[1]?.['body'], payload(2));

    const [file] = dayFiles(archiveDir);
    assert.equal(file, `webhooks-${String(lines[0]?.['received_at']).slice(0, 10)}.jsonl`);
    assert.equal(mode(archiveDir), 0o700);
    assert.equal(mode(join(archiveDir, file ?? '')), 0o600);
    assert.deepEqual(receiver.stats, { accepted: 2, rejected: 0, unauthorized: 0, tooLarge: 0, unavailable: 0 });
    assert.equal(writer.stats.archived, 2);
  });

  test('the token is accepted as ?token=, Authorization (bare or Bearer) and each token header, and never archived', async (t) => {
    const { archiveDir, webhook, receiver } = await setup(t, { token: TOKEN });
    const places: [string, Record<string, string>][] = [
      [`${webhook}?token=${TOKEN}`, {}],
      [webhook, { authorization: TOKEN }],
      [webhook, { authorization: `Bearer ${TOKEN}` }],
      [webhook, { 'x-api-key': TOKEN }],
      [webhook, { 'x-webhook-token': TOKEN }],
      [webhook, { 'X-Yotpo-Token': TOKEN }],
    ];
    for (const [index, [url, headers]] of places.entries()) {
      const answer = await send(url, JSON.stringify({ ...payload(index), echo: 'x' }), { ...headers, eventid: `e${index}` });
      assert.equal(answer.status, 200, `place ${index}: ${JSON.stringify(headers)}`);
    }
    assert.equal(archivedLines(archiveDir).length, places.length);
    assert.equal(receiver.stats.accepted, places.length);
    assert.ok(!archiveText(archiveDir).includes(TOKEN), 'the token is not in the archive');
  });

  test('a wrong or missing token gets 401 and nothing is archived', async (t) => {
    const { archiveDir, webhook, receiver, writer } = await setup(t, { token: TOKEN });
    const attempts: [string, Record<string, string>][] = [
      [webhook, {}],
      [`${webhook}?token=${TOKEN}x`, {}],
      [`${webhook}?token=${TOKEN.slice(0, -1)}`, {}],
      [webhook, { authorization: `Bearer ${TOKEN.toUpperCase()}` }],
      [webhook, { authorization: 'Basic d2g6c2VjcmV0' }],
      [webhook, { 'x-other-token': TOKEN }],
    ];
    for (const [url, headers] of attempts) {
      const answer = await send(url, JSON.stringify(payload(1)), headers);
      assert.equal(answer.status, 401, JSON.stringify(headers));
      assert.ok(!answer.body.includes(TOKEN));
    }
    assert.equal(receiver.stats.unauthorized, attempts.length);
    assert.equal(writer.stats.appends, 0);
    assert.deepEqual(archivedLines(archiveDir), []);
    assert.deepEqual(rejectLines(archiveDir), []);
  });

  test('a body that is not a JSON object gets 400 and a rejects line with its reason, no headers', async (t) => {
    const { archiveDir, webhook, receiver } = await setup(t, { token: TOKEN });
    const long = `{"x":"${'y'.repeat(REJECT_RAW_MAX + 500)}"`;
    const bodies: [string, string][] = [
      [`{"token": ${TOKEN}}`, 'invalid json'],
      ['{"topic": "swell/redemption/created"', 'invalid json'],
      ['[1,2,3]', 'not an object'],
      ['null', 'not an object'],
      ['"text"', 'not an object'],
      ['', 'invalid json'],
      [long, 'invalid json'],
    ];
    for (const [body] of bodies) {
      const answer = await send(webhook, body, { 'x-api-key': TOKEN, eventid: 'evt-bad' });
      assert.equal(answer.status, 400, body.slice(0, 40));
    }
    const rejects = rejectLines(archiveDir);
    assert.deepEqual(
      rejects.map((line) => line['reason']),
      bodies.map(([, reason]) => reason),
    );
    for (const [index, line] of rejects.entries()) {
      assert.match(String(line['received_at']), /^\d{4}-\d{2}-\d{2}T/);
      assert.ok(!('headers' in line));
      assert.equal(typeof line['detail'], 'string');
      if (index > 0 && index < bodies.length - 1) assert.equal(line['raw'], bodies[index]?.[0]);
    }
    assert.equal(String(rejects.at(-1)?.['raw']).length, REJECT_RAW_MAX, 'a long body is cut');
    assert.equal(rejects.at(-1)?.['raw_truncated_from'], long.length);
    assert.equal(rejects[0]?.['raw'], '{"token": [REDACTED]}', 'a token in a refused body is masked');
    assert.equal(mode(join(archiveDir, 'rejects.jsonl')), 0o600);
    assert.ok(!archiveText(archiveDir).includes(TOKEN));
    assert.equal(receiver.stats.rejected, bodies.length);
    assert.deepEqual(archivedLines(archiveDir), []);
  });

  test('a body of exactly 1 MB is accepted; 1 MB + 1 gets 413 (declared or chunked) and is not archived', async (t) => {
    const { archiveDir, webhook, receiver } = await setup(t);
    const limit = 1024 * 1024;
    const bodyOf = (size: number) => {
      const head = '{"topic":"swell/redemption/created","pad":"';
      return `${head}${'p'.repeat(size - head.length - 2)}"}`;
    };
    assert.equal(Buffer.byteLength(bodyOf(limit)), limit);

    assert.equal((await send(webhook, bodyOf(limit))).status, 200);
    assert.equal((await send(webhook, bodyOf(limit + 1))).status, 413);
    assert.equal((await send(webhook, bodyOf(limit + 1), {}, 'POST', true)).status, 413);
    // The connection stays usable for the next delivery.
    assert.equal((await send(webhook, JSON.stringify(payload(3)))).status, 200);
    assert.equal(receiver.stats.tooLarge, 2);
    assert.equal(archivedLines(archiveDir).length, 2);
  });

  test('healthz answers the health body, 200 when ok and 503 when degraded; other paths 404', async (t) => {
    let health: HealthBody = OK_HEALTH;
    const { receiver } = await setup(t, { health: () => health });
    const ok = await get(`${receiver.url}/healthz`);
    assert.equal(ok.status, 200);
    assert.deepEqual(JSON.parse(ok.body), OK_HEALTH);
    health = { ...OK_HEALTH, status: 'degraded', insider: 'rejected', reason: 'Insider rejected the credentials' };
    const degraded = await get(`${receiver.url}/healthz`);
    assert.equal(degraded.status, 503);
    assert.deepEqual(JSON.parse(degraded.body), health);
    assert.equal((await get(`${receiver.url}/webhooks`)).status, 404);
    assert.equal((await send(`${receiver.url}/other`, '{}')).status, 404);
    assert.equal((await get(`${receiver.url}/webhooks/yotpo`)).status, 405);
  });
});

describe('durable before acknowledged', BOUNDED, () => {
  test('a delivery stays unanswered until its fsync completes; those that queued meanwhile share the next fsync', async (t) => {
    const firstFsync = gate(t);
    const secondFsync = gate(t);
    const entered: number[] = [];
    const groups: number[] = [];
    const { webhook, writer } = await setup(
      t,
      {},
      {
        beforeFsync: async ({ appends }) => {
          entered.push(appends);
          await (entered.length === 1 ? firstFsync.wait : entered.length === 2 ? secondFsync.wait : undefined);
        },
        afterFsync: ({ appends }) => void groups.push(appends),
      },
    );

    const answered: number[] = [];
    const first = send(webhook, JSON.stringify(payload(0))).then((answer) => (answered.push(0), answer));
    await until(() => entered.length === 1);
    const later = Array.from({ length: 5 }, (_, index) =>
      send(webhook, JSON.stringify(payload(index + 1))).then((answer) => (answered.push(index + 1), answer)),
    );
    await until(() => writer.stats.appends === 6);
    assert.deepEqual(answered, [], 'nothing is answered while the first fsync is held');
    assert.equal(writer.stats.fsyncs, 1);

    firstFsync.open();
    assert.equal((await first).status, 200);
    await until(() => entered.length === 2);
    assert.deepEqual(entered, [1, 5], 'the five that queued are covered by one fsync');
    assert.deepEqual(answered, [0], 'the five wait for their own fsync');

    secondFsync.open();
    const answers = await Promise.all(later);
    assert.deepEqual(
      answers.map((answer) => answer.status),
      [200, 200, 200, 200, 200],
    );
    assert.equal(writer.stats.fsyncs, 2);
    assert.deepEqual(groups, [1, 5]);
  });

  test('8 concurrent senders: far fewer fsyncs than deliveries, and no 200 before the fsync that covers it', async (t) => {
    const senders = 8;
    const perSender = 40;
    const deliveries = senders * perSender;
    let writerRef: ArchiveWriter | undefined;
    // Hold each fsync until every sender has a delivery waiting (or none is left to come), so the
    // grouping does not depend on how fast this machine's disk is.
    const { webhook, writer, archiveDir } = await setup(
      t,
      {},
      {
        beforeFsync: () =>
          until(() => {
            const stats = writerRef?.stats;
            return stats === undefined || stats.appends - stats.archived >= senders || stats.appends >= deliveries;
          }),
      },
    );
    writerRef = writer;

    let acknowledged = 0;
    const sender = async (id: number) => {
      for (let index = 0; index < perSender; index += 1) {
        const n = id * perSender + index;
        const answer = await send(webhook, JSON.stringify(payload(n)), { eventid: `evt-${n}` });
        assert.equal(answer.status, 200);
        acknowledged += 1;
        assert.ok(writer.stats.archived >= acknowledged, `${acknowledged} answered 200 but only ${writer.stats.archived} on disk`);
      }
    };
    await Promise.all(Array.from({ length: senders }, (_, id) => sender(id)));

    const ids = archivedLines(archiveDir).map((line) => (line['headers'] as { eventid: string }).eventid);
    assert.equal(ids.length, deliveries);
    assert.equal(new Set(ids).size, deliveries, 'each delivery archived once');
    assert.equal(writer.stats.appends, deliveries);
    assert.ok(writer.stats.fsyncs <= deliveries / 2, `${writer.stats.fsyncs} fsyncs for ${deliveries} deliveries`);
  });

  test('measureDeliveries posts every delivery from its senders and reports throughput and latency', async (t) => {
    const { webhook, archiveDir } = await setup(t);
    const figures = await measureDeliveries({
      url: webhook,
      senders: 8,
      deliveries: 60,
      body: (index: number) => payload(index),
      headers: (index) => ({ eventid: `b${index}` }),
    });
    assert.equal(figures.failed, 0);
    assert.ok(figures.perSecond > 0);
    assert.ok(figures.p99ms >= figures.p50ms && figures.p50ms > 0);
    assert.equal(archivedLines(archiveDir).length, 60);
  });

  test('an archive that cannot be written answers 503, keeps nothing of it, and recovers', async (t) => {
    let failNext = true;
    const { webhook, writer, archiveDir, receiver } = await setup(
      t,
      {},
      {
        beforeFsync: () => {
          if (failNext) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
        },
      },
    );
    const refused = await send(webhook, JSON.stringify(payload(1)), { eventid: 'evt-refused' });
    assert.equal(refused.status, 503);
    assert.ok(writer.failingSince instanceof Date);
    assert.equal(receiver.stats.unavailable, 1);
    assert.deepEqual(archivedLines(archiveDir), [], "the refused delivery's bytes are taken back out");

    failNext = false;
    assert.equal((await send(webhook, JSON.stringify(payload(2)), { eventid: 'evt-ok' })).status, 200);
    assert.equal(writer.failingSince, undefined);
    assert.deepEqual(
      archivedLines(archiveDir).map((line) => line['headers']),
      [{ eventid: 'evt-ok' }],
    );
  });

  test('a day file that cannot be opened answers 503 to deliveries; a rejects file that cannot be, to malformed ones only', async (t) => {
    const now = new Date('2026-12-01T12:00:00.000Z');
    const { webhook, writer, archiveDir } = await setup(t, { now: () => now });
    // A folder where a file should be: the open fails for any user, root included.
    mkdirSync(join(archiveDir, 'rejects.jsonl'));
    const together = await Promise.all([send(webhook, '[not json'), send(webhook, JSON.stringify(payload(1)))]);
    assert.deepEqual(
      together.map((answer) => answer.status),
      [503, 200],
    );
    assert.equal(writer.failingSince, undefined, 'deliveries are still archived');

    now.setUTCDate(2);
    mkdirSync(join(archiveDir, 'webhooks-2026-12-02.jsonl'));
    assert.equal((await send(webhook, JSON.stringify(payload(2)))).status, 503);
    const failingSince = (): Date | undefined => writer.failingSince;
    assert.ok(failingSince() instanceof Date);
    assert.equal(writer.stats.archived, 1);
    assert.equal(writer.stats.failed, 2);
  });

  test('a delivery after UTC midnight goes to the next day file', async (t) => {
    const clock = [new Date('2026-12-01T23:59:59.999Z'), new Date('2026-12-02T00:00:00.000Z'), new Date('2026-12-02T00:00:00.001Z')];
    let tick = 0;
    const { webhook, archiveDir } = await setup(t, { now: () => clock[Math.min(tick++, clock.length - 1)] ?? new Date() });
    for (const n of [1, 2, 3]) assert.equal((await send(webhook, JSON.stringify(payload(n)))).status, 200);

    assert.deepEqual(dayFiles(archiveDir), ['webhooks-2026-12-01.jsonl', 'webhooks-2026-12-02.jsonl']);
    const read = (name: string) =>
      readFileSync(join(archiveDir, name), 'utf8')
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { received_at: string }).received_at);
    assert.deepEqual(read('webhooks-2026-12-01.jsonl'), ['2026-12-01T23:59:59.999Z']);
    assert.deepEqual(read('webhooks-2026-12-02.jsonl'), ['2026-12-02T00:00:00.000Z', '2026-12-02T00:00:00.001Z']);
    for (const name of dayFiles(archiveDir)) assert.equal(mode(join(archiveDir, name)), 0o600);
  });

  test('a torn last line left by a crash is ended before the next append, so no line is glued to it', async (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'webhooks-2026-12-01.jsonl');
    writeFileSync(file, '{"received_at":"2026-12-01T10:00:00.000Z","body":{"a":1}}\n{"received_at":"2026-12-01T1', { mode: 0o644 });
    const writer = new ArchiveWriter({ dir });
    t.after(() => writer.close());
    await writer.append({ received_at: '2026-12-01T11:00:00.000Z', body: { b: 2 } });
    const lines = readFileSync(file, 'utf8').split('\n');
    assert.equal(lines[1], '{"received_at":"2026-12-01T1');
    assert.deepEqual(JSON.parse(lines[2] ?? ''), { received_at: '2026-12-01T11:00:00.000Z', body: { b: 2 } });
    assert.equal(mode(file), 0o600, 'an existing file is made private');
  });
});

describe('binding', BOUNDED, () => {
  test('without a token only a loopback host is allowed', async () => {
    for (const host of ['127.0.0.1', '127.8.9.10', '::1', '[::1]', 'localhost', 'LOCALHOST', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) {
      assert.doesNotThrow(() => checkBindAllowed(host, undefined), host);
    }
    for (const host of ['0.0.0.0', '::', '192.168.1.20', '10.0.0.1', 'example.com', '128.0.0.1', '']) {
      assert.throws(() => checkBindAllowed(host, undefined), UsageError, host);
      assert.doesNotThrow(() => checkBindAllowed(host, TOKEN), host);
    }
    await assert.rejects(
      startReceiver({
        host: '0.0.0.0',
        port: 0,
        archive: { append: async () => undefined },
        rejects: () => undefined,
        health: () => OK_HEALTH,
      }),
      (error: unknown) => error instanceof UsageError && /0\.0\.0\.0/.test(error.message) && /YOTPO_WEBHOOK_TOKEN/.test(error.message),
    );
  });

  test('a port in use is refused with a UsageError naming host:port', async (t) => {
    const { receiver } = await setup(t);
    const port = Number(new URL(receiver.url).port);
    await assert.rejects(
      startReceiver({
        host: '127.0.0.1',
        port,
        archive: { append: async () => undefined },
        rejects: () => undefined,
        health: () => OK_HEALTH,
      }),
      (error: unknown) => error instanceof UsageError && error.message.includes(`127.0.0.1:${port}`) && /in use/.test(error.message),
    );
  });

  test('close stops accepting and answers the request in flight', async (t) => {
    const held = gate(t);
    let entered = false;
    const { webhook, receiver, archiveDir } = await setup(
      t,
      {},
      {
        beforeFsync: async () => {
          entered = true;
          await held.wait;
        },
      },
    );
    const inFlight = send(webhook, JSON.stringify(payload(1)));
    await until(() => entered);
    const closed = receiver.close();
    await assert.rejects(send(webhook, JSON.stringify(payload(2))), /ECONNREFUSED/);
    held.open();
    assert.equal((await inFlight).status, 200);
    await closed;
    assert.equal(archivedLines(archiveDir).length, 1);
  });
});

describe('tailArchive', BOUNDED, () => {
  const envelope = (day: string, n: number) => JSON.stringify({ received_at: `${day}T10:00:0${n}.000Z`, body: { n } });

  async function collect(dir: string, from: ArchivePosition | undefined): Promise<ArchiveLine[]> {
    const lines: ArchiveLine[] = [];
    for await (const line of tailArchive(dir, from, { follow: false })) lines.push(line);
    return lines;
  }

  function twoDays(t: TestContext): string {
    const dir = tempDir(t);
    writeFileSync(join(dir, 'webhooks-2026-12-02.jsonl'), `${envelope('2026-12-02', 3)}\n`);
    writeFileSync(join(dir, 'webhooks-2026-12-01.jsonl'), `${envelope('2026-12-01', 1)}\n\n${envelope('2026-12-01', 2)}\n`);
    writeFileSync(join(dir, 'rejects.jsonl'), '{"reason":"invalid json"}\n');
    return dir;
  }

  test('reads the day files in order, skipping blank lines, each line with the byte offset after it', async (t) => {
    const dir = twoDays(t);
    const lines = await collect(dir, undefined);
    assert.deepEqual(
      lines.map((line) => line.line),
      [envelope('2026-12-01', 1), envelope('2026-12-01', 2), envelope('2026-12-02', 3)],
    );
    const first = Buffer.byteLength(envelope('2026-12-01', 1)) + 1;
    assert.deepEqual(
      lines.map((line) => line.position),
      [
        { file: 'webhooks-2026-12-01.jsonl', offset: first },
        { file: 'webhooks-2026-12-01.jsonl', offset: first + 1 + Buffer.byteLength(envelope('2026-12-01', 2)) + 1 },
        { file: 'webhooks-2026-12-02.jsonl', offset: Buffer.byteLength(envelope('2026-12-02', 3)) + 1 },
      ],
    );
  });

  test('resumes exactly after a recorded position, and refuses a position that is not the end of a line', async (t) => {
    const dir = twoDays(t);
    const all = await collect(dir, undefined);
    const resumed = await collect(dir, all[0]?.position);
    assert.deepEqual(resumed, all.slice(1));
    assert.deepEqual(await collect(dir, all[2]?.position), []);
    // A day file that is gone: the next day's lines are read from its start.
    assert.deepEqual(await collect(dir, { file: 'webhooks-2026-11-30.jsonl', offset: 99 }), all);
    assert.deepEqual(
      await collect(dir, { file: 'webhooks-2026-12-01x.jsonl', offset: 99 }),
      all.slice(2),
      'never a day before the recorded one',
    );
    await assert.rejects(collect(dir, { file: 'webhooks-2026-12-01.jsonl', offset: 5 }), StoreError);
    await assert.rejects(collect(dir, { file: 'webhooks-2026-12-02.jsonl', offset: 10_000 }), StoreError);
  });

  test('a partial last line is not yielded; a torn line followed by a later day is', async (t) => {
    const dir = tempDir(t);
    writeFileSync(join(dir, 'webhooks-2026-12-01.jsonl'), `${envelope('2026-12-01', 1)}\n\n{"received_at":"2026-12-01T1`);
    assert.deepEqual(
      (await collect(dir, undefined)).map((line) => line.line),
      [envelope('2026-12-01', 1)],
    );
    writeFileSync(join(dir, 'webhooks-2026-12-02.jsonl'), `${envelope('2026-12-02', 2)}\n`);
    const lines = await collect(dir, undefined);
    assert.deepEqual(
      lines.map((line) => line.line),
      [envelope('2026-12-01', 1), '{"received_at":"2026-12-01T1', envelope('2026-12-02', 2)],
    );
    assert.equal(lines[1]?.position.offset, statSync(join(dir, 'webhooks-2026-12-01.jsonl')).size);
  });

  test('follows: waits for the rest of a partial line, new lines and a new day file, and stops on abort', async (t) => {
    const dir = tempDir(t);
    const day1 = join(dir, 'webhooks-2026-12-01.jsonl');
    const whole = envelope('2026-12-01', 2);
    writeFileSync(day1, `${envelope('2026-12-01', 1)}\n${whole.slice(0, 10)}`);
    const controller = new AbortController();
    const lines = tailArchive(dir, undefined, { follow: true, signal: controller.signal, pollMs: 20 })[Symbol.asyncIterator]();

    assert.equal((await lines.next()).value?.line, envelope('2026-12-01', 1));
    const pending = lines.next();
    appendFileSync(day1, whole.slice(10));
    appendFileSync(day1, '\n');
    assert.equal((await pending).value?.line, whole);

    const nextDay = lines.next();
    writeFileSync(join(dir, 'webhooks-2026-12-02.jsonl'), `${envelope('2026-12-02', 3)}\n`);
    assert.deepEqual((await nextDay).value?.position, {
      file: 'webhooks-2026-12-02.jsonl',
      offset: Buffer.byteLength(envelope('2026-12-02', 3)) + 1,
    });

    const waiting = lines.next();
    controller.abort();
    assert.equal((await waiting).done, true);
  });

  test('with the writer as `durable`, a line is read only once an fsync covers it', async (t) => {
    const dir = tempDir(t);
    const held = gate(t);
    let entered = false;
    const writer = new ArchiveWriter({
      dir,
      beforeFsync: async () => {
        entered = true;
        await held.wait;
      },
    });
    t.after(() => writer.close());
    const appended = writer.append({ received_at: '2026-12-01T10:00:00.000Z', body: { n: 1 } });
    await until(() => entered);
    assert.ok(statSync(join(dir, 'webhooks-2026-12-01.jsonl')).size > 0, 'the line is written, not yet synced');

    const read = async () => {
      const lines: string[] = [];
      for await (const line of tailArchive(dir, undefined, { follow: false, durable: writer })) lines.push(line.line);
      return lines;
    };
    assert.deepEqual(await read(), []);
    held.open();
    await appended;
    assert.equal((await read()).length, 1);
  });

  test('a rejected archived line is kept in rejects.jsonl with its archive position', async (t) => {
    const dir = tempDir(t);
    const writer = new ArchiveWriter({ dir });
    t.after(() => writer.close());
    const archive = { file: 'webhooks-2026-12-01.jsonl', offset: 120 };
    await writer.appendReject({ received_at: '2026-12-01T10:00:00.000Z', reason: 'no email', raw: '{"topic":"x"}', archive });
    assert.deepEqual(rejectLines(dir), [{ received_at: '2026-12-01T10:00:00.000Z', reason: 'no email', raw: '{"topic":"x"}', archive }]);
    assert.equal(writer.stats.rejects, 1);
  });
});
