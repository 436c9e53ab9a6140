// The CLI from outside (SPEC §1, §2, §5), in-process through main(argv, io): usage errors,
// configuration from the environment and .env, --json, mapping, doctor, --emails, secrets and
// non-TTY output.

import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { main } from '../src/cli.js';
import { customerAt, SANDBOX_CREDENTIALS, startSandbox, type Sandbox } from '../src/sandbox/index.js';
import { captureIo, expectedAggregates, normalised, runCli, sandboxReviews, workdir } from './helpers.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/events.jsonl', import.meta.url));

const CREDENTIAL_VARIABLES = {
  loyalty: ['YOTPO_LOYALTY_API_KEY', 'YOTPO_LOYALTY_GUID'],
  reviews: ['YOTPO_APP_KEY', 'YOTPO_API_SECRET'],
  insider: ['INSIDER_PARTNER_NAME', 'INSIDER_API_KEY'],
} as const;
const ALL_CREDENTIALS = Object.values(CREDENTIAL_VARIABLES).flat();

/** Flags that lift every rate limit and shorten backoff (the CLI spelling of helpers' FAST). */
const FAST_FLAGS = ['--loyalty-rps', '0', '--reviews-rps', '0', '--insider-rps', '0', '--retry-base-ms', '5', '--max-retry-after', '0.05'];
const REPLAY_FAST_FLAGS = ['--insider-rps', '0', '--retry-base-ms', '5', '--max-retry-after', '0.05'];

interface Run {
  code: number;
  out: string;
  err: string;
  cwd: string;
}

async function cli(args: string[], env: Record<string, string>, cwd = workdir()): Promise<Run> {
  const io = captureIo(env, cwd);
  const code = await main(['node', 'yotpo-insider', ...args], io);
  return { code, out: io.out(), err: io.err(), cwd };
}

function fixtureDir(): string {
  const cwd = workdir();
  copyFileSync(FIXTURE, join(cwd, 'events.jsonl'));
  return cwd;
}

const envFile = (env: Record<string, string>) =>
  Object.entries(env)
    .map(([name, value]) => `${name}=${value}`)
    .join('\n');

function allFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? allFiles(path) : [path];
  });
}

// ---------------------------------------------------------------------------------------------

describe('usage errors exit 2 with a clear message', () => {
  const env = {
    YOTPO_LOYALTY_URL: 'http://127.0.0.1:9',
    YOTPO_API_URL: 'http://127.0.0.1:9',
    INSIDER_API_URL: 'http://127.0.0.1:9',
    YOTPO_LOYALTY_API_KEY: 'k-loyalty-0001',
    YOTPO_LOYALTY_GUID: 'g-loyalty-0001',
    YOTPO_APP_KEY: 'app-key-0001',
    YOTPO_API_SECRET: 's-reviews-0001',
    INSIDER_PARTNER_NAME: 'usage-partner-0001',
    INSIDER_API_KEY: 'k-insider-0001',
  };

  const cases: [string, string[], RegExp][] = [
    ['an unknown flag', ['backfill', '--bogus'], /unknown option '--bogus'/],
    ['an unknown command', ['frobnicate'], /unknown command 'frobnicate'/],
    ['--batch-size 0', ['backfill', '--batch-size', '0'], /--batch-size/],
    ['--batch-size 5000', ['backfill', '--batch-size', '5000'], /--batch-size/],
    ['--batch-size abc', ['replay', 'x.jsonl', '--batch-size', 'abc'], /--batch-size/],
    ['--concurrency 0', ['backfill', '--concurrency', '0'], /--concurrency/],
    ['--loyalty-endpoint other', ['backfill', '--loyalty-endpoint', 'other'], /--loyalty-endpoint/],
    ['replay without a file', ['replay'], /missing required argument/],
  ];
  for (const [label, args, message] of cases) {
    test(label, async () => {
      const run = await cli(args, env);
      assert.equal(run.code, 2, run.err);
      assert.match(run.err, message);
      assert.equal(run.out, '', 'nothing on stdout');
    });
  }

  test('retry missing.jsonl and replay missing.jsonl name the path', async () => {
    for (const args of [
      ['retry', 'missing.jsonl'],
      ['replay', 'missing.jsonl'],
      ['replay', 'missing.jsonl', '--dry-run'],
    ]) {
      const run = await cli(args, env);
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.err}`);
      assert.match(run.err, /missing\.jsonl/, args.join(' '));
      assert.equal(run.out, '');
      assert.ok(!existsSync(join(run.cwd, 'missing.jsonl.rejects.jsonl')), 'no rejects file for an unreadable input');
    }
  });

  test('--only naming an unknown event', async () => {
    const run = await cli(['replay', 'events.jsonl', '--only', 'points_earned,no_such_event'], env, fixtureDir());
    assert.equal(run.code, 2, run.err);
    assert.match(run.err, /no_such_event/);
  });

  test('a malformed .env in the working directory; the value on a bad line is not shown', async () => {
    const cwd = workdir();
    writeFileSync(join(cwd, '.env'), `# credentials\nYOTPO_LOYALTY_API_KEY=abc\nTHIS IS NOT VALID\n`);
    const run = await cli(['backfill'], {}, cwd);
    assert.equal(run.code, 2, run.err);
    assert.match(run.err, /\.env/);
    assert.match(run.err, /line 3/);

    const leaky = workdir();
    writeFileSync(join(leaky, '.env'), `YOTPO_API_SECRET sbx-do-not-print-7731\n`);
    const second = await cli(['doctor'], {}, leaky);
    assert.equal(second.code, 2, second.err);
    assert.match(second.err, /\.env/);
    assert.doesNotMatch(second.err + second.out, /sbx-do-not-print-7731/);
  });

  const missing: [string, string[], Record<string, string>, string[]][] = [
    ['backfill with an empty environment names all six', ['backfill'], {}, ALL_CREDENTIALS],
    [
      'backfill --no-reviews names only the loyalty and Insider ones',
      ['backfill', '--no-reviews'],
      {},
      [...CREDENTIAL_VARIABLES.loyalty, ...CREDENTIAL_VARIABLES.insider],
    ],
    [
      'backfill --no-loyalty names only the reviews and Insider ones',
      ['backfill', '--no-loyalty'],
      {},
      [...CREDENTIAL_VARIABLES.reviews, ...CREDENTIAL_VARIABLES.insider],
    ],
    [
      'backfill --dry-run does not require INSIDER_*',
      ['backfill', '--dry-run'],
      {},
      [...CREDENTIAL_VARIABLES.loyalty, ...CREDENTIAL_VARIABLES.reviews],
    ],
    ['replay (live) needs the Insider ones only', ['replay', 'events.jsonl'], {}, [...CREDENTIAL_VARIABLES.insider]],
    ['retry needs the Insider ones only', ['retry', 'failed.jsonl'], {}, [...CREDENTIAL_VARIABLES.insider]],
    [
      'one missing variable is named alone',
      ['backfill'],
      Object.fromEntries(Object.entries(env).filter(([name]) => name !== 'INSIDER_API_KEY')),
      ['INSIDER_API_KEY'],
    ],
  ];
  for (const [label, args, runEnv, expected] of missing) {
    test(`missing credentials: ${label}`, async () => {
      const cwd = fixtureDir();
      writeFileSync(
        join(cwd, 'failed.jsonl'),
        `${JSON.stringify({ user: { identifiers: { email: 'a@example.com' }, attributes: { email: 'a@example.com' } } })}\n`,
      );
      const run = await cli(args, runEnv, cwd);
      assert.equal(run.code, 2, run.err);
      for (const name of ALL_CREDENTIALS) {
        if (expected.includes(name)) assert.ok(run.err.includes(name), `${name} named in: ${run.err}`);
        else assert.ok(!new RegExp(`\\b${name}\\b`).test(run.err), `${name} not named in: ${run.err}`);
      }
      assert.equal(run.out, '');
    });
  }
});

// ---------------------------------------------------------------------------------------------

describe('against the sandbox', () => {
  const SEED = 4;
  const CUSTOMERS = 60;
  const REVIEWS = 120;
  let sandbox: Sandbox;
  before(async () => {
    sandbox = await startSandbox({ customers: CUSTOMERS, reviews: REVIEWS, seed: SEED });
  });
  after(() => sandbox.close());

  test('.env in the working directory supplies credentials; the process environment wins over it', async () => {
    const cwd = workdir();
    // Comments, `export` and quotes, as operators write them.
    const lines = Object.entries(sandbox.env).map(([name, value], i) => (i % 3 === 0 ? `export ${name}="${value}"` : `${name}=${value}`));
    writeFileSync(join(cwd, '.env'), `# sandbox\n${lines.join('\n')}\n`);
    const fromFile = await cli(['doctor'], {}, cwd);
    assert.equal(fromFile.code, 0, fromFile.err);
    assert.equal((fromFile.err.match(/✔/g) ?? []).length, 3, fromFile.err);

    writeFileSync(join(cwd, '.env'), envFile({ ...sandbox.env, INSIDER_API_KEY: 'wrong-from-dotenv-1234' }));
    const envWins = await cli(['doctor'], { INSIDER_API_KEY: sandbox.env.INSIDER_API_KEY! }, cwd);
    assert.equal(envWins.code, 0, envWins.err);

    writeFileSync(join(cwd, '.env'), envFile(sandbox.env));
    const envWinsWrong = await cli(['doctor'], { INSIDER_API_KEY: 'wrong-from-env-5678' }, cwd);
    assert.notEqual(envWinsWrong.code, 0);
    assert.match(envWinsWrong.err, /Insider API: credentials rejected/);
  });

  const SUMMARY_KEYS = {
    users: ['read', 'sent', 'succeeded', 'failed', 'skipped', 'uncertain'],
    events: ['read', 'sent', 'succeeded', 'failed', 'skipped', 'rejected', 'uncertain'],
    requests: ['yotpo', 'insider', 'retries'],
  };
  function assertSummary(out: string, command: string): Record<string, any> {
    assert.ok(out.endsWith('\n'), 'one line, newline-terminated');
    assert.equal(out.trimEnd().split('\n').length, 1, `exactly one line on stdout: ${out.slice(0, 300)}`);
    const summary = JSON.parse(out);
    assert.equal(typeof summary, 'object');
    assert.equal(summary.command, command);
    assert.equal(typeof summary.dry_run, 'boolean');
    for (const [group, keys] of Object.entries(SUMMARY_KEYS)) {
      for (const key of keys) assert.equal(typeof summary[group]?.[key], 'number', `${group}.${key}`);
    }
    assert.equal(typeof summary.duration_ms, 'number');
    assert.match(summary.version, /^\d+\.\d+\.\d+/);
    assert.equal(typeof summary.resent_after_ambiguous, 'number');
    for (const key of ['failed_file', 'rejects_file', 'state_file', 'state_dir', 'run_id']) {
      assert.ok(key in summary, key);
      assert.ok(summary[key] === null || typeof summary[key] === 'string', key);
    }
    return summary;
  }

  test('--json: stdout is exactly one JSON object with the SPEC §5 keys', async () => {
    sandbox.reset();
    const replay = await cli(['replay', 'events.jsonl', '--json', ...REPLAY_FAST_FLAGS], sandbox.env, fixtureDir());
    assert.equal(replay.code, 1, replay.err);
    const r = assertSummary(replay.out, 'replay');
    assert.equal(r.dry_run, false);
    assert.equal(r.events.sent, 23);
    assert.equal(r.events.succeeded, 23);
    assert.equal(r.events.rejected, 6);
    assert.equal(r.requests.insider, sandbox.requests().filter((q) => q.api === 'insider').length);
    assert.ok(r.rejects_file && existsSync(r.rejects_file));
    assert.ok(r.state_file && existsSync(r.state_file));
    assert.equal(r.state_file, join(r.state_dir, 'ledger.log'), 'a replay writes the ledger of its account folder');
    assert.ok(r.run_id, 'a live run has a run id');
    assert.equal(r.failed_file, null);

    sandbox.reset();
    const backfill = await cli(['backfill', '--json', '--no-reviews', '--limit', '30', ...FAST_FLAGS], sandbox.env);
    assert.equal(backfill.code, 0, backfill.err);
    const b = assertSummary(backfill.out, 'backfill');
    assert.equal(b.users.read, 30);
    assert.equal(b.users.succeeded, sandbox.received().length);
    assert.equal(b.requests.yotpo, sandbox.requests().filter((q) => q.api === 'loyalty').length);

    const dry = await cli(['backfill', '--json', '--dry-run', '--no-reviews', '--limit', '10', ...FAST_FLAGS], sandbox.env);
    const d = assertSummary(dry.out, 'backfill');
    assert.equal(d.dry_run, true);
    assert.equal(d.run_id, null, 'a dry run records no run');
    assert.equal(d.users.succeeded, 0);
    assert.ok(d.users.sent > 0);

    // A run that stops still prints one object.
    const stopped = await cli(['backfill', '--json', '--no-reviews', '--limit', '10', ...FAST_FLAGS], {
      ...sandbox.env,
      INSIDER_API_KEY: 'wrong-key-0000',
    });
    assert.equal(stopped.code, 3);
    assertSummary(stopped.out, 'backfill');
  });

  test('doctor: ✔ for each API; a wrong Insider key names the API and its variables; a closed sandbox is unreachable', async () => {
    sandbox.reset();
    const ok = await cli(['doctor'], sandbox.env);
    assert.equal(ok.code, 0, ok.err);
    const okLines = ok.err.split('\n').filter((line) => line.includes('✔'));
    assert.equal(okLines.length, 3, ok.err);
    for (const api of ['Loyalty', 'Reviews', 'Insider'])
      assert.ok(
        okLines.some((line) => line.includes(api)),
        api,
      );
    assert.deepEqual(readdirSync(ok.cwd), [], 'doctor writes nothing');
    assert.equal(sandbox.received().length, 0, 'nothing written to Insider');

    const wrong = await cli(['doctor'], { ...sandbox.env, INSIDER_API_KEY: 'wrong-insider-key-9999' });
    assert.notEqual(wrong.code, 0);
    const insiderLine = wrong.err.split('\n').find((line) => line.includes('Insider API'));
    assert.ok(insiderLine, wrong.err);
    assert.doesNotMatch(insiderLine, /✔/);
    assert.match(insiderLine, /INSIDER_API_KEY/);
    assert.match(insiderLine, /INSIDER_PARTNER_NAME/);
    assert.equal(wrong.err.split('\n').filter((line) => line.includes('✔')).length, 2, 'the other two are fine');
    assert.doesNotMatch(wrong.err + wrong.out, /wrong-insider-key-9999/);

    const closed = await startSandbox({ customers: 1, reviews: 1 });
    const env = closed.env;
    await closed.close();
    const down = await cli(['doctor'], env);
    assert.notEqual(down.code, 0);
    assert.equal((down.err.match(/unreachable/g) ?? []).length >= 3, true, down.err);
  });

  test('backfill --emails <file>: only those customers, looked up one by one; unknown ones skipped as not a loyalty member', async () => {
    const valid = Array.from({ length: CUSTOMERS }, (_, i) => i)
      .map((i) => normalised(customerAt(SEED, i).email))
      .filter((email): email is string => Boolean(email));
    const chosen = valid.slice(3, 8);
    const unknown = ['nobody.here@example.com', `customer.${CUSTOMERS + 500}@example.com`];

    // One email per line (case and spaces as people paste them).
    sandbox.reset();
    const cwd = workdir();
    writeFileSync(join(cwd, 'list.txt'), [`  ${chosen[0]!.toUpperCase()} `, ...chosen.slice(1), '', ...unknown].join('\n'));
    const list = await cli(['backfill', '--emails', 'list.txt', '--no-reviews', '--json', ...FAST_FLAGS], sandbox.env, cwd);
    assert.equal(list.code, 0, list.err);
    const summary = JSON.parse(list.out);
    assert.deepEqual(
      sandbox
        .received()
        .map((u) => u.identifiers?.email)
        .sort(),
      [...chosen].sort(),
    );
    assert.equal(summary.users.sent, chosen.length);
    assert.equal(summary.users.skipped, unknown.length);
    assert.deepEqual(summary.skipped_reasons, { 'not a loyalty member': unknown.length });
    const loyalty = sandbox.requests().filter((r) => r.api === 'loyalty');
    assert.equal(loyalty.length, chosen.length + unknown.length, 'one look-up per email');
    for (const request of loyalty) assert.match(request.path, /^\/api\/v2\/customers\?(?=.*customer_email=)(?=.*with_referral_code=true)/);
    const asked = loyalty.map((r) => new URL(r.path, 'http://x').searchParams.get('customer_email')).sort();
    assert.deepEqual(asked, [...chosen, ...unknown].sort());

    // A CSV with an `email` column (not the first), with reviews: still only those customers.
    sandbox.reset();
    const csvDir = workdir();
    const csv = ['id,email,name', ...chosen.map((email, i) => `${i},"${email}","Doe, J."`), `99,${unknown[0]},"Nobody"`].join('\n');
    writeFileSync(join(csvDir, 'list.csv'), `${csv}\n`);
    const fromCsv = await cli(['backfill', '--emails', 'list.csv', '--json', ...FAST_FLAGS], sandbox.env, csvDir);
    assert.equal(fromCsv.code, 0, fromCsv.err);
    const csvSummary = JSON.parse(fromCsv.out);
    assert.deepEqual(
      sandbox
        .received()
        .map((u) => u.identifiers?.email)
        .sort(),
      [...chosen].sort(),
      'no reviewer-only users',
    );
    assert.deepEqual(csvSummary.skipped_reasons, { 'not a loyalty member': 1 });
    const aggregates = expectedAggregates(sandboxReviews(SEED, REVIEWS, CUSTOMERS));
    for (const user of sandbox.received()) {
      const email = String(user.identifiers?.email);
      assert.equal(user.attributes?.custom?.yotpo_total_reviews, aggregates.get(email)?.yotpo_total_reviews ?? 0, `${email} review count`);
    }
    assert.ok(
      sandbox
        .requests()
        .filter((r) => r.api === 'loyalty')
        .every((r) => r.path.startsWith('/api/v2/customers?')),
    );
  });

  test('no secret in stdout, stderr or any file, through 5xx, 401, echoing error bodies and --verbose', async () => {
    const wrong = {
      YOTPO_LOYALTY_API_KEY: 'wrong-loyalty-key-Hn4u29Wd',
      YOTPO_API_SECRET: 'wrong-reviews-secret-Pq7s1Vb3',
      INSIDER_API_KEY: 'wrong-insider-key-Zq81xK7pL',
    };
    const secrets = [
      SANDBOX_CREDENTIALS.loyaltyApiKey,
      SANDBOX_CREDENTIALS.loyaltyGuid,
      // The app key is the store's public id (it is in the Reviews URL path and the storefront widget): not a secret.
      SANDBOX_CREDENTIALS.apiSecret,
      SANDBOX_CREDENTIALS.insiderApiKey,
      ...Object.values(wrong),
    ];
    const proxy = await startEchoProxy(sandbox.url);
    const cwd = fixtureDir();
    const outputs: string[] = [];
    const run = async (args: string[], env: Record<string, string>) => {
      const result = await cli(args, env, cwd);
      outputs.push(`$ ${args.join(' ')}\n${result.out}\n${result.err}`);
      return result;
    };
    const common = ['--verbose', '--max-attempts', '2', ...FAST_FLAGS];
    const replayCommon = ['--verbose', '--max-attempts', '2', ...REPLAY_FAST_FLAGS];
    const backfillFiles = ['--out', 'audit.csv', '--failed', 'failed.jsonl', '--limit', '40'];
    try {
      // 5xx from every API.
      sandbox.setFaults({ failRate: 1 });
      assert.equal((await run(['backfill', ...common, ...backfillFiles, '--json'], sandbox.env)).code, 3);
      // Event uploads answered 5xx are ambiguous: uncertain (exit 1), or a stop once retries run out (exit 3).
      assert.notEqual(
        (await run(['replay', 'events.jsonl', ...replayCommon, '--json', '--failed', 'replay-failed.jsonl'], sandbox.env)).code,
        0,
      );
      assert.notEqual((await run(['doctor', '--verbose'], sandbox.env)).code, 0);
      assert.notEqual((await run(['doctor', '--json'], sandbox.env)).code, 0);
      sandbox.setFaults({ failRate: 0 });

      // 401s from wrong keys, one API at a time.
      for (const [name, value] of Object.entries(wrong)) {
        const env = { ...sandbox.env, [name]: value };
        assert.equal((await run(['backfill', ...common, ...backfillFiles, '--json'], env)).code, 3, name);
        assert.notEqual((await run(['doctor', '--verbose'], env)).code, 0, name);
      }
      assert.equal(
        (await run(['replay', 'events.jsonl', ...replayCommon, '--force'], { ...sandbox.env, INSIDER_API_KEY: wrong.INSIDER_API_KEY }))
          .code,
        3,
      );

      // Per-user failures: the failed file and the CSV get error texts.
      sandbox.setFaults({ rejectRate: 1 });
      assert.equal((await run(['backfill', ...common, ...backfillFiles, '--no-reviews', '--fresh'], sandbox.env)).code, 1);
      assert.equal(
        (
          await run(
            ['replay', 'events.jsonl', ...replayCommon, '--force', '--out', 'replay.csv', '--failed', 'replay-failed.jsonl'],
            sandbox.env,
          )
        ).code,
        1,
      );
      assert.equal(
        (await run(['retry', 'failed.jsonl', ...replayCommon, '--failed', 'retry-failed.jsonl', '--out', 'retry.csv'], sandbox.env)).code,
        1,
      );
      sandbox.setFaults({ rejectRate: 0 });

      // APIs whose error bodies echo the request URL (with its utoken) or the request headers.
      const viaProxy = { ...sandbox.env, YOTPO_LOYALTY_URL: proxy.url, YOTPO_API_URL: proxy.url, INSIDER_API_URL: proxy.url };
      for (const mode of ['reviews', 'loyalty', 'insider'] as const) {
        proxy.mode = mode;
        const result = await run(['backfill', ...common, ...backfillFiles, '--fresh', '--json'], viaProxy);
        assert.equal(result.code, 3, `${mode}: ${result.err}`);
      }
      proxy.mode = 'insider';
      // An event upload answered 5xx is ambiguous: its events are uncertain (exit 1), never sent twice.
      assert.equal((await run(['replay', 'events.jsonl', ...replayCommon, '--force', '--json'], viaProxy)).code, 1);
      proxy.mode = 'reviews';
      await run(['doctor', '--verbose', '--json'], viaProxy);

      // The same in fresh processes (the in-process secret registry is shared across runs).
      {
        const spawnEnv = { PATH: process.env.PATH ?? '', ...viaProxy };
        for (const mode of ['reviews', 'loyalty', 'insider'] as const) {
          proxy.mode = mode;
          const result = await runCli(['backfill', ...common, '--limit', '20', '--fresh', '--failed', `spawned-${mode}.jsonl`], {
            cwd,
            env: spawnEnv,
          });
          outputs.push(`$ (spawned ${mode}) backfill\n${result.stdout}\n${result.stderr}`);
          assert.equal(result.code, 3, `spawned ${mode}: ${result.stderr}`);
        }
        const doctor = await runCli(['doctor', '--verbose'], {
          cwd,
          env: { PATH: process.env.PATH ?? '', ...sandbox.env, INSIDER_API_KEY: wrong.INSIDER_API_KEY },
        });
        outputs.push(`$ (spawned) doctor\n${doctor.stdout}\n${doctor.stderr}`);
        assert.notEqual(doctor.code, 0);
      }
    } finally {
      sandbox.setFaults({ failRate: 0, rejectRate: 0 });
      await proxy.close();
    }
    assert.ok(proxy.tokens.length > 0, 'the proxy saw Reviews tokens issued');
    assert.ok(proxy.echoed.reviews > 0 && proxy.echoed.loyalty > 0 && proxy.echoed.insider > 0, JSON.stringify(proxy.echoed));
    assert.ok(existsSync(join(cwd, 'failed.jsonl')) && existsSync(join(cwd, 'audit.csv')) && existsSync(join(cwd, 'replay.csv')));
    assert.ok(readdirSync(join(cwd, '.state')).length > 0, 'the state store was written (and is searched too)');

    const haystacks: [string, string][] = [
      ['output', outputs.join('\n')],
      ...allFiles(cwd)
        .filter((path) => !path.endsWith('events.jsonl'))
        .map((path): [string, string] => [path, readFileSync(path, 'utf8')]),
    ];
    assert.ok(haystacks.length >= 8, haystacks.map(([name]) => name).join(', '));
    for (const [where, text] of haystacks) {
      for (const secret of [...secrets, ...proxy.tokens])
        assert.ok(
          !text.includes(secret),
          `${secret} found in ${where}: ${text.slice(Math.max(0, text.indexOf(secret) - 600), text.indexOf(secret) + 100)}`,
        );
      const utoken = /utoken=(?!\[REDACTED\])[^&\s"']*/i.exec(text);
      assert.equal(utoken, null, `${utoken?.[0]} in ${where}`);
    }
  });

  test('the Insider partner name is an identifier: shown, while the token in an echoed header is redacted', async () => {
    const proxy = await startEchoProxy(sandbox.url);
    proxy.mode = 'insider';
    const cwd = workdir();
    let result;
    try {
      result = await cli(
        [
          'backfill',
          '--no-reviews',
          '--limit',
          '5',
          '--max-attempts',
          '1',
          '--failed',
          'failed.jsonl',
          '--verbose',
          '--json',
          ...FAST_FLAGS,
        ],
        { ...sandbox.env, INSIDER_API_URL: proxy.url },
        cwd,
      );
    } finally {
      await proxy.close();
    }
    assert.equal(result.code, 3, result.err);
    assert.ok(proxy.echoed.insider > 0);
    assert.match(result.err, /x-request-token[^,]*\[REDACTED\]/, 'the echoed headers are in the message');
    const summary = JSON.parse(result.out);
    assert.match(
      summary.state_dir,
      new RegExp(`${SANDBOX_CREDENTIALS.insiderPartner.toLowerCase()}@`),
      'the account folder is named by the partner',
    );
    assert.match(
      result.err,
      new RegExp(`x-partner-name[^,]*${SANDBOX_CREDENTIALS.insiderPartner.toLowerCase()}`, 'i'),
      'the partner name is not masked',
    );
    const texts = [result.out, result.err, ...allFiles(cwd).map((path) => readFileSync(path, 'utf8'))];
    for (const text of texts) assert.ok(!text.includes(SANDBOX_CREDENTIALS.insiderApiKey), 'INSIDER_API_KEY leaks');
  });

  test('a non-TTY run writes no ANSI escape codes to stderr', async () => {
    sandbox.reset();
    const backfill = await cli(['backfill', '--limit', '30', ...FAST_FLAGS], sandbox.env);
    assert.equal(backfill.code, 0, backfill.err);
    assert.ok(backfill.err.length > 0, 'the summary is on stderr');
    assert.ok(!backfill.err.includes('\x1b['), JSON.stringify(backfill.err));
    const replay = await cli(['replay', 'events.jsonl', ...REPLAY_FAST_FLAGS], sandbox.env, fixtureDir());
    assert.ok(!replay.err.includes('\x1b['), JSON.stringify(replay.err));
    const doctor = await cli(['doctor'], sandbox.env);
    assert.ok(!doctor.err.includes('\x1b['), JSON.stringify(doctor.err));
  });

  test('a non-TTY spawned run (stderr piped) writes no ANSI escape codes', async () => {
    sandbox.reset();
    const cwd = fixtureDir();
    const { code, stdout, stderr } = await runCli(['replay', 'events.jsonl', ...REPLAY_FAST_FLAGS], {
      cwd,
      env: { PATH: process.env.PATH ?? '', ...sandbox.env },
    });
    assert.equal(code, 1, stderr);
    assert.match(stderr, /replay finished/);
    assert.ok(!stderr.includes('\x1b['), JSON.stringify(stderr));
    assert.equal(stdout, '', 'stdout carries only data');
  });
});

// ---------------------------------------------------------------------------------------------

interface EchoProxy {
  url: string;
  mode: 'reviews' | 'loyalty' | 'insider';
  tokens: string[];
  echoed: Record<'reviews' | 'loyalty' | 'insider', number>;
  close(): Promise<void>;
}

/**
 * A real HTTP server in front of the sandbox that forwards everything, except that one API (the
 * mode) answers 5xx with an error body echoing the request URL and headers, as some gateways do.
 * It records the Reviews access tokens the sandbox issues.
 */
async function startEchoProxy(target: string): Promise<EchoProxy> {
  const state: EchoProxy = {
    url: '',
    mode: 'reviews',
    tokens: [],
    echoed: { reviews: 0, loyalty: 0, insider: 0 },
    close: async () => undefined,
  };
  const server: Server = createServer((req, res) => {
    const url = req.url ?? '/';
    const api = url.startsWith('/api/v2/')
      ? 'loyalty'
      : url.startsWith('/api/user/')
        ? 'insider'
        : url.startsWith('/v1/apps/')
          ? 'reviews'
          : undefined;
    if (api && api === state.mode) {
      state.echoed[api]++;
      req.resume();
      req.on('end', () => {
        res.writeHead(api === 'insider' ? 502 : 500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: `internal error while serving ${req.method} ${url}`, request_headers: req.headers }));
      });
      return;
    }
    const upstream = request(`${target}${url}`, { method: req.method, headers: req.headers }, (answer) => {
      const chunks: Buffer[] = [];
      answer.on('data', (chunk: Buffer) => chunks.push(chunk));
      answer.on('end', () => {
        const body = Buffer.concat(chunks);
        if (url.startsWith('/oauth/token')) {
          try {
            const token = JSON.parse(body.toString('utf8')).access_token;
            if (typeof token === 'string') state.tokens.push(token);
          } catch {
            // not JSON: nothing to record
          }
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        res.end(body);
      });
    });
    upstream.on('error', () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return state;
}
