// The one run lifecycle that backfill, replay, retry and listen's forwarder share. A command
// supplies a source of items, a settle hook and what its failed lines carry; the pipeline owns the
// configuration and clients, the state store and ledger, the audit CSV, the failed and rejects
// files, progress, delivery, counting, the bounded wrap-up on a signal or a fatal error, closing
// every output, the run log, verify's sample and the summary.

import { loadConfig, type Config } from '../config.js';
import { FillCounter, formatFillReport } from '../core/fill-report.js';
import { flattenAttributes, type FieldWarnings, type InsiderUser } from '../core/transform.js';
import type { BatchItem } from '../core/batcher.js';
import { Reservoir } from '../core/reservoir.js';
import { setMaxListeners } from 'node:events';
import { InterruptedError, type ApiName } from '../errors.js';
import type { UserOutcome } from '../insider/upload.js';
import { sweepStaleTempDirs } from '../io/files.js';
import { redact } from '../io/redact.js';
import type { Ledger } from '../state/ledger.js';
import { legacyStateNotice, StateStore } from '../state/store.js';
import { Delivery } from './delivery.js';
import type { AuditRows, AuditStatus, Item, SendItem } from './items.js';
import { Progress, type ProgressFigures } from './progress.js';
import { Reporter, type Io } from './report.js';
import {
  closeOutputs,
  finishRun,
  makeClients,
  openOutputs,
  type Clients,
  type CommonOptions,
  type Outputs,
  type RunControl,
} from './run.js';
import { addReason, newSummary, type RunCommand, type RunSummary } from './summary.js';
import { writeSample } from '../state/samples.js';
import { checkPanel, type SchemaScope } from './schema-check.js';

export interface RunContext {
  readonly options: CommonOptions;
  readonly config: Config;
  readonly clients: Clients;
  /** The account's store; absent only for a dry run without Insider variables. */
  readonly store: StateStore | undefined;
  readonly summary: RunSummary;
  readonly reporter: Reporter;
  /** Aborted when the run must stop (a signal, or a fatal error): sources stop reading. */
  readonly signal: AbortSignal;
  readonly warnings: FieldWarnings;
  readonly startedAt: Date;
  readonly io: Io;
  /** The shared ledger, opened at first use; undefined without a store. */
  ledger(): Promise<Ledger | undefined>;
  /** Progress figures the source knows (pages, records read, totals). */
  progress(figures: Partial<ProgressFigures>): void;
  /** Replay: input line `line` will have audit rows (called in reading order, so rows follow line order). */
  reserveAuditLine(line: number): void;
}

export interface PipelineSpec<Tag> {
  command: RunCommand;
  options: CommonOptions;
  io: Io;
  control: RunControl;
  /** The APIs this run calls (their variables must be set); Insider is added for a live run. */
  needs: ApiName[];
  /** Requests per second of the Yotpo clients this run uses. */
  yotpoRps?: Partial<Record<'loyalty' | 'reviews', number>>;
  auditColumns: readonly string[];
  /** Audit rows start with an input line number and are written in line order (replay). */
  auditByLine?: boolean;
  /** The rejects file of a command that reads input lines (replay, listen); listen appends to its archive's. */
  rejects?: { file: string; append: boolean };
  /** Progress display: what is read ("customers", "events", "users"), and whether reviews are paged. */
  progress: { records: string; reviews?: boolean; totalKnown?: boolean };
  /** How long a stopping run waits for the answers in flight (default 10 s). */
  graceMs?: number;
  /** listen: an Insider that rejects or fails does not stop the run; batches wait and are tried again. */
  persist?: { onDegraded: (error: Error) => void; onHealthy: () => void };
  /** The panel check at start: what this run sends (none: no check). */
  schema?: SchemaScope;
  /** Checks and opens what the command needs before any output exists (usage errors stop here). */
  prepare?: (ctx: RunContext) => Promise<void> | void;
  source: (ctx: RunContext) => AsyncIterable<Item<Tag>>;
  /** A user's outcome is final (never called for users left unsent by a stopping run). */
  settle?: (tag: Tag, outcome: UserOutcome) => void;
  /** What a failed line carries beyond the user (event keys). */
  failedExtra?: (tag: Tag) => Record<string, unknown>;
  /** After every outcome is known (or the wrap-up gave up): save checkpoints, release locks. */
  end?: (ctx: RunContext, error: unknown) => Promise<void> | void;
  /** The command that resumes this run, printed when it stops (exit 3, 130). */
  resumeHint?: (ctx: RunContext) => string | undefined;
}

/** Runs a command's source through the one lifecycle; returns the summary (printed already). */
export async function runPipeline<Tag>(spec: PipelineSpec<Tag>): Promise<RunSummary> {
  const { options, io, control, command } = spec;
  const startedAt = new Date();
  const reporter = new Reporter(io, { quiet: options.quiet, verbose: options.verbose });
  const summary = newSummary(command, options.dryRun);
  const warnings: FieldWarnings = new Map();
  const stop = new AbortController();
  // Every request in flight and every rate-limit wait listens on this one signal.
  setMaxListeners(1000, stop.signal);
  const onSignal = () => stop.abort(new InterruptedError());
  control.signal?.addEventListener('abort', onSignal, { once: true });
  if (control.signal?.aborted) onSignal();

  let ctx: RunContext | undefined;
  let outputs: Outputs | undefined;
  let delivery: Delivery<Tag> | undefined;
  let progress: Progress | undefined;
  let sample: Reservoir<InsiderUser> | undefined;
  let fillCounter: FillCounter | undefined;
  let ledgerUsed = false;
  let routes: { unsent: () => number } | undefined;
  let error: unknown;
  try {
    // Temporary files of runs that died (customer data) go at the next start.
    sweepStaleTempDirs();
    const needs = options.dryRun ? spec.needs : [...spec.needs, 'insider' as const];
    const config = loadConfig(needs, io);
    const clients = makeClients(config, options, spec.yotpoRps ?? {}, reporter, { stop: stop.signal });
    const store = StateStore.forConfig(config, { state: options.state, cwd: io.cwd, writable: !options.dryRun });
    summary.state_dir = store?.dir ?? null;
    summary.run_id = store && !options.dryRun ? store.runId : null;
    const notice = store ? legacyStateNotice(io.cwd, store.dir) : undefined;
    if (notice) reporter.info(notice);
    let ledgerOpened = false;
    const markUsed = () => (ledgerUsed = true);
    const context: RunContext = {
      options,
      config,
      clients,
      store,
      summary,
      reporter,
      signal: stop.signal,
      warnings,
      startedAt,
      io,
      ledger: async () => {
        if (!store) return undefined;
        markUsed();
        const ledger = await store.ledger();
        if (!ledgerOpened) {
          ledgerOpened = true;
          if (!options.dryRun) summary.state_file = ledger.path;
          if (ledger.recoveredUncertain > 0) {
            summary.warnings.push(
              `${ledger.recoveredUncertain} event(s) of an earlier run that ended before Insider answered are now uncertain: Insider may hold them. yotpo-insider verify --uncertain resolves them`,
            );
          }
        }
        return ledger;
      },
      progress: (figures) => progress?.update({ ...figureBase(summary), ...figures }),
      reserveAuditLine: (line) => outputs?.audit?.reserveLine(line),
    };
    ctx = context;
    await spec.prepare?.(context);
    if (spec.schema && config.insider) {
      // A client of its own: a dry run has no upload client, and a signal must stop this read (never an upload).
      const reader = makeClients(config, { ...options, dryRun: false }, {}, reporter, {
        insiderStop: stop.signal,
        counters: clients.counters,
      }).insider!;
      await checkPanel(reader, spec.schema, { dryRun: options.dryRun, allowMissing: options.allowMissingSchema, reporter });
    }
    // A dry run whose CSV reader went away (`--out - | head`) has nothing left to do: it stops quietly.
    outputs = openOutputs(command, options, io, startedAt, spec.auditColumns, config.insider, spec.rejects, () => {
      if (options.dryRun) stop.abort(new ReaderGone());
    });
    if (options.dryRun) reporter.info('dry run: everything is read, built, batched and checked; nothing is sent to Insider');
    if (store && !options.dryRun) await store.runs.started({ id: store.runId, command, started_at: startedAt.toISOString() });
    sample = !options.dryRun && options.sampleSize > 0 ? new Reservoir(options.sampleSize) : undefined;
    progress = new Progress(io, {
      quiet: options.quiet,
      records: spec.progress.records,
      reviews: spec.progress.reviews ?? false,
      figures: () => figureBase(summary),
      clients: { counters: clients.counters, paced: [clients.loyalty, clients.reviews, clients.insider] },
    });

    const route = routeOutcomes(spec, context, outputs, sample);
    routes = route;
    delivery = new Delivery<Tag>(
      {
        ...(clients.insider ? { client: clients.insider } : {}),
        concurrency: options.concurrency,
        batchSize: options.batchSize,
        maxBytes: options.maxRequestBytes,
        skipHook: !options.triggerJourneys,
        onAmbiguous: options.onAmbiguous,
        ...(spec.persist ? { persist: { ...spec.persist, stop: stop.signal } } : {}),
      },
      route.onTime,
      (fatal) => stop.abort(fatal),
      route.late,
    );

    const fill = options.dryRun ? (fillCounter = new FillCounter()) : undefined;
    const live = outputs;
    const byLine = spec.auditByLine === true;
    for await (const item of spec.source(context)) {
      if (stop.signal.aborted) break;
      if (item.kind === 'send') {
        summary.users.read++;
        fill?.add(item.user);
        await delivery.add(item);
      } else if (item.kind === 'skip') {
        const count = item.count ?? 1;
        const tally = item.unit === 'event' ? summary.events : summary.users;
        tally.skipped += count;
        if (item.unit === 'user') summary.users.read += count;
        addReason(summary.skipped_reasons, item.reason, count);
        summary.events.uncertain += item.uncertainEvents ?? 0;
        if (item.failedLine && live.failed && !options.dryRun) live.failed.write({ ...item.failedLine, account: live.account });
        writeRows(live, item.audit, 'skipped', item.reason, byLine);
      } else if (item.kind === 'flush') {
        await delivery.flush();
      } else {
        summary.events.rejected++;
        addReason(summary.rejected_reasons, item.reason);
        live.rejects?.write(item.record ?? { line: item.line, reason: item.reason, raw: item.raw });
        writeRows(live, item.audit, 'rejected', item.reason, byLine);
      }
      await live.audit?.drained();
    }
    if (stop.signal.reason instanceof ReaderGone) return quietEnd(summary, outputs, startedAt);
    if (stop.signal.reason instanceof Error && !(stop.signal.reason instanceof InterruptedError)) throw stop.signal.reason;
    if (stop.signal.aborted) throw new InterruptedError();
    progress.update({ ...figureBase(summary), phase: 'finishing' });
    // A signal while the last answers are awaited stops the wait (bounded wrap-up), as anywhere else.
    await Promise.race([delivery.finish(), stopped(stop.signal)]);
  } catch (caught) {
    error = caught;
    // A source that failed (a Yotpo credential refused) stops the rest of the run too: the review paging, Yotpo requests in flight.
    if (!stop.signal.aborted) stop.abort(caught);
    await delivery?.wrapUp(caught instanceof InterruptedError, spec.graceMs);
  } finally {
    control.signal?.removeEventListener('abort', onSignal);
  }
  error ??= delivery?.fatal;
  progress?.update(figureBase(summary));
  progress?.stop();
  if (ctx) {
    try {
      await spec.end?.(ctx, error);
    } catch (endError) {
      error ??= endError;
    }
  }
  error = await closeOutputs(error, outputs?.failed, outputs?.rejects, outputs?.audit);
  if (options.dryRun && outputs?.audit?.stdoutClosed) return quietEnd(summary, undefined, startedAt);
  const ledger = ctx?.store && ledgerUsed ? await ctx.ledger().catch(() => undefined) : undefined;
  error = await closeOutputs(error, ledger);
  summary.failed_file = outputs?.failed?.writtenPath ?? null;
  summary.rejects_file = outputs?.rejects?.writtenPath ?? null;
  summary.audit_file = outputs?.audit && outputs.audit.path !== '-' ? outputs.audit.path : null;
  summary.field_warnings = Object.fromEntries(warnings);
  if (options.dryRun) {
    summary.users.succeeded = 0;
    summary.events.succeeded = 0;
  }
  const notSent = routes?.unsent() ?? 0;
  if (notSent > 0) summary.warnings.push(`${notSent} user(s) were not sent before the run stopped; running it again sends them`);
  if (fillCounter && fillCounter.users > 0) {
    summary.fill = fillCounter.report(summary.field_warnings);
    if (!options.json) for (const line of formatFillReport(summary.fill, fillCounter.users)) reporter.result(line);
  }
  const hint = ctx ? spec.resumeHint?.(ctx) : undefined;
  const result = finishRun(summary, error, ctx?.clients.counters, startedAt.getTime(), reporter, io, options, hint);
  if (ctx?.store && !options.dryRun) await recordRun(ctx.store, result, sample, reporter);
  return result;
}

/** Rejects once `signal` aborts, with its reason (an interrupt, a fatal error). */
function stopped(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    const fail = () =>
      reject(signal.reason instanceof Error && !(signal.reason instanceof ReaderGone) ? signal.reason : new InterruptedError());
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
}

/** The reader of a dry run's CSV on stdout went away (`| head`). */
class ReaderGone extends Error {}

/** A dry run whose CSV reader went away: nothing is left to do, nothing to say (SPEC §5). */
async function quietEnd(summary: RunSummary, outputs: Outputs | undefined, startedAt: Date): Promise<RunSummary> {
  await closeOutputs(undefined, outputs?.failed, outputs?.rejects, outputs?.audit);
  summary.duration_ms = Date.now() - startedAt.getTime();
  summary.exit_code = 0;
  return summary;
}

/** The run log's end line, with verify's sample of the users Insider confirmed. */
async function recordRun(
  store: StateStore,
  summary: RunSummary,
  sample: Reservoir<InsiderUser> | undefined,
  reporter: Reporter,
): Promise<void> {
  try {
    const users = sample?.items() ?? [];
    const sampleFile =
      users.length > 0
        ? writeSample(
            store,
            store.runId,
            users.map((user) => ({ email: user.identifiers.email, attributes: flattenAttributes(user) })),
          )
        : undefined;
    await store.runs.ended({
      id: store.runId,
      ended_at: new Date().toISOString(),
      exit_code: summary.exit_code,
      counts: { users: summary.users, events: summary.events },
      ...(sampleFile ? { sample_file: sampleFile, sample_size: users.length } : {}),
    });
  } catch (error) {
    reporter.warn(`the run log could not be written: ${redact((error as Error).message)}`);
  }
}

function figureBase(summary: RunSummary): ProgressFigures {
  return {
    reviewPages: 0,
    reviews: 0,
    // Event commands count lines read; the others users.
    customersRead: summary.events.read > 0 ? summary.events.read : summary.users.read,
    sent: summary.users.sent,
    succeeded: summary.users.succeeded,
    failed: summary.users.failed,
    uncertain: summary.users.uncertain,
  };
}

/** Rows of line-numbered input (replay) are written in line order; others as they come. */
function writeRows(outputs: Outputs, audit: AuditRows | undefined, status: AuditStatus, reason: string, byLine: boolean): void {
  if (!outputs.audit || !audit) return;
  for (const row of audit(status, reason)) {
    if (byLine) outputs.audit.writeLine(Number(row[0]), row);
    else outputs.audit.write(row);
  }
}

const AUDIT_STATUS: Record<UserOutcome['status'], AuditStatus> = {
  succeeded: 'sent',
  would_send: 'would_send',
  failed: 'failed',
  uncertain: 'uncertain',
  unsent: 'failed',
};

/**
 * What happens to each user once Insider answered: the ledger first (an event Insider confirmed
 * is delivered before anything else can fail), then the failed file, counts, audit rows, verify's
 * sample and the command's settle hook. Answers after the wrap-up gave up reach the ledger only.
 */
function routeOutcomes<Tag>(spec: PipelineSpec<Tag>, ctx: RunContext, outputs: Outputs, sample: Reservoir<InsiderUser> | undefined) {
  const { summary } = ctx;
  const settleLedger = async (items: readonly BatchItem<SendItem<Tag>>[], outcomes: readonly UserOutcome[]) => {
    const byState = { delivered: [] as string[], uncertain: [] as string[], released: [] as string[] };
    items.forEach((item, index) => {
      const keys = item.tag.events?.map((ref) => ref.key) ?? [];
      if (keys.length === 0) return;
      const status = outcomes[index]!.status;
      if (status === 'succeeded') byState.delivered.push(...keys);
      else if (status === 'uncertain') byState.uncertain.push(...keys);
      else if (status === 'failed' || status === 'unsent') byState.released.push(...keys);
    });
    if (byState.delivered.length + byState.uncertain.length + byState.released.length === 0) return;
    const ledger = await ctx.ledger();
    if (!ledger) return;
    await ledger.settle(byState.delivered, 'delivered');
    await ledger.settle(byState.uncertain, 'uncertain');
    await ledger.settle(byState.released, 'released');
  };

  const onTime = async (items: readonly BatchItem<SendItem<Tag>>[], outcomes: readonly UserOutcome[]) => {
    await settleLedger(items, outcomes);
    let firstError: unknown;
    items.forEach((batchItem, index) => {
      // Every user is routed even when recording one fails (a full disk): the first error stops the run after.
      try {
        routeOne(batchItem.tag, outcomes[index]!);
      } catch (error) {
        firstError ??= error;
      }
    });
    if (firstError !== undefined) throw firstError;
  };

  const routeOne = (item: SendItem<Tag>, outcome: UserOutcome) => {
    const events = item.events?.length ?? 0;
    if (outcome.status === 'unsent') {
      // Never sent before the run stopped: no line, no count; a re-run sends it.
      unsent++;
      return;
    }
    // Sent: handed to Insider (or, in a dry run, what would be), whatever it answered.
    summary.users.sent++;
    summary.events.sent += events;
    if (outcome.status === 'failed' || outcome.status === 'uncertain') {
      outputs.failed!.write({
        user: item.user,
        error: redact(outcome.error),
        status: outcome.httpStatus,
        attempts: outcome.attempts,
        ...(outcome.status === 'uncertain' ? { delivery_uncertain: true } : {}),
        ...spec.failedExtra?.(item.tag),
        account: outputs.account,
      });
    }
    if (outcome.status === 'succeeded') {
      summary.users.succeeded++;
      summary.events.succeeded += events;
      sample?.offer(item.user);
    } else if (outcome.status === 'failed') {
      summary.users.failed++;
      summary.events.failed += events;
    } else if (outcome.status === 'uncertain') {
      summary.users.uncertain++;
      summary.events.uncertain += events;
    }
    writeRows(
      outputs,
      item.audit,
      AUDIT_STATUS[outcome.status],
      'error' in outcome ? redact(outcome.error) : '',
      spec.auditByLine === true,
    );
    spec.settle?.(item.tag, outcome);
  };

  let unsent = 0;
  return { onTime, late: settleLedger, unsent: () => unsent };
}
