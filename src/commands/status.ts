// `yotpo-insider status`: what the state store holds for the configured account: its folder, each
// backfill checkpoint, the ledger's keys by state, and the last runs (a run that never finished
// shows as such).

import { loadConfig } from '../config.js';
import { EXIT, UsageError } from '../errors.js';
import type { Io } from '../pipeline/report.js';
import type { StatusOptions } from '../options.js';
import { describeScope, readState } from '../state/checkpoint.js';
import { StateStore, describeAccount } from '../state/store.js';

export async function runStatus(options: Partial<StatusOptions>, io: Io): Promise<number> {
  const config = loadConfig([], io);
  if (!config.insider)
    throw new UsageError('status needs INSIDER_PARTNER_NAME and INSIDER_API_KEY: the state store is kept per Insider account');
  const store = StateStore.forConfig(config, { state: options.state, cwd: io.cwd, writable: false })!;
  const checkpoints = store.checkpointFiles().flatMap((file) => {
    const state = readState(file);
    return state
      ? [
          {
            file,
            scope: describeScope(state.scope),
            phase: state.phase,
            pages_confirmed: state.pages_confirmed,
            users_confirmed: state.users_confirmed,
            reviewers_confirmed: state.reviewers_confirmed,
            started_at: state.started_at,
            updated_at: state.updated_at,
          },
        ]
      : [];
  });
  const ledger = await store.ledger();
  const report = {
    account: store.account,
    state_dir: store.dir,
    checkpoints,
    ledger: { file: ledger.path, keys: ledger.counts() },
    runs: store.runs.list().slice(-10),
  };
  if (options.json) {
    io.stdout.write(`${JSON.stringify(report)}\n`);
    return EXIT.ok;
  }
  const say = (line: string) => io.stderr.write(`${line}\n`);
  say(`account: ${describeAccount(store.account)}`);
  say(`state:   ${store.dir}`);
  if (checkpoints.length === 0) say('backfill checkpoints: none');
  for (const c of checkpoints) {
    say(
      `backfill ${c.scope}: ${c.phase}, ${c.pages_confirmed} loyalty page(s), ${c.users_confirmed} user(s), ${c.reviewers_confirmed} reviewer(s) confirmed; updated ${c.updated_at}`,
    );
  }
  const keys = report.ledger.keys;
  say(`ledger: ${keys.delivered} delivered, ${keys.uncertain} uncertain, ${keys['in flight']} in flight, ${keys.released} released`);
  if (keys.uncertain > 0) say('  uncertain events: yotpo-insider verify --uncertain resolves them');
  if (report.runs.length === 0) say('runs: none yet');
  for (const run of report.runs) {
    const ended = run.outcome === 'finished' ? `ended ${run.ended_at}, exit ${run.exit_code}` : run.outcome;
    say(`run ${run.id}: ${run.command}, started ${run.started_at}, ${ended}`);
  }
  return EXIT.ok;
}
