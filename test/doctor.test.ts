// `yotpo-insider doctor` over the sandbox (SPEC §3): ✔/✘ per configured API with the fix, the
// panel schema check, exit codes 0/1/2/3, --json, and that it writes nothing anywhere.

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { PROBE_EMAIL, runDoctor, type DoctorReport } from '../src/commands/doctor.js';
import { METADATA_PATH } from '../src/insider/metadata.js';
import { PROFILE_PATH } from '../src/insider/profile.js';
import { UPSERT_PATH } from '../src/insider/upsert.js';
import type { Io } from '../src/pipeline/report.js';
import { startSandbox, type Sandbox } from '../src/sandbox/index.js';

const INSIDER_VARIABLES = ['INSIDER_PARTNER_NAME', 'INSIDER_API_KEY', 'INSIDER_API_URL'];

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** An empty working folder (so no .env is read), checked to be still empty after each run. */
function emptyDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'yotpo-insider-doctor-'));
  dirs.push(dir);
  return dir;
}

interface Run {
  code: number;
  out: string;
  err: string;
  report: DoctorReport;
}

async function doctor(env: Record<string, string>, json = false): Promise<Run> {
  let out = '';
  let err = '';
  const sink = (append: (text: string) => void) =>
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        append(chunk.toString('utf8'));
        done();
      },
    });
  const cwd = emptyDir();
  const io: Io = { stdout: sink((t) => (out += t)), stderr: sink((t) => (err += t)), stderrIsTty: false, env, cwd };
  const { report, exitCode } = await runDoctor({ json }, io);
  assert.deepEqual(readdirSync(cwd), [], 'doctor writes no file');
  return { code: exitCode, out, err, report };
}

const only = (env: Record<string, string>, names: readonly string[]) =>
  Object.fromEntries(Object.entries(env).filter(([name]) => names.includes(name)));

function assertNothingUploaded(sandbox: Sandbox): void {
  assert.equal(
    sandbox.requests().filter((request) => request.path.startsWith(UPSERT_PATH)).length,
    0,
    'the upsert endpoint is never called',
  );
  assert.equal(sandbox.received().length, 0, 'nothing stored in Insider');
}

describe('doctor over the sandbox', () => {
  let sandbox: Sandbox;
  before(async () => {
    sandbox = await startSandbox({ customers: 5, reviews: 5 });
  });
  after(() => sandbox.close());

  test('every API answers and the schema is complete: ✔ three times, exit 0, no upload', async () => {
    sandbox.reset();
    const run = await doctor(sandbox.env);
    assert.equal(run.code, 0, run.err);
    const marked = run.err.split('\n').filter((line) => line.includes('✔'));
    assert.equal(marked.length, 3, run.err);
    for (const label of ['Yotpo Loyalty API', 'Yotpo Reviews API', 'Insider API'])
      assert.ok(
        marked.some((line) => line.includes(label)),
        label,
      );
    assert.match(run.err, /customers\/recent/, 'which listing the account answers');
    assert.match(run.err, /Insider panel schema: every custom attribute/);
    assert.equal(run.report.schema.status, 'complete');
    assert.equal(run.out, '', 'stdout carries only data');
    assert.ok(
      sandbox.requests().some((request) => request.path.startsWith(METADATA_PATH)),
      'the schema was read',
    );
    assertNothingUploaded(sandbox);
  });

  test('--json prints one object with every API, the schema and the exit code', async () => {
    const run = await doctor(sandbox.env, true);
    assert.equal(run.code, 0);
    const printed = JSON.parse(run.out) as DoctorReport;
    assert.deepEqual(printed, JSON.parse(JSON.stringify(run.report)));
    assert.deepEqual(
      printed.apis.map((api) => [api.api, api.status]),
      [
        ['loyalty', 'ok'],
        ['reviews', 'ok'],
        ['insider', 'ok'],
      ],
    );
    assert.equal(printed.exit_code, 0);
    assert.deepEqual(printed.not_configured, []);
    assert.equal(run.err, '');
  });

  test('a wrong Insider key: ✘ naming the variables to check, exit 3, the key never shown, no upload', async () => {
    sandbox.reset();
    const run = await doctor({ ...sandbox.env, INSIDER_API_KEY: 'wrong-insider-key-4242' });
    assert.equal(run.code, 3, run.err);
    const line = run.err.split('\n').find((l) => l.includes('Insider API:'));
    assert.ok(line, run.err);
    assert.match(line, /^✘ Insider API: credentials rejected/);
    assert.match(line, /INSIDER_PARTNER_NAME and INSIDER_API_KEY/);
    assert.equal(run.err.split('\n').filter((l) => l.includes('✔')).length, 2, 'the Yotpo APIs are fine');
    assert.doesNotMatch(run.err + run.out, /wrong-insider-key-4242/);
    assert.equal(run.report.schema.status, 'not checked');
    assertNothingUploaded(sandbox);
  });

  test('no variables at all: exit 2, naming each API and its variables', async () => {
    const run = await doctor({});
    assert.equal(run.code, 2);
    assert.deepEqual(run.report.not_configured, ['loyalty', 'reviews', 'insider']);
    for (const name of [
      'YOTPO_LOYALTY_API_KEY',
      'YOTPO_LOYALTY_GUID',
      'YOTPO_APP_KEY',
      'YOTPO_API_SECRET',
      'INSIDER_PARTNER_NAME',
      'INSIDER_API_KEY',
    ]) {
      assert.ok(run.err.includes(name), name);
    }
    assert.match(run.err, /Nothing is configured/);
  });

  test('only Insider configured: it is checked, the Yotpo APIs are named as not configured, exit 0', async () => {
    const run = await doctor(only(sandbox.env, INSIDER_VARIABLES));
    assert.equal(run.code, 0, run.err);
    assert.deepEqual(run.report.not_configured, ['loyalty', 'reviews']);
    assert.match(run.err, /Not checked, variables not set: Yotpo Loyalty API, Yotpo Reviews API/);
    assert.match(
      run.err,
      /– Yotpo Reviews API: not configured — YOTPO_APP_KEY and YOTPO_API_SECRET not set → set YOTPO_APP_KEY and YOTPO_API_SECRET/,
    );
  });

  test('a closed port: every configured API unreachable, exit 3', async () => {
    const closed = await startSandbox({ customers: 1, reviews: 1 });
    const env = closed.env;
    await closed.close();
    const run = await doctor(env);
    assert.equal(run.code, 3);
    assert.deepEqual(
      run.report.apis.map((api) => api.status),
      ['unreachable', 'unreachable', 'unreachable'],
    );
    for (const api of run.report.apis) assert.match(api.fix!, /_URL and the network/);
  });
});

describe('doctor and the panel schema', () => {
  test('missing and mistyped attributes: exit 1, each named with the type to create it with', async () => {
    const sandbox = await startSandbox({
      customers: 2,
      reviews: 2,
      missingAttributes: ['yotpo_top_topics', 'yotpo_point_balance'],
      mistypedAttributes: ['yotpo_vip_tier_name'],
    });
    try {
      const run = await doctor(sandbox.env);
      assert.equal(run.code, 1, run.err);
      assert.equal(run.err.split('\n').filter((l) => l.includes('✔')).length, 3, 'the credentials work');
      assert.match(run.err, /attribute yotpo_top_topics: missing; create it in InOne with type array/);
      assert.match(run.err, /attribute yotpo_point_balance: missing; create it in InOne with type number/);
      assert.match(run.err, /attribute yotpo_vip_tier_name: type \w+, the mapping sends string/);
      assert.equal(run.report.schema.status, 'incomplete');
      assert.deepEqual(run.report.schema.problems.map((item) => [item.name, item.state]).sort(), [
        ['yotpo_point_balance', 'missing'],
        ['yotpo_top_topics', 'missing'],
        ['yotpo_vip_tier_name', 'mistyped'],
      ]);
      const json = await doctor(sandbox.env, true);
      assert.equal(json.code, 1);
      assert.equal((JSON.parse(json.out) as DoctorReport).schema.missing, 2);
      assertNothingUploaded(sandbox);
    } finally {
      await sandbox.close();
    }
  });

  test('no metadata endpoint: a profile lookup of an address nobody has tests the key; the schema cannot be checked, exit 0', async () => {
    const sandbox = await startSandbox({ customers: 2, reviews: 2, metadataEndpoint: false });
    try {
      const run = await doctor(only(sandbox.env, INSIDER_VARIABLES));
      assert.equal(run.code, 0, run.err);
      assert.match(run.err, /✔ Insider API: ok — credentials accepted: a profile lookup of an unknown address answered 404/);
      assert.match(run.err, /Insider panel schema: unavailable — the schema cannot be checked/);
      assert.equal(run.report.schema.status, 'unavailable');
      assert.ok(sandbox.requests().some((request) => request.path.startsWith(PROFILE_PATH)));
      assert.match(PROBE_EMAIL, /\.invalid$/, 'an address no store can hold');
      assertNothingUploaded(sandbox);

      const wrong = await doctor({ ...only(sandbox.env, INSIDER_VARIABLES), INSIDER_API_KEY: 'wrong-key-for-profile-77' });
      assert.equal(wrong.code, 3, wrong.err);
      assert.equal(wrong.report.apis[2]!.status, 'credentials rejected');
      assert.doesNotMatch(wrong.err, /wrong-key-for-profile-77/);
    } finally {
      await sandbox.close();
    }
  });
});
