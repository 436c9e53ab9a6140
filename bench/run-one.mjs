// One measured run of the built CLI (dist/, as `npm ci` leaves it) in its own process, so its peak
// RSS and CPU time are its own. Plain JavaScript on purpose: no TypeScript loader in the figures.
// argv: backfill <cwd> [recent|all]  |  replay <cwd> <input>

import { PassThrough } from 'node:stream';
import { runBackfill } from '../dist/commands/backfill.js';
import { runReplay } from '../dist/commands/replay.js';

const [command, cwd, input] = process.argv.slice(2);
const sink = new PassThrough();
sink.resume();
const io = { stdout: sink, stderr: sink, stderrIsTty: false, env: process.env, cwd };
const started = process.hrtime.bigint();
const summary =
  command === 'replay'
    ? await runReplay(input, { insiderRps: 0, quiet: true }, io)
    : await runBackfill({ loyaltyRps: 0, reviewsRps: 0, insiderRps: 0, quiet: true, loyaltyEndpoint: input === 'all' ? 'all' : 'recent' }, io);
const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
const usage = process.resourceUsage();
process.stdout.write(
  `${JSON.stringify({ wallMs, maxRssMb: usage.maxRSS / 1024, cpuMs: (usage.userCPUTime + usage.systemCPUTime) / 1000, summary })}\n`,
);
