// Saved Yotpo webhooks → Insider events, for replay and listen's forwarder: every line is sent,
// skipped with a counted reason, or rejected. Events are grouped per user in chunks of at most a
// batch of users; each chunk's event keys are reserved in the shared ledger before its users are
// yielded, so no event another run delivered, holds or is sending goes out again.

import { toInsiderUser, type FieldWarnings, type FlatAttributes, type InsiderEvent } from '../core/transform.js';
import { parseWebhookLine, type ReplayOptions as LineOptions } from '../core/webhook.js';
import type { Item } from '../pipeline/items.js';
import type { EventRef, Ledger, Reservation, ResendChoice } from '../state/ledger.js';
import { eventAudit, type EventAuditInput } from './audit-rows.js';

export interface QueuedEvent {
  line: number;
  /** The Yotpo name or topic the event was identified by (for --only). */
  yotpoName: string;
  ref: EventRef;
  epochMs: number;
  event: InsiderEvent;
  params: FlatAttributes;
  attributes: FlatAttributes;
  omitted: FieldWarnings;
}

/** What a replayed user carries back to its outcome: its events, for the failed file and the ledger. */
export interface EventTag {
  email: string;
  events: QueuedEvent[];
}

export interface EventFilters {
  fromMs?: number | undefined;
  toMs?: number | undefined;
  only?: ReadonlySet<string> | undefined;
}

/** Why an event is not sent before the ledger is asked, or null. */
export function filterReason(queued: QueuedEvent, filters: EventFilters): string | null {
  if ((filters.fromMs !== undefined && queued.epochMs < filters.fromMs) || (filters.toMs !== undefined && queued.epochMs > filters.toMs))
    return 'outside --from/--to';
  if (filters.only && !filters.only.has(queued.event.event_name) && !filters.only.has(queued.yotpoName)) return 'not in --only';
  return null;
}

const LEDGER_REASON: Record<Exclude<Reservation, 'reserved'>, string> = {
  'already delivered': 'already delivered',
  'delivery uncertain': 'delivery uncertain',
  'in flight elsewhere': 'being sent by another run',
};

export function auditInput(queued: QueuedEvent): EventAuditInput {
  return {
    line: queued.line,
    email: queued.ref.email,
    eventName: queued.event.event_name,
    timestamp: queued.event.timestamp,
    params: queued.params,
    attributes: queued.attributes,
    omitted: queued.omitted,
  };
}

/** Parses one line into an item (reject, skip) or a queued event; its field warnings join `runWarnings` (none: a look-ahead pass). */
export function readEventLine(text: string, line: number, options: LineOptions, runWarnings?: FieldWarnings): Item<EventTag> | QueuedEvent {
  const omitted: FieldWarnings = new Map();
  const parsed = parseWebhookLine(text, options, omitted);
  if (runWarnings) for (const [key, count] of omitted) runWarnings.set(key, (runWarnings.get(key) ?? 0) + count);
  if (parsed.kind === 'rejected') {
    return {
      kind: 'reject',
      line,
      reason: parsed.reason,
      raw: text,
      audit: (status, reason) => eventAudit([{ line }])(status, `${reason}: ${parsed.detail}`),
    };
  }
  if (parsed.kind === 'skipped')
    return { kind: 'skip', unit: 'event', reason: parsed.reason, audit: eventAudit([{ line, email: parsed.email }]) };
  return {
    line,
    yotpoName: parsed.yotpoName,
    ref: { key: parsed.key, email: parsed.email, event_name: parsed.event.event_name, timestamp: parsed.event.timestamp },
    epochMs: parsed.epochMs,
    event: parsed.event,
    params: parsed.params,
    attributes: parsed.attributes,
    omitted,
  };
}

/**
 * Events waiting to be sent, grouped per user. `flush` reserves their keys and yields a skip for
 * each event the ledger refuses, then one user per member with the events reserved for it, in
 * timestamp order, carrying the attributes of its newest event (`attributesOf` may pick another).
 */
export class EventChunk {
  private byEmail = new Map<string, QueuedEvent[]>();

  constructor(
    private readonly resend: ResendChoice,
    private readonly attributesOf: (email: string, events: readonly QueuedEvent[]) => FlatAttributes,
  ) {}

  get users(): number {
    return this.byEmail.size;
  }

  add(queued: QueuedEvent): void {
    const list = this.byEmail.get(queued.ref.email);
    if (list) list.push(queued);
    else this.byEmail.set(queued.ref.email, [queued]);
  }

  async *flush(ledger: Ledger | undefined): AsyncGenerator<Item<EventTag>> {
    const chunk = this.byEmail;
    this.byEmail = new Map();
    if (chunk.size === 0) return;
    const verdicts = ledger
      ? await ledger.reserve(
          [...chunk.values()].flat().map((queued) => queued.ref),
          this.resend,
        )
      : undefined;
    // Keys reserved for users the run has not taken yet: a run that stops early gives them back
    // (they were never sent), instead of leaving them in flight for the next run to call uncertain.
    const notTaken = new Set([...(verdicts ?? [])].filter(([, verdict]) => verdict === 'reserved').map(([key]) => key));
    try {
      yield* this.items(chunk, verdicts, notTaken);
    } finally {
      if (ledger && notTaken.size > 0) await ledger.settle([...notTaken], 'released');
    }
  }

  private async *items(
    chunk: Map<string, QueuedEvent[]>,
    verdicts: ReadonlyMap<string, Reservation> | undefined,
    notTaken: Set<string>,
  ): AsyncGenerator<Item<EventTag>> {
    // One event twice in a chunk (a delivery Yotpo repeated): the first is sent, the second skipped.
    const taken = new Set<string>();
    for (const [email, queued] of chunk) {
      const reserved: QueuedEvent[] = [];
      for (const event of queued) {
        if (taken.has(event.ref.key)) {
          yield { kind: 'skip', unit: 'event', reason: 'duplicate', key: event.ref.key, audit: eventAudit([auditInput(event)]) };
          continue;
        }
        taken.add(event.ref.key);
        const verdict = verdicts?.get(event.ref.key) ?? 'reserved';
        if (verdict === 'reserved') {
          reserved.push(event);
          continue;
        }
        const user = toInsiderUser(email, event.attributes);
        user.events = [event.event];
        yield {
          kind: 'skip',
          unit: 'event',
          reason: LEDGER_REASON[verdict],
          key: event.ref.key,
          audit: eventAudit([auditInput(event)]),
          ...(verdict === 'delivery uncertain'
            ? {
                uncertainEvents: 1,
                failedLine: {
                  user,
                  error: 'Insider may hold this event already (an earlier delivery was uncertain)',
                  status: null,
                  attempts: 0,
                  delivery_uncertain: true,
                  event_keys: [event.ref.key],
                },
              }
            : {}),
        };
      }
      if (reserved.length === 0) continue;
      reserved.sort((a, b) => a.epochMs - b.epochMs || a.line - b.line);
      const user = toInsiderUser(email, this.attributesOf(email, reserved));
      user.events = reserved.map((queued) => queued.event);
      yield {
        kind: 'send',
        user,
        tag: { email, events: reserved },
        events: reserved.map((queued) => queued.ref),
        audit: eventAudit(reserved.map(auditInput)),
      };
      // Resumed: the run took this user (a run that stops resumes this generator with a return instead).
      for (const queued of reserved) notTaken.delete(queued.ref.key);
    }
  }
}

/** The newest of a user's events in a chunk: its attributes win (an old event never overwrites newer values). */
export function newestAttributes(_email: string, events: readonly QueuedEvent[]): FlatAttributes {
  let newest = events[0]!;
  for (const event of events) if (event.epochMs >= newest.epochMs) newest = event;
  return newest.attributes;
}
