// `npm run bench`: real backfills and a replay over HTTP against the sandbox (with a per-request
// latency), each in its own process, compared with the lower bound the APIs' latency allows.
// Timing lives here only, never in the tests.
//
//   npm run bench                      20k, 40k, 100k customers (and as many reviews), 100k-line replay
//   npm run bench -- --sizes 1000000 --latency 0     the million-customer memory run

import { spawn } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { mapAttributes, toInsiderUser } from '../src/core/transform.js';
import { toBatchItem } from '../src/core/batcher.js';
import { customerAt } from '../src/sandbox/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '20000,40000,100000' },
    latency: { type: 'string', default: '20' },
    replay: { type: 'string', default: '100000' },
    'pages-in-flight': { type: 'string', default: '8' },
  },
});
const sizes = values.sizes.split(',').map(Number);
const latencyMs = Number(values.latency);
const replayLines = Number(values.replay);
const pagesInFlight = Number(values['pages-in-flight']);

interface Measured {
  wallMs: number;
  maxRssMb: number;
  cpuMs: number;
  summary: { users: { read: number; succeeded: number }; events: { sent: number }; reviews: { pages: number } | null; requests: Record<string, number> };
}

/** Starts `yotpo-insider sandbox` in its own process; resolves with its env and a stop function. */
async function sandboxProcess(customers: number, reviews: number) {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(here, '../src/sandbox/bench-entry.ts'), String(customers), String(reviews), String(latencyMs)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  const env: Record<string, string> = {};
  await new Promise<void>((resolve) => {
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('# sandbox listening')) resolve();
    });
  });
  for (const match of out.matchAll(/^export (\w+)=(.*)$/gm)) env[match[1]!] = match[2]!;
  return { env, stop: () => child.kill('SIGTERM') };
}

/**
 * The floor of the loyalty chain on this machine: the same pages requested one after another by a
 * bare node:http client that does nothing with them (it only finds the next cursor).
 */
async function rawChainMs(env: Record<string, string>): Promise<number> {
  const agent = new http.Agent({ keepAlive: true });
  const get = (path: string) =>
    new Promise<string>((resolve, reject) => {
      http
        .get(`${env.YOTPO_LOYALTY_URL}${path}`, { agent, headers: { 'x-guid': env.YOTPO_LOYALTY_GUID, 'x-api-key': env.YOTPO_LOYALTY_API_KEY } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => resolve(Buffer.concat(chunks).toString()));
        })
        .on('error', reject);
    });
  const started = Date.now();
  let cursor: string | undefined;
  for (;;) {
    const text = await get(`/api/v2/customers/recent?per_page=100${cursor ? `&page_info=${cursor}` : ''}`);
    const match = /"next_page_info":"([^"]+)"/.exec(text.slice(-300));
    if (!match) break;
    cursor = match[1];
  }
  agent.destroy();
  return Date.now() - started;
}

function runOne(args: string[], env: Record<string, string>): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(here, 'run-one.mjs'), ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('close', (code) => (code === 0 || code === 1 ? resolve(JSON.parse(out.trim().split('\n').at(-1)!)) : reject(new Error(`run exited ${code}`))));
  });
}

const rows: string[] = [];
const row = (cells: (string | number)[]) => rows.push(`| ${cells.join(' | ')} |`);
const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

console.error(`node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), latency ${latencyMs} ms`);
row(['run', 'wall s', 'users/s', 'bound s', 'wall/bound', 'bare chain s', 'wall/bare chain', 'peak RSS MB', 'CPU µs/customer']);
row(['---', '---', '---', '---', '---', '---', '---', '---', '---']);

let previous: { size: number; wall: number } | undefined;
for (const [position, size] of sizes.entries()) {
  const sandbox = await sandboxProcess(size, size);
  try {
    // The page-numbered listing once, on the first size: its pages are fetched several at a time.
    for (const endpoint of position === 0 && latencyMs > 0 ? ['recent', 'all'] : ['recent']) {
      const cwd = mkdtempSync(join(tmpdir(), 'yotpo-insider-bench-'));
      try {
        const m = await runOne(['backfill', cwd, endpoint], sandbox.env);
        const loyaltyPages = Math.ceil(size / 100) + 1;
        const reviewPages = (m.summary.reviews?.pages ?? 0) + 1;
        const loyaltyBound = endpoint === 'all' ? (loyaltyPages * latencyMs) / pagesInFlight : loyaltyPages * latencyMs;
        const boundMs = Math.max(loyaltyBound, (reviewPages * latencyMs) / pagesInFlight);
        const chainMs = endpoint === 'recent' ? await rawChainMs(sandbox.env) : NaN;
        const ratio = boundMs > 0 ? m.wallMs / boundMs : NaN;
        row([
          `backfill ${fmt(size)} + ${fmt(size)} reviews${endpoint === 'all' ? ' (--loyalty-endpoint all)' : ''}`,
          fmt(m.wallMs / 1000, 2),
          fmt(m.summary.users.succeeded / (m.wallMs / 1000)),
          fmt(boundMs / 1000, 2),
          Number.isFinite(ratio) ? fmt(ratio, 3) : 'n/a',
          Number.isFinite(chainMs) ? fmt(chainMs / 1000, 2) : 'n/a',
          Number.isFinite(chainMs) ? fmt(m.wallMs / chainMs, 3) : 'n/a',
          fmt(m.maxRssMb, 1),
          fmt((m.cpuMs * 1000) / size, 1),
        ]);
        console.error(rows.at(-1));
        if (endpoint === 'recent') {
          if (previous) console.error(`  ${fmt(size / previous.size, 1)}× the data took ${fmt(m.wallMs / previous.wall, 2)}× the time`);
          previous = { size, wall: m.wallMs };
        }
      } finally {
        rmSync(cwd, { recursive: true, force: true });
      }
    }
  } finally {
    sandbox.stop();
  }
}

if (replayLines > 0) {
  const cwd = mkdtempSync(join(tmpdir(), 'yotpo-insider-bench-'));
  const sandbox = await sandboxProcess(10, 0);
  try {
    // Realistic payloads from the fixture, made distinct (each line a new perk) and spread over users.
    const fixture = readFileSync(join(here, '../fixtures/events.jsonl'), 'utf8')
      .split('\n')
      .slice(0, 24)
      .filter((line) => line.trim().startsWith('{"topic') || line.includes('"name"'))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((p) => p.topic !== 'swell/redemption_code/below_threshold' && (p.perk || p.redemption));
    const lines: string[] = [];
    for (let i = 0; i < replayLines; i++) {
      const payload = structuredClone(fixture[i % fixture.length]!);
      const user = `bench.${i % 20000}@example.com`;
      if (payload.customer && typeof payload.customer === 'object') (payload.customer as Record<string, unknown>).email = user;
      payload.email = user;
      if (payload.perk && typeof payload.perk === 'object') (payload.perk as Record<string, unknown>).id = i;
      else if (payload.redemption && typeof payload.redemption === 'object') (payload.redemption as Record<string, unknown>).id = i;
      const created = new Date(Date.now() - (i % 5000) * 60_000).toISOString();
      if (payload.perk && typeof payload.perk === 'object') (payload.perk as Record<string, unknown>).completed_at = created;
      lines.push(JSON.stringify(payload));
    }
    const input = join(cwd, 'events.jsonl');
    writeFileSync(input, `${lines.join('\n')}\n`);
    const m = await runOne(['replay', cwd, input], sandbox.env);
    row([
      `replay ${fmt(replayLines)} lines`,
      fmt(m.wallMs / 1000, 2),
      `${fmt(m.summary.events.sent / (m.wallMs / 1000))} events/s`,
      'n/a',
      'n/a',
      'n/a',
      'n/a',
      fmt(m.maxRssMb, 1),
      `${fmt((m.cpuMs * 1000) / replayLines, 1)} per line`,
    ]);
  } finally {
    sandbox.stop();
    rmSync(cwd, { recursive: true, force: true });
  }
}

// Transform + serialisation on one core: the per-customer CPU the pipeline cannot hide.
{
  const customers = Array.from({ length: 2000 }, (_, i) => customerAt(1, i));
  const warnings = new Map();
  const iterations = 100_000;
  for (let i = 0; i < 20_000; i++) toBatchItem(toInsiderUser('a@b.co', mapAttributes([customers[i % 2000]], undefined, {}, warnings)), 0);
  const t0 = process.hrtime.bigint();
  let bytes = 0;
  for (let i = 0; i < iterations; i++) {
    bytes += toBatchItem(toInsiderUser('a@b.co', mapAttributes([customers[i % 2000]], undefined, {}, warnings)), 0).bytes;
  }
  const ns = Number(process.hrtime.bigint() - t0) / iterations;
  row(['transform + serialise (1 core)', '', `${fmt(1e9 / ns)} customers/s`, '', '', '', '', '', `${fmt(ns / 1000, 2)} per customer`]);
  if (bytes === 0) console.error('no bytes?');
}

console.log(`\n${new Date().toISOString().slice(0, 10)}, node ${process.version}, ${cpus().length} cores, latency ${latencyMs} ms, ${pagesInFlight} review pages in flight, rate limits lifted\n`);
console.log(rows.join('\n'));
