// Sends batches to Insider with at most `concurrency` requests in flight, and turns every answer
// into one outcome per user: 200 bodies are read user by user (fail.errors), a 400 is split in
// halves until the users it objects to are isolated, and a batch that still fails after every
// retry reports its users as failed. A dry run takes the same path and skips only the POST.

import pLimit from 'p-limit';
import { UnavailableError } from '../errors.js';
import { batchBytes, INSIDER_MAX_BYTES, type Batch, type BatchItem } from '../core/batcher.js';
import { postUpsert, readUpsertResponse } from '../insider/upsert.js';
import { redact } from '../io/redact.js';
import type { ApiClient } from '../io/http.js';

export type Outcome =
  | { status: 'succeeded' }
  | { status: 'would_send' }
  | {
      status: 'failed';
      error: string;
      httpStatus: number | null;
      attempts: number;
      /** Insider counted a failure without naming the user: it may have stored this one after all. */
      uncertain?: true;
    };

export interface UploaderOptions<Tag> {
  /** Absent in a dry run: nothing is posted. */
  client?: ApiClient;
  concurrency: number;
  skipHook: boolean;
  maxBytes?: number;
  /** Called once per user, in no particular order across batches. */
  onOutcome: (item: BatchItem<Tag>, outcome: Outcome) => void;
}

export class Uploader<Tag> {
  private readonly limit;
  private readonly inFlight = new Set<Promise<void>>();
  /** The error that stops the run (auth rejected, Insider unavailable); set once. */
  fatal: Error | undefined;

  constructor(private readonly options: UploaderOptions<Tag>) {
    this.limit = pLimit(options.concurrency);
  }

  /** Queues a batch; waits while `concurrency` batches are already in flight (backpressure). */
  async submit(batch: Batch<Tag>): Promise<void> {
    while (this.inFlight.size >= this.options.concurrency) await Promise.race(this.inFlight);
    const task = this.limit(() => this.send(batch.items)).catch((error: unknown) => {
      this.fatal ??= error instanceof Error ? error : new Error(String(error));
    });
    const tracked = task.finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }

  /** Waits for every batch in flight. */
  async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.race(this.inFlight);
  }

  private report(items: readonly BatchItem<Tag>[], outcome: Outcome | ((index: number) => Outcome)): void {
    // Every user is reported even when recording one fails (a full disk): a delivered user left
    // unreported would lose its ledger keys, and its events would be sent again. The first error
    // is thrown once all are reported.
    let firstError: unknown;
    items.forEach((item, index) => {
      try {
        this.options.onOutcome(item, typeof outcome === 'function' ? outcome(index) : outcome);
      } catch (error) {
        firstError ??= error;
      }
    });
    if (firstError !== undefined) throw firstError;
  }

  private async send(items: readonly BatchItem<Tag>[]): Promise<void> {
    const { client, skipHook } = this.options;
    const maxBytes = this.options.maxBytes ?? INSIDER_MAX_BYTES;
    if (items.length === 1 && batchBytes(items) > maxBytes) {
      const error = `user is ${items[0]!.bytes} bytes, over Insider's ${maxBytes}-byte request limit`;
      return this.report(items, { status: 'failed', error, httpStatus: null, attempts: 0 });
    }
    if (!client) return this.report(items, { status: 'would_send' });
    if (this.fatal) throw this.fatal;

    let response;
    try {
      response = await postUpsert(client, items, skipHook);
    } catch (error) {
      if (error instanceof UnavailableError) {
        // These users are written to the failed file (for `retry`), and the run stops: an Insider
        // that fails this long would fail every batch after it too.
        try {
          this.report(items, { status: 'failed', error: error.message, httpStatus: error.status, attempts: error.attempts });
        } catch {
          // Insider's outage is what stopped the run (exit 3, resumable); unrecorded users stay unconfirmed.
        }
      }
      throw error;
    }
    if (response.status === 400 || response.status === 413) {
      if (items.length === 1) {
        const error = redact(`Insider refused this user: HTTP ${response.status} ${JSON.stringify(response.body)}`);
        return this.report(items, { status: 'failed', error, httpStatus: response.status, attempts: response.attempts });
      }
      const half = Math.ceil(items.length / 2);
      await this.send(items.slice(0, half));
      return this.send(items.slice(half));
    }
    if (response.status < 200 || response.status >= 300) throw client.unexpected(response, 'upsert');

    const reading = readUpsertResponse(response.body, items.length);
    // A 200 we cannot read says nothing of any user: stop rather than count them delivered. Their
    // pages stay unconfirmed, so a resume sends them again.
    if (!reading.readable) throw client.unexpected(response, 'upsert answered 200 without a result');
    // Failures Insider counts but does not name could be any user of the batch: none of them is
    // counted delivered; all go to the failed file, marked uncertain. Upserting a user twice is
    // harmless, so `retry` sends them again; their events only with --force (no event twice).
    const unattributed = Math.min(reading.failed, items.length) - reading.errorsByIndex.size;
    const unnamed =
      unattributed > 0
        ? `Insider reported ${unattributed} failure(s) in this batch without saying which user: this one may be stored, or not`
        : undefined;
    this.report(items, (index): Outcome => {
      const messages = reading.errorsByIndex.get(index);
      if (messages) return { status: 'failed', error: redact(messages.join('; ')), httpStatus: 200, attempts: response.attempts };
      if (unnamed) return { status: 'failed', error: unnamed, httpStatus: 200, attempts: response.attempts, uncertain: true };
      return { status: 'succeeded' };
    });
  }
}

