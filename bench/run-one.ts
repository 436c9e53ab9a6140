// One measured run in its own process, so its peak RSS and CPU time are its own: prints one JSON
// line with the summary and the process figures.

import { runBackfill } from '../src/commands/backfill.js';
import { runReplay } from '../src/commands/replay.js';
import { PassThrough } from 'node:stream';
import type { Io } from '../src/pipeline/report.js';

const [command, cwd, input] = process.argv.slice(2);
const sink = new PassThrough();
sink.resume();
const io: Io = { stdout: sink, stderr: sink, stderrIsTty: false, env: process.env, cwd: cwd! };
const lifted = { loyaltyRps: 0, reviewsRps: 0, insiderRps: 0 };
// Samples RSS as the run goes (resourceUsage().maxRSS covers the whole process life too).
const started = process.hrtime.bigint();
const summary =
  command === 'replay'
    ? await runReplay(input!, { insiderRps: 0, quiet: true }, io)
    : await runBackfill({ ...lifted, quiet: true, ...(input === 'all' ? { loyaltyEndpoint: 'all' as const } : {}) }, io);
const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
const usage = process.resourceUsage();
process.stdout.write(
  `${JSON.stringify({
    wallMs,
    maxRssMb: usage.maxRSS / 1024,
    cpuMs: (usage.userCPUTime + usage.systemCPUTime) / 1000,
    summary,
  })}\n`,
);
