// The failed file (SPEC §4): one JSON line per user that could not be delivered, created only when
// the first such user appears. `yotpo-insider retry` reads it back.

import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { dirname } from 'node:path';
import type { InsiderUser } from '../mapping/transform.js';
import { WriteGuard } from '../pipeline/streams.js';

export interface FailedRecord {
  user: InsiderUser;
  error: string;
  status: number | null;
  attempts: number;
  /** Replay: the ledger keys of the events this user carried, so `retry` can record them. */
  event_keys?: string[];
}

export class JsonlWriter<T> {
  private stream: WriteStream | undefined;
  private guard: WriteGuard | undefined;
  count = 0;

  constructor(readonly path: string) {}

  write(record: T): void {
    if (!this.stream) {
      mkdirSync(dirname(this.path), { recursive: true });
      this.stream = createWriteStream(this.path, { flags: 'a', mode: 0o600 });
      this.guard = new WriteGuard(this.path, this.stream);
    }
    this.guard?.check();
    this.count++;
    // Records are data (users, input lines) and are written as they are: a credential that is also
    // an ordinary word (a partner name that is the brand's domain) must not corrupt a user that
    // `retry` will send. Error texts are redacted where they are made (Delivery, the uploader).
    this.stream.write(`${JSON.stringify(record)}\n`);
  }

  /** The path if anything was written, else null. */
  get writtenPath(): string | null {
    return this.stream ? this.path : null;
  }

  async close(): Promise<void> {
    if (!this.stream) return;
    const stream = this.stream;
    stream.end();
    await this.guard?.wait(once(stream, 'close'));
  }
}

export type FailedFile = JsonlWriter<FailedRecord>;
