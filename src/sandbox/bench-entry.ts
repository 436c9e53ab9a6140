// The sandbox as a separate process for the benchmark: argv = customers reviews latencyMs. It keeps
// no record of users (counts only), so a million-user run costs it no memory.

import { serveSandbox } from './serve.js';

const [customers, reviews, latencyMs] = process.argv.slice(2).map(Number);
const sandbox = await serveSandbox({ customers: customers!, reviews: reviews!, latencyMs: latencyMs!, recordUsers: false }, (line) =>
  process.stdout.write(`${line}\n`),
);
process.on('SIGTERM', () => void sandbox.close().then(() => process.exit(0)));
