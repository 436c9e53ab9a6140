// listen's forwarder as a source: the webhook archive read behind its writer, each envelope mapped
// as replay maps it, grouped per user and sent when a batch is full or 1 s after its first event.
// The position recorded in the store moves only over lines whose outcome is known, so a restart
// continues exactly after them; on start, archived events whose keys were released are sent too.

import { PageTracker } from '../core/page-tracker.js';
import type { ReplayOptions as LineOptions } from '../core/webhook.js';
import { writeFileAtomic } from '../io/durable.js';
import { tailArchive, type ArchiveLine, type ArchivePosition } from '../listen/tail.js';
import type { ArchiveProgress } from '../listen/archive.js';
import type { Item } from '../pipeline/items.js';
import type { RunContext } from '../pipeline/run-pipeline.js';
import { readFileSync } from 'node:fs';
import { EventChunk, newestAttributes, readEventLine, type EventTag } from './webhook-events.js';

/** Where the forwarder resumes: the archive position after the last line whose outcome is known. */
export class ForwardPosition {
  private readonly tracker = new PageTracker(1);
  private seq = 0;
  private lastSave = 0;
  /** Lines finished (sent, skipped or rejected) by this process. */
  forwarded = 0;

  constructor(
    private readonly file: string,
    private position: ArchivePosition | undefined,
  ) {}

  static read(file: string): ArchivePosition | undefined {
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as ArchivePosition;
    } catch {
      return undefined;
    }
  }

  get current(): ArchivePosition | undefined {
    return this.position;
  }

  /** A line read: its number in this run, for the events it holds. */
  next(): number {
    return ++this.seq;
  }

  /** Every event of line `seq` is handed over (or it had none); the archive continues at `after`. */
  lineRead(seq: number, after: ArchivePosition): void {
    if (this.tracker.pageRead(seq, JSON.stringify(after))) this.moved();
  }

  addEvent(seq: number): void {
    this.tracker.addUser(seq);
  }

  settleEvent(seq: number): void {
    if (this.tracker.settleUser(seq)) this.moved();
  }

  save(): void {
    if (this.position) writeFileAtomic(this.file, `${JSON.stringify(this.position)}\n`, 'the forwarder position');
    this.lastSave = Date.now();
  }

  private moved(): void {
    const confirmed = this.tracker.confirmed;
    if (!confirmed?.resumeAfter) return;
    const before = this.forwarded;
    this.forwarded = confirmed.seq;
    if (this.forwarded === before) return;
    this.position = JSON.parse(confirmed.resumeAfter) as ArchivePosition;
    if (Date.now() - this.lastSave >= 1000) this.save();
  }
}

/** Archive lines after `position` (the whole archive without one): what a starting forwarder has left to read. */
export async function linesAfter(dir: string, position: ArchivePosition | undefined): Promise<number> {
  let lines = 0;
  for await (const _line of tailArchive(dir, position, { follow: false })) lines++;
  return lines;
}

export interface ForwardPlan {
  dir: string;
  lineOptions: Omit<LineOptions, 'now'>;
  position: ForwardPosition;
  /** The writer in this process: lines are read once an fsync covers them. */
  durable: ArchiveProgress;
  /** Aborted to stop following: what is archived by then is still read and sent. */
  drain: AbortSignal;
  batchSize: number;
  /** A batch goes out this long after its first event at the latest. */
  lingerMs?: number;
}

/** Events of a line carry the line's number, so the position moves once they are settled. */
export type ForwardTag = EventTag & { lines: number[] };

export async function* archiveSource(ctx: RunContext, plan: ForwardPlan): AsyncGenerator<Item<ForwardTag>> {
  const ledger = await ctx.ledger();
  yield* releasedEvents(ctx, plan);
  const chunk = new EventChunk({}, newestAttributes);
  // The archive lines each queued event came from (a key twice: a delivery Yotpo repeated).
  const lines = new Map<string, number[]>();
  const lineOf = (key: string) => lines.get(key)?.shift();
  let firstQueuedAt: number | undefined;
  let after = plan.position.current;
  const flush = async function* (): AsyncGenerator<Item<ForwardTag>> {
    for await (const item of chunk.flush(ledger)) {
      if (item.kind === 'send')
        yield { ...item, tag: { ...item.tag, lines: item.tag.events.flatMap((queued) => lineOf(queued.ref.key) ?? []) } };
      else {
        // A skipped event's line is finished: the position may pass it.
        const seq = item.kind === 'skip' && item.key ? lineOf(item.key) : undefined;
        if (seq !== undefined) plan.position.settleEvent(seq);
        yield item;
      }
    }
    lines.clear();
    firstQueuedAt = undefined;
    yield { kind: 'flush' };
  };

  const follow = tailArchive(plan.dir, after, { follow: true, signal: plan.drain, durable: plan.durable });
  for (const source of [follow, undefined]) {
    // After the drain signal, one last read to the end of what is archived.
    const reader = source ?? tailArchive(plan.dir, after, { follow: false, durable: plan.durable });
    let next = reader.next();
    for (;;) {
      const waitMs = firstQueuedAt === undefined ? undefined : Math.max(0, firstQueuedAt + (plan.lingerMs ?? 1000) - Date.now());
      const result = await raceTimeout(next, waitMs);
      if (result === 'timeout') {
        yield* flush();
        continue;
      }
      if (result.done) break;
      next = reader.next();
      after = result.value.position;
      yield* lineItems(ctx, plan, result.value, chunk, lines);
      if (chunk.users > 0) firstQueuedAt ??= Date.now();
      if (chunk.users >= plan.batchSize) yield* flush();
    }
    if (ctx.signal.aborted) break;
  }
  yield* flush();
}

function* lineItems(
  ctx: RunContext,
  plan: ForwardPlan,
  { line, position }: ArchiveLine,
  chunk: EventChunk,
  lines: Map<string, number[]>,
): Generator<Item<ForwardTag>> {
  const seq = plan.position.next();
  ctx.summary.events.read++;
  const read = readEventLine(line, seq, { ...plan.lineOptions, now: new Date() }, ctx.warnings);
  if ('kind' in read) {
    if (read.kind === 'reject')
      yield {
        ...read,
        record: { received_at: new Date().toISOString(), reason: read.reason, raw: line.slice(0, 4096), archive: position },
      };
    else yield read as Item<ForwardTag>;
  } else {
    plan.position.addEvent(seq);
    lines.set(read.ref.key, [...(lines.get(read.ref.key) ?? []), seq]);
    chunk.add(read);
  }
  plan.position.lineRead(seq, position);
}

/** Archived events whose keys were released (verify --uncertain, retry --force): sent again at start. */
async function* releasedEvents(ctx: RunContext, plan: ForwardPlan): AsyncGenerator<Item<ForwardTag>> {
  const ledger = await ctx.ledger();
  if (!ledger || ledger.counts().released === 0 || !plan.position.current) return;
  const chunk = new EventChunk({}, newestAttributes);
  const end = plan.position.current;
  for await (const { line, position } of tailArchive(plan.dir, undefined, { follow: false, durable: plan.durable })) {
    if (position.file > end.file || (position.file === end.file && position.offset > end.offset)) break;
    const read = readEventLine(line, 0, { ...plan.lineOptions, now: new Date() });
    if ('kind' in read || ledger.stateOf(read.ref.key) !== 'released') continue;
    chunk.add(read);
    if (chunk.users >= plan.batchSize) yield* tagged(chunk.flush(ledger));
  }
  yield* tagged(chunk.flush(ledger));
}

async function* tagged(items: AsyncIterable<Item<EventTag>>): AsyncGenerator<Item<ForwardTag>> {
  for await (const item of items) yield item.kind === 'send' ? { ...item, tag: { ...item.tag, lines: [] } } : item;
}

async function raceTimeout<T>(promise: Promise<T>, ms: number | undefined): Promise<T | 'timeout'> {
  if (ms === undefined) return promise;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
