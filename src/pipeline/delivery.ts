// The sink every command shares: users are batched, uploaded (or, in a dry run, only counted),
// and each user's outcome is routed to the failed file, the audit CSV and the caller's bookkeeping.

import type { JsonlWriter, FailedRecord } from '../io/jsonl.js';
import { Batcher, INSIDER_MAX_USERS, toBatchItem, type BatchItem } from '../core/batcher.js';
import type { InsiderUser } from '../core/transform.js';
import { redact } from '../io/redact.js';
import type { ApiClient } from '../io/http.js';
import { Uploader, type Outcome } from './uploader.js';

export interface DeliveryOptions<Tag> {
  insider?: ApiClient;
  concurrency: number;
  batchSize: number;
  skipHook: boolean;
  failedFile: JsonlWriter<FailedRecord>;
  /** Called once per user with its outcome, after the failed file has it; not after wrapUp gave up. */
  onOutcome: (item: BatchItem<Tag>, outcome: Outcome) => void;
  maxBytes?: number;
  /** Extra fields for the user's failed-file line (replay adds its event keys). */
  failedExtra?: (tag: Tag) => Record<string, unknown>;
  /**
   * Called for every outcome, first, even one that arrives after wrapUp stopped waiting (when the
   * run's files are closed): for what must never miss a delivery, the replay ledger.
   */
  recordDelivery?: (item: BatchItem<Tag>, outcome: Outcome) => void;
}

export class Delivery<Tag> {
  private readonly batcher: Batcher<Tag>;
  private readonly uploader: Uploader<Tag>;
  /** Set when wrapUp gave up waiting: outcomes arriving later are ignored (their files are closed). */
  private closed = false;

  constructor(options: DeliveryOptions<Tag>) {
    this.batcher = new Batcher<Tag>(Math.min(options.batchSize, INSIDER_MAX_USERS), options.maxBytes);
    this.uploader = new Uploader<Tag>({
      ...(options.insider ? { client: options.insider } : {}),
      concurrency: options.concurrency,
      skipHook: options.skipHook,
      ...(options.maxBytes ? { maxBytes: options.maxBytes } : {}),
      onOutcome: (item, outcome) => {
        // Otherwise unrecorded, such a user stays unconfirmed, so a resume sends it again: nothing
        // is lost, and upserting a user twice is harmless (sending an event twice is not).
        options.recordDelivery?.(item, outcome);
        if (this.closed) return;
        if (outcome.status === 'failed') {
          options.failedFile.write({
            user: item.user,
            error: redact(outcome.error),
            status: outcome.httpStatus,
            attempts: outcome.attempts,
            ...(outcome.uncertain ? { delivery_uncertain: true } : {}),
            ...options.failedExtra?.(item.tag),
          });
        }
        options.onOutcome(item, outcome);
      },
    });
  }

  /** The error that stopped uploads (auth rejected, Insider unavailable), if any. */
  get fatal(): Error | undefined {
    return this.uploader.fatal;
  }

  /** Queues a user; waits when `concurrency` requests are already in flight. */
  async add(user: InsiderUser, tag: Tag): Promise<void> {
    if (this.uploader.fatal) throw this.uploader.fatal;
    const batch = this.batcher.add(toBatchItem(user, tag));
    if (batch) await this.uploader.submit(batch);
  }

  /** Sends what is still batched and waits for every request in flight. */
  async finish(): Promise<void> {
    const batch = this.batcher.flush();
    if (batch && !this.uploader.fatal) await this.uploader.submit(batch);
    await this.uploader.drain();
    if (this.uploader.fatal) throw this.uploader.fatal;
  }

  /**
   * Stopping early. Interrupted: what is batched is still sent, so every record read so far is
   * settled and a resume repeats nothing. Stopped by an error: only requests in flight finish.
   * Either way the wait is bounded; past it the state holds the last confirmed position.
   */
  async wrapUp(interrupted: boolean, graceMs = 10_000): Promise<void> {
    const settled = interrupted ? this.finish() : this.uploader.drain();
    const timer = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([settled.catch(() => undefined), timer]);
    this.closed = true;
  }
}
