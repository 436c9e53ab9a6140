// The sink of every run: users are batched (≤ batch size, ≤ Insider's byte limit), uploaded with
// at most `concurrency` requests in flight (p-limit is the one bound), and each user's outcome is
// handed back in batch order. A dry run takes the same path; only the POST is skipped.

import { setTimeout as sleep } from 'node:timers/promises';
import pLimit from 'p-limit';
import { Batcher, INSIDER_MAX_USERS, toBatchItem, type BatchItem } from '../core/batcher.js';
import { uploadBatch, type UploadSettings, type UserOutcome } from '../insider/upload.js';
import type { SendItem } from './items.js';

export interface DeliverySettings extends UploadSettings {
  concurrency: number;
  batchSize: number;
  /**
   * listen: a batch that meets a fatal error (credentials rejected, Insider unavailable) is kept and
   * tried again with backoff until it is answered or the run stops, instead of stopping the run.
   */
  persist?: { onDegraded: (error: Error) => void; onHealthy: () => void; stop: AbortSignal };
}

const PERSIST_BACKOFF_MS = [1000, 2000, 5000, 10_000, 30_000, 60_000];

/** Called once per answered batch with each user's outcome; what it throws stops the run. */
export type BatchOutcomes<Tag> = (items: readonly BatchItem<SendItem<Tag>>[], outcomes: readonly UserOutcome[]) => Promise<void>;

export class Delivery<Tag> {
  private readonly batcher: Batcher<SendItem<Tag>>;
  private readonly limit;
  private readonly running = new Set<Promise<void>>();
  /** The error that stops the run (credentials, Insider unavailable, a full disk); set once. */
  fatal: Error | undefined;
  /** Set when the wrap-up stopped waiting: answers arriving later are not routed (outputs are closed). */
  private abandoned = false;

  constructor(
    private readonly settings: DeliverySettings,
    private readonly onOutcomes: BatchOutcomes<Tag>,
    private readonly onFatal: (error: Error) => void,
    /** Answers that arrive after the wrap-up gave up: only what must never be missed (the ledger). */
    private readonly onLateOutcomes: BatchOutcomes<Tag>,
  ) {
    this.batcher = new Batcher(Math.min(settings.batchSize, INSIDER_MAX_USERS), settings.maxBytes);
    this.limit = pLimit(settings.concurrency);
  }

  /** Queues a user; waits while every upload slot is busy and one batch is already waiting. */
  async add(item: SendItem<Tag>): Promise<void> {
    if (this.fatal) throw this.fatal;
    const batch = this.batcher.add(toBatchItem(item.user, item));
    if (batch) await this.submit(batch.items);
  }

  /** Sends what is batched now, without waiting for a full batch (a live source gone quiet). */
  async flush(): Promise<void> {
    const batch = this.batcher.flush();
    if (batch && !this.fatal) await this.submit(batch.items);
  }

  /** Sends what is batched and waits for every upload. */
  async finish(): Promise<void> {
    const batch = this.batcher.flush();
    if (batch && !this.fatal) await this.submit(batch.items);
    await this.drain();
    if (this.fatal) throw this.fatal;
  }

  /**
   * Stopping early. Interrupted: what is batched is still sent, so everything read so far is
   * settled. Stopped by an error: only uploads in flight finish. Either way the wait is bounded.
   */
  async wrapUp(interrupted: boolean, graceMs = 10_000): Promise<void> {
    const settled = interrupted ? this.finish() : this.dropBatched().then(() => this.drain());
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([settled.catch(() => undefined), bound]);
    clearTimeout(timer);
    this.abandoned = true;
  }

  /** Stopped by an error: what is batched is never sent; its users are routed unsent (the ledger gives their keys back). */
  private async dropBatched(): Promise<void> {
    const batch = this.batcher.flush();
    if (!batch) return;
    const error = this.fatal?.message ?? 'the run stopped before this batch was sent';
    await this.route(
      batch.items,
      batch.items.map((): UserOutcome => ({ status: 'unsent', error })),
    );
  }

  private async submit(items: BatchItem<SendItem<Tag>>[]): Promise<void> {
    const task: Promise<void> = this.limit(() => this.upload(items)).finally(() => this.running.delete(task));
    this.running.add(task);
    // Backpressure from p-limit's own queue: a no-op queued behind the batches runs only once a slot is free.
    if (this.limit.pendingCount > 0) await this.limit(() => undefined);
  }

  private async drain(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
  }

  private async upload(items: BatchItem<SendItem<Tag>>[]): Promise<void> {
    if (this.fatal) {
      // The run is stopping: this batch was never sent; its users stay unconfirmed for a resume.
      const outcomes = items.map((): UserOutcome => ({ status: 'unsent', error: this.fatal!.message }));
      await this.route(items, outcomes);
      return;
    }
    const persist = this.settings.persist;
    let pending = items;
    for (let round = 0; ; round++) {
      const result = await uploadBatch(pending, this.settings);
      if (!result.fatal || !persist) {
        if (result.fatal) this.stop(result.fatal);
        else persist?.onHealthy();
        await this.route(pending, result.outcomes);
        return;
      }
      // Kept for another try: users Insider did not process. What it did answer is routed now.
      const retry = pending.filter((_, index) => isRetriable(result.outcomes[index]!));
      const answered = pending.flatMap((item, index) =>
        isRetriable(result.outcomes[index]!) ? [] : [{ item, outcome: result.outcomes[index]! }],
      );
      if (answered.length > 0)
        await this.route(
          answered.map((entry) => entry.item),
          answered.map((entry) => entry.outcome),
        );
      persist.onDegraded(result.fatal);
      pending = retry;
      if (pending.length === 0) return;
      const stopped = await sleep(PERSIST_BACKOFF_MS[Math.min(round, PERSIST_BACKOFF_MS.length - 1)]!, false, {
        signal: persist.stop,
      }).catch(() => true);
      if (stopped) {
        await this.route(
          pending,
          pending.map((): UserOutcome => ({ status: 'unsent', error: 'the run stopped while Insider was unavailable' })),
        );
        return;
      }
    }
  }

  private async route(items: BatchItem<SendItem<Tag>>[], outcomes: readonly UserOutcome[]): Promise<void> {
    try {
      await (this.abandoned ? this.onLateOutcomes : this.onOutcomes)(items, outcomes);
    } catch (error) {
      this.stop(error instanceof Error ? error : new Error(String(error)));
    }
  }

  private stop(error: Error): void {
    if (this.fatal) return;
    this.fatal = error;
    this.onFatal(error);
  }
}

function isRetriable(outcome: UserOutcome): boolean {
  return outcome.status === 'unsent' || outcome.status === 'failed';
}
