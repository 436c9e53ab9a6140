// `replay`'s source: a saved webhook file read twice, streamed. The first pass finds each user's
// newest event that will be sent (its attributes win); the second sends every event, grouped per
// user in chunks whose keys the ledger reserves first.

import type { FlatAttributes } from '../core/transform.js';
import type { ReplayOptions as LineOptions } from '../core/webhook.js';
import { readLines } from '../io/lines.js';
import type { Item } from '../pipeline/items.js';
import type { RunContext } from '../pipeline/run-pipeline.js';
import type { ResendChoice } from '../state/ledger.js';
import { eventAudit } from './audit-rows.js';
import {
  auditInput,
  EventChunk,
  filterReason,
  newestAttributes,
  readEventLine,
  type EventFilters,
  type EventTag,
  type QueuedEvent,
} from './webhook-events.js';

export interface ReplayPlan {
  /** A file path (stdin is spooled to a private file first: it is read twice). */
  path: string;
  lineOptions: LineOptions;
  filters: EventFilters;
  resend: ResendChoice;
  batchSize: number;
}

/** Insider keeps custom events 90 days by default and silently drops older ones. */
const EVENT_RETENTION_MS = 90 * 24 * 3600 * 1000;

export async function* replaySource(ctx: RunContext, plan: ReplayPlan): AsyncGenerator<Item<EventTag>> {
  const ledger = await ctx.ledger();
  if (!ledger) ctx.reporter.info('no Insider variables: the ledger is not read, so events delivered before are listed as would_send');
  const sendable = (queued: QueuedEvent) => {
    const state = ledger?.stateOf(queued.ref.key);
    return (
      state === undefined ||
      state === 'released' ||
      (state === 'delivered' && plan.resend.delivered) ||
      (state === 'uncertain' && plan.resend.uncertain)
    );
  };

  // Pass 1: the line of each user's newest event that will be sent.
  const newest = new Map<string, { epochMs: number; line: number }>();
  const seenFirst = new Set<string>();
  for await (const { lineNumber, text } of readLines(plan.path)) {
    if (ctx.signal.aborted) return;
    if (text.trim() === '') continue;
    const read = readEventLine(text, lineNumber, plan.lineOptions);
    if ('kind' in read) continue;
    if (filterReason(read, plan.filters) !== null || seenFirst.has(read.ref.key) || !sendable(read)) continue;
    seenFirst.add(read.ref.key);
    const best = newest.get(read.ref.email);
    if (!best || read.epochMs >= best.epochMs) newest.set(read.ref.email, { epochMs: read.epochMs, line: lineNumber });
  }
  seenFirst.clear();

  // Pass 2: every line is sent, skipped with a reason, or rejected.
  const attributesOf = (email: string, events: readonly QueuedEvent[]): FlatAttributes => {
    const line = newest.get(email)?.line;
    return events.find((event) => event.line === line)?.attributes ?? (line === undefined ? newestAttributes(email, events) : {});
  };
  const chunk = new EventChunk(plan.resend, attributesOf);
  const seen = new Set<string>();
  let old = 0;
  for await (const { lineNumber, text } of readLines(plan.path)) {
    if (ctx.signal.aborted) break;
    if (text.trim() === '') continue;
    ctx.summary.events.read++;
    ctx.reserveAuditLine(lineNumber);
    const read = readEventLine(text, lineNumber, plan.lineOptions, ctx.warnings);
    if ('kind' in read) {
      yield read;
      continue;
    }
    const reason = filterReason(read, plan.filters) ?? (seen.has(read.ref.key) ? 'duplicate' : null);
    if (reason !== null) {
      yield { kind: 'skip', unit: 'event', reason, audit: eventAudit([auditInput(read)]) };
      continue;
    }
    seen.add(read.ref.key);
    if (read.epochMs < ctx.startedAt.getTime() - EVENT_RETENTION_MS) old++;
    chunk.add(read);
    if (chunk.users >= plan.batchSize) yield* chunk.flush(ledger);
    if (lineNumber % 1000 === 0) ctx.progress({});
  }
  yield* chunk.flush(ledger);
  ctx.progress({ phase: 'finishing' });
  if (old > 0) {
    ctx.summary.warnings.push(
      `${old} event(s) are older than 90 days: Insider keeps custom events 90 days by default and silently drops older ones (ask Insider for a longer retention first)`,
    );
  }
}
