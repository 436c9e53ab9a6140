// `yotpo-insider retry <failed.jsonl>`: sends exactly the users of a failed file again, with the
// same batching, retries and summary, and writes what fails again to a failed file of its own.

import { resolve } from 'node:path';
import { USER_COLUMNS, userRow } from '../io/csv.js';
import { loadConfig } from '../config.js';
import { InterruptedError, UsageError } from '../errors.js';
import { flattenAttributes, normaliseEmail, type InsiderUser } from '../core/transform.js';
import { Delivery } from '../pipeline/delivery.js';
import { Progress } from '../pipeline/progress.js';
import { Reporter, type Io } from '../pipeline/report.js';
import { auditFor, auditStatus, closeOutputs, COMMON_DEFAULTS, deliverySettings, failedFileFor, finishRun, makeClients, type CommonOptions, type RunControl } from '../pipeline/run.js';
import { addReason, newSummary, type RunSummary } from '../pipeline/summary.js';
import { Ledger } from '../pipeline/ledger.js';
import { readLines } from '../io/lines.js';
import type { FailedRecord } from '../io/jsonl.js';

export interface RetryOptions extends CommonOptions {
  /** Also send events whose earlier delivery is uncertain (they may reach Insider twice). */
  force: boolean;
}

interface FailedLine {
  user?: InsiderUser;
  event_keys?: string[];
  delivery_uncertain?: boolean;
}

function isInsiderUser(value: unknown): value is InsiderUser {
  const user = value as InsiderUser | undefined;
  return Boolean(user && typeof user === 'object' && user.identifiers && typeof user.identifiers.email === 'string');
}

export async function runRetry(
  file: string,
  partial: Partial<RetryOptions>,
  io: Io,
  control: RunControl = {},
): Promise<RunSummary> {
  const options: RetryOptions = { ...COMMON_DEFAULTS, force: false, ...partial };
  const startedAt = Date.now();
  const reporter = new Reporter(io, { quiet: options.quiet, verbose: options.verbose });
  const summary = newSummary('retry', options.dryRun);
  const config = loadConfig(options.dryRun ? [] : ['insider'], io);
  const clients = makeClients(config, options, {}, reporter);
  const path = file === '-' ? '-' : resolve(io.cwd, file);
  const failedFile = failedFileFor(options, io, new Date(startedAt));
  if (failedFile.path === path) throw new UsageError('--failed must not name the file being retried');
  const audit = auditFor('retry', options, io, new Date(startedAt), USER_COLUMNS);
  // Users that carried replayed events: once delivered, their events join the replay ledger. It is
  // opened at the first such user, so retrying a backfill's failed file needs no state file at all.
  let ledger: Ledger | undefined;
  const ledgerFor = async (eventKeys: string[]): Promise<Ledger | undefined> => {
    if (eventKeys.length === 0) return ledger;
    // A dry run reads the ledger (to skip what a live run would skip) and writes nothing.
    ledger ??= await Ledger.open(resolve(io.cwd, options.state), { forWriting: !options.dryRun });
    if (!options.dryRun) summary.state_file = ledger.path;
    return ledger;
  };
  if (options.dryRun) reporter.info('dry run: the failed file is read and re-batched; nothing is sent to Insider');

  const delivery = new Delivery<{ eventKeys: string[] }>({
    ...deliverySettings(options, clients, failedFile),
    // What fails again keeps its event keys, so the next retry still guards them.
    failedExtra: (tag) => (tag.eventKeys.length > 0 ? { event_keys: tag.eventKeys } : {}),
    recordDelivery: (item, outcome) => ledger?.record(item.tag.eventKeys, outcome),
    onOutcome: (item, outcome) => {
      if (outcome.status === 'succeeded') summary.users.succeeded++;
      else if (outcome.status === 'failed') summary.users.failed++;
      const status = auditStatus(outcome);
      const reason = outcome.status === 'failed' ? outcome.error : '';
      audit?.write(userRow(status, reason, item.user.identifiers.email, flattenAttributes(item.user)));
    },
  });

  const progress = new Progress(io, { quiet: options.quiet, records: 'users' });
  const showProgress = () =>
    progress.update({ reviewPages: 0, reviews: 0, customersRead: summary.users.read, ...summary.users });
  let error: unknown;
  try {
    for await (const { lineNumber, text } of readLines(path)) {
      if (control.signal?.aborted) throw new InterruptedError();
      if (text.trim() === '') continue;
      summary.users.read++;
      let record: FailedLine;
      try {
        record = JSON.parse(text) as FailedLine;
      } catch {
        record = {};
      }
      if (!isInsiderUser(record.user) || !normaliseEmail(record.user.identifiers.email)) {
        summary.users.skipped++;
        addReason(summary.skipped_reasons, 'not a failed-file line');
        reporter.warn(`${file} line ${lineNumber} is not a failed-file record; skipped`);
        continue;
      }
      const eventKeys = Array.isArray(record.event_keys) ? record.event_keys.map(String) : [];
      // A user whose replayed events were all confirmed since (an earlier retry) is not sent twice.
      const knownKeys = await ledgerFor(eventKeys);
      const user = record.user;
      const skip = (reason: string) => {
        summary.users.skipped++;
        addReason(summary.skipped_reasons, reason);
        audit?.write(userRow('skipped', reason, user.identifiers.email, flattenAttributes(user)));
      };
      if (knownKeys && eventKeys.length > 0 && eventKeys.every((key) => knownKeys.has(key))) {
        skip('already delivered');
        continue;
      }
      // Insider may already hold this user's events (it counted a failure without naming whom):
      // sending them again could double them, so that takes the operator's --force. Meanwhile the
      // user stays in the chain: its line goes to this run's failed file as it was.
      const uncertain = record.delivery_uncertain === true || eventKeys.some((key) => knownKeys?.isUncertain(key));
      if (uncertain && eventKeys.length > 0 && !options.force) {
        skip('delivery uncertain');
        if (!options.dryRun) failedFile.write({ ...(record as FailedRecord), delivery_uncertain: true });
        continue;
      }
      summary.users.sent++;
      if (summary.users.sent % 500 === 0) {
        await audit?.drained();
        showProgress();
      }
      await delivery.add(user, { eventKeys });
    }
    await delivery.finish();
  } catch (caught) {
    error = caught;
    await delivery.wrapUp(caught instanceof InterruptedError);
  }
  showProgress();
  progress.stop();
  error = await closeOutputs(error, ledger, failedFile, audit);
  const uncertainSkipped = summary.skipped_reasons['delivery uncertain'] ?? 0;
  if (uncertainSkipped > 0) {
    summary.warnings.push(
      `${uncertainSkipped} user(s) ${options.dryRun ? 'would be held back' : 'not sent (kept in the new failed file)'}: their events may already be in Insider (it reported failures in their batch without naming the users). Check a few in Insider; to send them anyway, retry with --force`,
    );
  }
  summary.failed_file = failedFile.writtenPath;
  summary.audit_file = audit && audit.path !== '-' ? audit.path : null;
  return finishRun(summary, error, clients.counters, startedAt, reporter, io, options, `yotpo-insider retry ${file}`);
}
