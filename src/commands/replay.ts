// `yotpo-insider replay <file|->`: saved Yotpo loyalty webhooks become Insider events, exactly once.
//
// The input is read twice, streamed: a first pass finds each user's newest event (its attributes
// win, so an old event never overwrites newer profile values); the second pass sends every event,
// grouping a user's events that fall in one batch into one user object, in timestamp order. The
// ledger in the state file makes a second replay of the same file send nothing new.

import { join, resolve } from 'node:path';
import { EVENT_COLUMNS, eventRow, type AuditStatus } from '../io/csv.js';
import { JsonlWriter } from '../io/jsonl.js';
import { loadConfig } from '../config.js';
import { InterruptedError, UsageError } from '../errors.js';
import { EVENT_NAMES } from '../core/table.js';
import { toInsiderUser, type FieldWarnings, type FlatAttributes, type InsiderEvent } from '../core/transform.js';
import { toEpochMs } from '../core/values.js';
import { Delivery } from '../pipeline/delivery.js';
import { Ledger } from '../pipeline/ledger.js';
import { Progress } from '../pipeline/progress.js';
import { Reporter, type Io } from '../pipeline/report.js';
import { assertWritable, privateTempDir, removeTempDir, writeLines } from '../io/files.js';
import { auditFor, auditStatus, closeOutputs, COMMON_DEFAULTS, deliverySettings, failedFileFor, fileTimestamp, finishRun, makeClients, type CommonOptions, type RunControl } from '../pipeline/run.js';
import { addReason, newSummary, type RunSummary } from '../pipeline/summary.js';
import { readLines } from '../io/lines.js';
import { parseWebhookLine, type ParsedLine, type ReplayOptions as LineOptions } from '../core/webhook.js';

export interface ReplayOptions extends CommonOptions {
  rejects?: string;
  from?: string;
  to?: string;
  /** Insider or Yotpo event names. */
  only?: string[];
  force: boolean;
  allowUnknownEvents: boolean;
  timestampFallback?: 'now';
  birthdayPlaceholderYear?: number;
}

export const REPLAY_DEFAULTS: ReplayOptions = { ...COMMON_DEFAULTS, force: false, allowUnknownEvents: false };

/** Insider keeps custom events 90 days by default and silently drops older ones. */
const EVENT_RETENTION_MS = 90 * 24 * 3600 * 1000;

interface QueuedEvent {
  line: number;
  key: string;
  epochMs: number;
  event: InsiderEvent;
  params: FlatAttributes;
  attributes: FlatAttributes;
}

interface Tag {
  email: string;
  events: QueuedEvent[];
}

/** stdin can be read only once: it is copied (as lines) to a private temporary file first. */
async function spoolStdin(): Promise<{ path: string; remove: () => void }> {
  const dir = privateTempDir();
  const path = join(dir, 'stdin.jsonl');
  async function* texts() {
    for await (const { text } of readLines('-')) yield text;
  }
  try {
    await writeLines(path, texts());
  } catch (error) {
    removeTempDir(dir);
    throw error;
  }
  return { path, remove: () => removeTempDir(dir) };
}

function dateOption(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = toEpochMs(value);
  if (ms === undefined) throw new UsageError(`${flag} ${value} is not a date (use e.g. 2026-09-01 or 2026-09-01T12:00:00Z)`);
  return ms;
}

export async function runReplay(
  input: string,
  partial: Partial<ReplayOptions>,
  io: Io,
  control: RunControl = {},
): Promise<RunSummary> {
  const options: ReplayOptions = { ...REPLAY_DEFAULTS, ...partial };
  const startedAt = Date.now();
  const reporter = new Reporter(io, { quiet: options.quiet, verbose: options.verbose });
  const summary = newSummary('replay', options.dryRun);
  const fromMs = dateOption('--from', options.from);
  const toMs = dateOption('--to', options.to);
  const only = options.only ? new Set(options.only.map((name) => name.trim()).filter(Boolean)) : undefined;
  if (only) {
    const known = new Set(EVENT_NAMES.flatMap((row) => [row.insiderName, row.yotpoName]).filter(Boolean));
    const unknown = [...only].filter((name) => !known.has(name));
    if (unknown.length > 0 && !options.allowUnknownEvents) {
      throw new UsageError(`--only names unknown events: ${unknown.join(', ')} (see yotpo-insider mapping)`);
    }
  }
  // A replay dry run needs no credentials at all.
  const config = loadConfig(options.dryRun ? [] : ['insider'], io);
  const clients = makeClients(config, options, {}, reporter);

  const inputPath = input === '-' ? '-' : resolve(io.cwd, input);
  const stamp = fileTimestamp(new Date(startedAt));
  const rejectsPath = resolve(io.cwd, options.rejects ?? (input === '-' ? `yotpo-insider-rejects-${stamp}.jsonl` : `${input}.rejects.jsonl`));
  assertWritable(rejectsPath, 'the rejects file');
  const rejects = new JsonlWriter<{ line: number; reason: string; raw: string }>(rejectsPath);
  const failedFile = failedFileFor(options, io, new Date(startedAt));
  const statePath = resolve(io.cwd, options.state);
  const ledger = await Ledger.open(statePath, { forWriting: !options.dryRun });
  summary.state_file = options.dryRun ? null : statePath;
  const audit = auditFor('replay', options, io, new Date(startedAt), EVENT_COLUMNS);
  if (options.dryRun) reporter.info('dry run: every line is read, validated, mapped and batched; nothing is sent to Insider');

  const lineOptions: LineOptions = {
    allowUnknownEvents: options.allowUnknownEvents,
    now: new Date(startedAt),
    ...(options.timestampFallback ? { timestampFallback: options.timestampFallback } : {}),
    ...(options.birthdayPlaceholderYear ? { placeholderYear: options.birthdayPlaceholderYear } : {}),
  };
  const warnings: FieldWarnings = new Map();
  const progress = new Progress(io, { quiet: options.quiet, records: 'events' });
  const showProgress = () =>
    progress.update({
      reviewPages: 0,
      reviews: 0,
      customersRead: summary.events.read,
      sent: summary.users.sent,
      succeeded: summary.users.succeeded,
      failed: summary.users.failed,
    });
  let spooled: { path: string; remove: () => void } | undefined;
  let oldEvents = 0;

  const auditEvent = (status: AuditStatus, reason: string, line: number, email?: string, queued?: QueuedEvent) =>
    audit?.write(
      eventRow(line, status, reason, email, queued?.event.event_name, queued?.event.timestamp, queued?.params ?? {}, queued?.attributes ?? {}),
    );

  const delivery = new Delivery<Tag>({
    ...deliverySettings(options, clients, failedFile),
    failedExtra: (tag) => ({ event_keys: tag.events.map((queued) => queued.key) }),
    recordDelivery: (item, outcome) => ledger.record(item.tag.events.map((queued) => queued.key), outcome),
    onOutcome: (item, outcome) => {
      const { events } = item.tag;
      if (outcome.status === 'succeeded') {
        summary.users.succeeded++;
        summary.events.succeeded += events.length;
      } else if (outcome.status === 'failed') {
        summary.users.failed++;
        summary.events.failed += events.length;
      }
      const status = auditStatus(outcome);
      for (const queued of events) auditEvent(status, outcome.status === 'failed' ? outcome.error : '', queued.line, item.tag.email, queued);
    },
  });

  // Events waiting to be grouped into user objects; flushed every batchSize users.
  let pending = new Map<string, { events: QueuedEvent[]; attributes?: FlatAttributes }>();
  const flush = async () => {
    const chunk = pending;
    pending = new Map();
    for (const [email, entry] of chunk) {
      entry.events.sort((a, b) => a.epochMs - b.epochMs || a.line - b.line);
      const user = toInsiderUser(email, entry.attributes ?? {});
      user.events = entry.events.map((queued) => queued.event);
      summary.users.read++;
      summary.users.sent++;
      await delivery.add(user, { email, events: entry.events });
    }
    await audit?.drained();
    showProgress();
  };

  let error: unknown;
  try {
    const path = inputPath === '-' ? (spooled = await spoolStdin()).path : inputPath;

    // Why an event line is not sent, or null when it is; both passes ask the same question, so the
    // newest event of a user is chosen among the events actually sent.
    const skipReason = (parsed: Extract<ParsedLine, { kind: 'event' }>, seen: Set<string>): string | null => {
      if ((fromMs !== undefined && parsed.epochMs < fromMs) || (toMs !== undefined && parsed.epochMs > toMs)) {
        return 'outside --from/--to';
      }
      if (only && !only.has(parsed.event.event_name) && !only.has(parsed.yotpoName)) return 'not in --only';
      if (seen.has(parsed.key)) return 'duplicate';
      seen.add(parsed.key);
      if (!options.force && ledger.has(parsed.key)) return 'already delivered';
      // Insider may hold it already: `retry --force` of the failed file sends it.
      if (!options.force && ledger.isUncertain(parsed.key)) return 'delivery uncertain';
      return null;
    };

    // Pass 1: the line of each user's newest event that will be sent.
    const newest = new Map<string, { epochMs: number; line: number }>();
    const seenFirstPass = new Set<string>();
    for await (const { lineNumber, text } of readLines(path)) {
      if (text.trim() === '') continue;
      const parsed = parseWebhookLine(text, lineOptions, new Map());
      if (parsed.kind !== 'event' || skipReason(parsed, seenFirstPass) !== null) continue;
      const best = newest.get(parsed.email);
      if (!best || parsed.epochMs >= best.epochMs) newest.set(parsed.email, { epochMs: parsed.epochMs, line: lineNumber });
    }
    seenFirstPass.clear();

    // Pass 2: every line is sent, skipped with a reason, or rejected.
    const seen = new Set<string>();
    for await (const { lineNumber, text } of readLines(path)) {
      if (control.signal?.aborted) throw new InterruptedError();
      if (delivery.fatal) throw delivery.fatal;
      if (text.trim() === '') continue;
      summary.events.read++;
      const parsed = parseWebhookLine(text, lineOptions, warnings);
      if (parsed.kind === 'rejected') {
        summary.events.rejected++;
        addReason(summary.rejected_reasons, parsed.reason);
        rejects.write({ line: lineNumber, reason: parsed.reason, raw: text });
        auditEvent('rejected', `${parsed.reason}: ${parsed.detail}`, lineNumber);
        continue;
      }
      const skip = (reason: string, queued?: QueuedEvent) => {
        summary.events.skipped++;
        addReason(summary.skipped_reasons, reason);
        auditEvent('skipped', reason, lineNumber, parsed.email, queued);
      };
      if (parsed.kind === 'skipped') {
        skip(parsed.reason);
        continue;
      }
      const queued: QueuedEvent = {
        line: lineNumber,
        key: parsed.key,
        epochMs: parsed.epochMs,
        event: parsed.event,
        params: parsed.params,
        attributes: parsed.attributes,
      };
      const reason = skipReason(parsed, seen);
      if (reason !== null) {
        skip(reason, queued);
        continue;
      }
      if (parsed.epochMs < startedAt - EVENT_RETENTION_MS) oldEvents++;
      summary.events.sent++;
      let entry = pending.get(parsed.email);
      if (!entry) pending.set(parsed.email, (entry = { events: [] }));
      entry.events.push(queued);
      if (newest.get(parsed.email)?.line === lineNumber) entry.attributes = parsed.attributes;
      if (pending.size >= options.batchSize) await flush();
    }
    await flush();
    await delivery.finish();
  } catch (caught) {
    error = caught;
    await delivery.wrapUp(caught instanceof InterruptedError);
  } finally {
    spooled?.remove();
  }
  showProgress();
  progress.stop();
  error = await closeOutputs(error, ledger, rejects, failedFile, audit);

  if (oldEvents > 0) {
    summary.warnings.push(
      `${oldEvents} event(s) are older than 90 days: Insider keeps custom events 90 days by default and silently drops older ones (ask Insider for a longer retention first)`,
    );
  }
  summary.failed_file = failedFile.writtenPath;
  summary.rejects_file = rejects.writtenPath;
  summary.audit_file = audit && audit.path !== '-' ? audit.path : null;
  summary.field_warnings = Object.fromEntries(warnings);
  if (options.dryRun) summary.events.succeeded = 0;
  return finishRun(summary, error, clients.counters, startedAt, reporter, io, options, `yotpo-insider replay ${input === '-' ? '- (with the same input)' : input}`);
}
