// Wires `verify` to the account's state store: the last live run's sample (or a named run's), the
// ledger's uncertain events, and where their resolution is recorded.

import { loadConfig } from '../config.js';
import type { VerifyCliOptions } from '../options.js';
import type { Io } from '../pipeline/report.js';
import type { RunControl } from '../pipeline/run.js';
import { readSample } from '../state/samples.js';
import { StateStore } from '../state/store.js';
import { runVerify } from './verify.js';

export async function runVerifyCommand(options: Partial<VerifyCliOptions>, io: Io, control: RunControl = {}): Promise<number> {
  const config = loadConfig(['insider'], io);
  const store = StateStore.forConfig(config, { state: options.state, cwd: io.cwd, writable: options.uncertain === true })!;
  const { exitCode } = await runVerify(
    {
      sample: options.sample ?? 100,
      json: options.json === true,
      quiet: options.quiet === true,
      verbose: options.verbose === true,
      uncertain: options.uncertain === true,
      olderThanHours: options.olderThan ?? 6,
      ...(options.wait !== undefined ? { wait: options.wait } : {}),
      ...(options.from !== undefined ? { from: options.from } : {}),
      ...(options.run !== undefined ? { run: options.run } : {}),
    },
    io,
    {
      ...(control.signal ? { signal: control.signal } : {}),
      loadSample: (runId) => {
        const run = store.runs
          .list()
          .filter((entry) => entry.sample_file && (runId === undefined || entry.id === runId))
          .at(-1);
        return run?.sample_file ? readSample(store, run.sample_file) : undefined;
      },
      uncertainEntries: async () => (await store.ledger()).uncertainEntries(),
      recordResolution: async (resolution) => {
        const ledger = await store.ledger();
        await ledger.settle(resolution.delivered, 'delivered');
        await ledger.settle(resolution.released, 'released');
        await ledger.close();
      },
    },
  );
  return exitCode;
}
