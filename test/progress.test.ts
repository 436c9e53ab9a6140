// Progress on stderr: the plain lines (UTC time, at most every 10 s), the current rate over a
// recent window, ETAs, the binding rate limit, lines printed above the bars, a closed stderr,
// and a sandbox backfill watched through a real pseudo-terminal.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { PassThrough, Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { ApiClient, newRequestCounters } from '../src/io/http.js';
import { DEFAULT_RETRY_POLICY } from '../src/io/retry.js';
import { Progress, type ProgressFigures } from '../src/pipeline/progress.js';
import { printAboveProgress, Reporter, type Io } from '../src/pipeline/report.js';
import { startSandbox, type Sandbox } from '../src/sandbox/index.js';
import { workdir } from './helpers.js';
import { ENTRY, type PtyRun, runInPty, Screen, screenOf, TSX } from './pty.js';

const UTC_STAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ /;
const RAW_PLACEHOLDER = /\{[a-z_]+\}/;

function plainIo(): Io & { text(): string } {
  const stderr = new PassThrough();
  let text = '';
  stderr.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  return { stdout: new PassThrough(), stderr, stderrIsTty: false, env: {}, cwd: '.', text: () => text };
}

function ttyIo(columns: number): Io & { text(): string } {
  const io = plainIo();
  Object.assign(io.stderr, { isTTY: true, columns });
  return { ...io, stderrIsTty: true };
}

const figures = (values: Partial<ProgressFigures>): ProgressFigures => ({
  reviewPages: 0,
  reviews: 0,
  customersRead: 0,
  sent: 0,
  succeeded: 0,
  failed: 0,
  ...values,
});

describe('plain progress lines', () => {
  test('at most one every 10 s, each led by the UTC time', (t) => {
    let now = Date.parse('2026-12-01T22:10:00Z');
    const io = plainIo();
    const progress = new Progress(io, { quiet: false, records: 'customers', now: () => now });
    t.after(() => progress.stop());
    for (let second = 1; second <= 25; second++) {
      now += 1000;
      progress.update(figures({ customersRead: second * 10, sent: second * 10, succeeded: second * 10 }));
    }
    const lines = io.text().trimEnd().split('\n');
    assert.equal(lines.length, 2, io.text());
    assert.match(
      lines[0]!,
      /^2026-12-01T22:10:10Z sending; customers 100 read; users 100 sent · 100 confirmed · 0 failed · 10\/s \(last 20 s\)$/,
    );
    assert.match(lines[1]!, /^2026-12-01T22:10:20Z /);
    for (const line of lines) assert.match(line, UTC_STAMP);
  });

  test('the rate is the recent one, not the average since the start', (t) => {
    let now = 0;
    const io = plainIo();
    const progress = new Progress(io, { quiet: false, records: 'customers', everyMs: 1, now: () => now });
    t.after(() => progress.stop());
    let confirmed = 0;
    for (let second = 1; second <= 100; second++) {
      now = second * 1000;
      confirmed += second <= 60 ? 10 : 100;
      progress.update(figures({ customersRead: confirmed, sent: confirmed, succeeded: confirmed }));
    }
    const last = io.text().trimEnd().split('\n').at(-1)!;
    assert.match(last, / 100\/s \(last 20 s\)$/, last);
  });

  test('an ETA once a total is known, with the share done', (t) => {
    let now = 0;
    const io = plainIo();
    const progress = new Progress(io, { quiet: false, records: 'customers', everyMs: 1, now: () => now });
    t.after(() => progress.stop());
    for (let second = 0; second <= 50; second++) {
      now = second * 1000;
      progress.update(
        figures({ phase: 'sending', customersTotal: 10_000, customersRead: second * 100, sent: second * 100, succeeded: second * 100 }),
      );
    }
    const last = io.text().trimEnd().split('\n').at(-1)!;
    assert.match(last, /customers 5,000 of 10,000 read · 5,000 done \(50%\) · ETA 50s;/, last);
  });

  test('reviews paging while loyalty is held, then the reviewer-only users and finishing', (t) => {
    let now = 0;
    const io = plainIo();
    const progress = new Progress(io, { quiet: false, records: 'customers', reviews: true, everyMs: 1, now: () => now });
    t.after(() => progress.stop());
    const at = (second: number, values: Partial<ProgressFigures>) => {
      now = second * 1000;
      progress.update(figures(values));
      return io.text().trimEnd().split('\n').at(-1)!;
    };
    assert.match(
      at(1, { phase: 'held', reviewPages: 13, reviews: 1230 }),
      /reviews: paging \(1,230 of ~\?, 13 pages\) · loyalty: reading, held until reviews finish; customers read and held, counted once the reviews are complete;/,
    );
    // The pipeline's own reports carry zero review figures: the counts stay.
    assert.match(at(2, {}), /reviews: paging \(1,230 of ~\?, 13 pages\)/);
    assert.match(at(3, { reviewPages: 20, reviews: 2000, reviewsDone: true }), / sending; /);
    assert.match(at(4, { phase: 'reviewers', customersRead: 500 }), / reviewer-only users; reviewer-only users 0 read;/);
    assert.match(at(5, { customersRead: 650 }), /reviewer-only users 150 read;/);
    assert.match(at(6, { phase: 'finishing', customersRead: 700 }), / finishing: waiting for Insider's last answers; /);
  });

  test('a client running at its pace is named as the limit; one below it is not', (t) => {
    let now = 0;
    const counters = newRequestCounters();
    const io = plainIo();
    // The run's own clients: their limiters say the pace (no request is made here).
    const client = (api: 'loyalty' | 'insider', rps: number) =>
      new ApiClient({ api, baseUrl: 'http://127.0.0.1:9', headers: {}, rps, retry: DEFAULT_RETRY_POLICY, timeoutMs: 1000, counters });
    const paced = [client('loyalty', 5), undefined, client('insider', 50)];
    const progress = new Progress(io, { quiet: false, records: 'customers', everyMs: 1, now: () => now, clients: { counters, paced } });
    t.after(() => progress.stop());
    for (let second = 1; second <= 10; second++) {
      now = second * 1000;
      counters.requests.loyalty += 5;
      counters.requests.insider += 2;
      progress.update(figures({}));
    }
    const last = io.text().trimEnd().split('\n').at(-1)!;
    assert.match(last, / · limited by loyalty: 5 req\/s limit$/, last);
  });

  test('--quiet prints nothing', (t) => {
    let now = 0;
    const io = plainIo();
    const progress = new Progress(io, { quiet: true, records: 'customers', everyMs: 1, now: () => now });
    t.after(() => progress.stop());
    for (let second = 1; second <= 20; second++) {
      now = second * 1000;
      progress.update(figures({ sent: second }));
    }
    assert.equal(io.text(), '');
  });
});

describe('the bars at a terminal', () => {
  test('a line printed while the bars are shown appears whole above them, even wider than the terminal', () => {
    const io = ttyIo(60);
    const progress = new Progress(io, { quiet: false, records: 'customers' });
    const reporter = new Reporter(io, { verbose: true });
    try {
      progress.update(figures({ phase: 'sending', customersRead: 120, sent: 100, succeeded: 80 }));
      reporter.verbose('Insider API POST /api/user/v1/upsert → 200 (12 ms)');
      const long = `warning: ${'x'.repeat(90)} end`;
      reporter.warn(long.slice('warning: '.length));
      printAboveProgress(io, 'SIGINT: stopping: finishing requests in flight and saving state (again to exit at once)');
      const screen = screenOf(io.text(), 60);
      const at = screen.indexOf('Insider API POST /api/user/v1/upsert → 200 (12 ms)');
      assert.ok(at >= 0, screen.join('\n'));
      assert.equal(screen[at + 1]! + screen[at + 2]!, long);
      const notice = screen.findIndex((line) => line.startsWith('SIGINT: stopping'));
      assert.ok(notice > at + 2, screen.join('\n'));
      // The rows are redrawn below the lines, never over them.
      assert.equal(screen[notice + 2], 'sending');
      assert.equal(screen[notice + 3], 'customers 120 read');
      assert.match(screen[notice + 4]!, /^users 100 sent · 80 confirmed · 0 failed · rate: measuring$/);
      for (const line of screen) assert.ok(line.length <= 60, line);
      assert.doesNotMatch(io.text(), RAW_PLACEHOLDER);
    } finally {
      progress.stop();
    }
    // Stopped: lines go straight to the stream again.
    const before = io.text().length;
    reporter.info('after the bars');
    assert.equal(io.text().slice(before), 'after the bars\n');
  });

  test('after a resize the rows are cleared below and drawn again within the new width', async () => {
    const io = ttyIo(120);
    const progress = new Progress(io, { quiet: false, records: 'customers', reviews: true });
    try {
      progress.update(figures({ phase: 'held', reviewPages: 12, reviews: 1200, held: 400 }));
      const frames = async (until: () => boolean) => {
        for (let waited = 0; waited < 50 && !until(); waited++) await new Promise((resolve) => io.stderr.once('data', resolve));
        assert.ok(until(), 'no frame came');
      };
      await frames(() => io.text().includes('held until reviews finish'));
      const before = io.text().length;
      Object.assign(io.stderr, { columns: 50 });
      io.stderr.emit('resize');
      await frames(() => io.text().slice(before).includes('\x1b[0J') && io.text().slice(before).includes('users 0 sent'));
      const after = io.text().slice(before);
      assert.ok(after.indexOf('\x1b[0J') < after.indexOf('reviews: paging'), JSON.stringify(after));
      const rows = screenOf(io.text(), 50).slice(-3);
      assert.match(rows[0]!, /^reviews: paging \(1,200 of ~\?, 12 pages\) · loyalt…$/);
      for (const row of rows) assert.ok(row.length < 50, row);
    } finally {
      progress.stop();
    }
  });
});

describe('a closed stderr', () => {
  test('the Reporter swallows the EPIPE and writes nothing more', async () => {
    let writes = 0;
    const stderr = new Writable({
      write(_chunk, _encoding, callback) {
        writes++;
        callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    const io: Io = { stdout: new PassThrough(), stderr, stderrIsTty: false, env: {}, cwd: '.' };
    const reporter = new Reporter(io);
    reporter.info('first');
    await new Promise((resolve) => setImmediate(resolve));
    reporter.info('second');
    reporter.error('third');
    assert.equal(writes, 1);
  });
});

const HAS_SCRIPT = (() => {
  try {
    execFileSync('script', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('a sandbox backfill', () => {
  let sandbox: Sandbox;
  const dirs: string[] = [];
  before(async () => {
    sandbox = await startSandbox({ customers: 3000, reviews: 6000, seed: 7, latencyMs: 20 });
  });
  after(async () => {
    await sandbox.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  const cwd = () => {
    const dir = workdir();
    dirs.push(dir);
    return dir;
  };

  test('in a pseudo-terminal: every phase, a rate, an ETA, whole --verbose lines, no placeholder', {
    skip: !HAS_SCRIPT && 'no script(1)',
  }, async () => {
    const dir = cwd();
    const phases = new Set<string>();
    let etaSeen = false;
    let rateSeen = false;
    const live = new Screen();
    const run = await runInPty(
      ['backfill', '--loyalty-endpoint', 'all', '--loyalty-rps', '5', '--batch-size', '100', '--concurrency', '1', '--verbose', '--fresh'],
      {
        cwd: dir,
        env: { ...process.env, ...sandbox.env, YOTPO_INSIDER_STATE_DIR: `${dir}/.state`, NODE_OPTIONS: '--no-warnings' },
        onOutput: (chunk) => {
          const [phase = '', records = '', users = ''] = live.feed(chunk).lines().slice(-3);
          for (const name of [
            'reviews: paging',
            'loyalty: reading, held until reviews finish',
            'sending',
            'reviewer-only users',
            'finishing',
          ]) {
            if (phase.includes(name)) phases.add(name);
          }
          etaSeen ||= /^customers [█░]{24} [\d,]+ of 3,000 read · [\d,]+ done \(\d+%\) · ETA \d+s$/.test(records);
          rateSeen ||=
            /^users [\d,]+ sent · [\d,]+ confirmed · 0 failed · [\d,]+\/s \(last 20 s\)( · limited by loyalty: 5 req\/s.*)?$/.test(users);
        },
      },
    );
    assert.equal(run.code, 0, run.output);
    assert.ok(etaSeen, 'an ETA');
    assert.ok(rateSeen, 'a rate');
    const screen = screenOf(run.output);
    // The last frame, drawn as the bars stop, stands just above the summary.
    const end = screen.findIndex((line) => line.startsWith('backfill finished in'));
    assert.ok(end >= 3, screen.join('\n'));
    for (const name of ['reviews: paging', 'loyalty: reading, held until reviews finish', 'sending', 'reviewer-only users', 'finishing']) {
      if (screen[end - 3]!.includes(name)) phases.add(name);
    }
    assert.deepEqual([...phases].sort(), [
      'finishing',
      'loyalty: reading, held until reviews finish',
      'reviewer-only users',
      'reviews: paging',
      'sending',
    ]);
    const requestLines = screen.filter((line) => line.includes(' → '));
    assert.ok(requestLines.length >= 30, screen.join('\n'));
    for (const line of requestLines)
      assert.match(line, /^(Yotpo Loyalty API|Yotpo Reviews API|Insider API) (GET|POST) \/\S+ → \d{3} \(\d+ ms\)$/);
    assert.doesNotMatch(run.output, RAW_PLACEHOLDER);
  });

  test('a closed stderr: the run goes on without messages and delivers everything', async () => {
    const dir = cwd();
    const child = spawn(
      process.execPath,
      ['--import', TSX, ENTRY, 'backfill', '--loyalty-rps', '0', '--no-reviews', '--insider-rps', '0', '--json', '--fresh'],
      {
        cwd: dir,
        env: { ...process.env, ...sandbox.env, YOTPO_INSIDER_STATE_DIR: `${dir}/.state` },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child.stderr.destroy();
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 0, stdout);
    const summary = JSON.parse(stdout) as { users: { succeeded: number; failed: number } };
    assert.ok(summary.users.succeeded > 2900);
    assert.equal(summary.users.failed, 0);
  });
});

describe('Ctrl-C at a terminal', () => {
  let sandbox: Sandbox;
  let dir: string;
  let interrupted: Promise<PtyRun> | undefined;
  before(async () => {
    // The first upsert is stored and never answered: the run is mid-send when it is interrupted.
    sandbox = await startSandbox({ customers: 500, reviews: 0, seed: 3, afterStore: { mode: 'hold', count: 1 } });
    dir = workdir();
  });
  after(async () => {
    sandbox.releaseHeld();
    await sandbox.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Ctrl-C once the first batch is held, and again once the stopping notice is out. */
  const interrupt = () =>
    (interrupted ??= (() => {
      let typed = 0;
      let output = '';
      const stored = sandbox.waitForStored(1);
      return runInPty(
        ['backfill', '--no-reviews', '--concurrency', '1', '--batch-size', '100', '--insider-rps', '0', '--loyalty-rps', '0', '--fresh'],
        {
          cwd: dir,
          env: { ...process.env, ...sandbox.env, YOTPO_INSIDER_STATE_DIR: `${dir}/.state`, NODE_OPTIONS: '--no-warnings' },
          onOutput: (chunk, type) => {
            output += chunk;
            if (typed === 0 && output.includes('users ')) {
              typed = 1;
              void stored.then(() => type('\x03'));
            } else if (typed === 1 && output.includes('SIGINT: stopping')) {
              typed = 2;
              type('\x03');
            }
          },
        },
      );
    })());

  test('a second Ctrl-C exits at once (130) and gives the terminal its cursor back', { skip: !HAS_SCRIPT && 'no script(1)' }, async () => {
    const run = await interrupt();
    assert.equal(run.code, 130, run.output);
    const hidden = run.output.lastIndexOf('\x1b[?25l');
    assert.ok(hidden >= 0, 'the bars hid the cursor');
    assert.ok(run.output.indexOf('\x1b[?25h', hidden) > hidden, 'the cursor is shown again');
  });

  test('the stopping notice appears whole, above the bars', {
    skip: !HAS_SCRIPT && 'no script(1)',
  }, async () => {
    const screen = screenOf((await interrupt()).output);
    assert.ok(
      screen.includes('SIGINT: stopping: finishing requests in flight and saving state (again to exit at once)'),
      screen.join('\n'),
    );
  });
});
