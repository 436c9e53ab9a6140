// The audit CSV rows of the items the sources yield (SPEC §6): one row per user for backfill and
// retry, ending with where the user came from and what was omitted (and why), so an empty cell can
// be told apart from a value that was dropped; one row per input line for replay.

import { flattenAttributes, type FieldWarnings, type FlatAttributes, type InsiderUser } from '../core/transform.js';
import { EVENT_COLUMNS, USER_COLUMNS, eventRow, userRow } from '../core/audit-row.js';
import type { AuditRows } from '../pipeline/items.js';

export type UserSource = 'loyalty' | 'reviewer' | 'retry';

export const USER_AUDIT_COLUMNS = USER_COLUMNS;
export const EVENT_AUDIT_COLUMNS = EVENT_COLUMNS;

export function userAudit(email: string, user: InsiderUser | FlatAttributes, source: UserSource, omitted?: FieldWarnings): AuditRows {
  return (status, reason) => {
    const flat = 'identifiers' in user ? flattenAttributes(user as InsiderUser) : (user as FlatAttributes);
    return [userRow(status, reason, email, flat, { source, ...(omitted ? { omitted: omitted.keys() } : {}) })];
  };
}

export interface EventAuditInput {
  line: number;
  email?: string | undefined;
  eventName?: string | undefined;
  timestamp?: string | undefined;
  params?: FlatAttributes;
  attributes?: FlatAttributes;
  omitted?: FieldWarnings;
}

export function eventAudit(events: readonly EventAuditInput[]): AuditRows {
  return (status, reason) =>
    events.map((event) =>
      eventRow(
        event.line,
        status,
        reason,
        event.email,
        event.eventName,
        event.timestamp,
        event.params ?? {},
        event.attributes ?? {},
        event.omitted?.keys(),
      ),
    );
}
