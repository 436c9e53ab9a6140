// What a run's source yields: a user to send (with what the command needs back when its outcome is
// known), a record skipped for a counted reason, or an input line rejected. The one vocabulary
// between sources and the run pipeline.

import type { AuditStatus } from '../core/audit-row.js';
import type { InsiderUser } from '../core/transform.js';

export type { AuditStatus };
import type { EventRef } from '../state/ledger.js';

/** The audit CSV rows of an item once its status is known (a user row, or one row per event). */
export type AuditRows = (status: AuditStatus, reason: string) => string[][];

export interface SendItem<Tag> {
  kind: 'send';
  user: InsiderUser;
  tag: Tag;
  /** The ledger identity of each event the user carries, in `user.events` order; reserved already. */
  events?: EventRef[];
  audit?: AuditRows;
}

export interface SkipItem {
  kind: 'skip';
  /** What is skipped: a user (backfill, retry) or an event (replay). */
  unit: 'user' | 'event';
  reason: string;
  count?: number;
  audit?: AuditRows;
  /** Users skipped because Insider may hold their events go to the failed file as they were (retry, replay). */
  failedLine?: Record<string, unknown>;
  /** The ledger key of the event skipped, when the ledger decided it. */
  key?: string;
  /** Events held back because Insider may hold them: counted uncertain. */
  uncertainEvents?: number;
}

export interface RejectItem {
  kind: 'reject';
  line: number;
  reason: string;
  raw: string;
  audit?: AuditRows;
  /** The rejects-file line, when it says more than line, reason and raw (listen: where in the archive). */
  record?: Record<string, unknown>;
}

/** A live source has nothing more for now: send what is batched without waiting for a full batch. */
export interface FlushItem {
  kind: 'flush';
}

export type Item<Tag> = SendItem<Tag> | SkipItem | RejectItem | FlushItem;
