// One measured run of the built CLI (dist/, as `npm ci` leaves it, or a patched copy of it for an
// A/B variant) in its own process, so its peak RSS and CPU time are its own. Plain JavaScript on
// purpose: no TypeScript loader in the figures. The caller sets YOTPO_INSIDER_STATE_DIR.
// argv: <dist dir> backfill <cwd> <options JSON>  |  <dist dir> replay <cwd> <options JSON> <input>

import { PassThrough } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';

const [dist, command, cwd, optionsJson, input] = process.argv.slice(2);
const options = { quiet: true, ...JSON.parse(optionsJson) };
const load = (module) => import(pathToFileURL(join(dist, 'commands', module)).href);
const sink = new PassThrough();
sink.resume();
const io = { stdout: sink, stderr: sink, stderrIsTty: false, env: process.env, cwd };
const run = command === 'replay' ? (await load('replay.js')).runReplay.bind(null, input) : (await load('backfill.js')).runBackfill;
const started = process.hrtime.bigint();
const summary = await run(options, io);
const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
const usage = process.resourceUsage();
process.stdout.write(
  `${JSON.stringify({ wallMs, maxRssMb: usage.maxRSS / 1024, cpuMs: (usage.userCPUTime + usage.systemCPUTime) / 1000, summary })}\n`,
);
