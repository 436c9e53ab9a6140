// Groups users into Insider requests: at most `maxUsers` users and `maxBytes` bytes of body each
// (SPEC §3: 1000 users, 5,000,000 bytes). Pure: each user is serialised once, here.

import type { InsiderUser } from './transform.js';

export const INSIDER_MAX_USERS = 1000;
export const INSIDER_MAX_BYTES = 5_000_000;

export interface BatchItem<Tag> {
  user: InsiderUser;
  /** The user's JSON, computed once and reused for the body. */
  json: string;
  bytes: number;
  /** Where the user came from (page, line), for checkpoints and the audit. */
  tag: Tag;
}

export interface Batch<Tag> {
  items: BatchItem<Tag>[];
}

/** `{"users":[` … `],"skip_hook":false}` around the users, with commas between them. */
const ENVELOPE_BYTES = Buffer.byteLength('{"users":[],"skip_hook":false}');

export function requestBody(items: readonly { json: string }[], skipHook: boolean): string {
  let body = '{"users":[';
  for (let i = 0; i < items.length; i++) body += (i === 0 ? '' : ',') + items[i]!.json;
  return `${body}],"skip_hook":${skipHook}}`;
}

export function batchBytes(items: readonly { bytes: number }[]): number {
  let total = ENVELOPE_BYTES + Math.max(0, items.length - 1);
  for (const item of items) total += item.bytes;
  return total;
}

export function toBatchItem<Tag>(user: InsiderUser, tag: Tag): BatchItem<Tag> {
  const json = JSON.stringify(user);
  return { user, json, bytes: Buffer.byteLength(json), tag };
}

export class Batcher<Tag> {
  private items: BatchItem<Tag>[] = [];
  private bytes = ENVELOPE_BYTES;

  constructor(
    private readonly maxUsers: number,
    private readonly maxBytes: number = INSIDER_MAX_BYTES,
  ) {}

  /** Adds a user; returns the batch this closed, if any (at most one per call). */
  add(item: BatchItem<Tag>): Batch<Tag> | undefined {
    // The batch is flushed as soon as it holds maxUsers, so only the byte limit can close it here.
    const closed = this.items.length > 0 && this.bytes + 1 + item.bytes > this.maxBytes ? this.flush() : undefined;
    this.bytes += item.bytes + (this.items.length > 0 ? 1 : 0);
    this.items.push(item);
    return closed ?? (this.items.length >= this.maxUsers ? this.flush() : undefined);
  }

  /** Closes the current batch (undefined when empty). */
  flush(): Batch<Tag> | undefined {
    if (this.items.length === 0) return undefined;
    const batch = { items: this.items };
    this.items = [];
    this.bytes = ENVELOPE_BYTES;
    return batch;
  }

  get pending(): number {
    return this.items.length;
  }
}
