// What `verify` concludes (SPEC §9), as pure functions: a user's sent attributes against what
// Insider's profile API stored, a summary that names the likely cause of each pattern, and the
// fate of each uncertain event (SPEC §4: delivered, released, or not decidable yet).

import { USER_ATTRIBUTES, type InsiderType, type ValueType } from './table.js';
import { toEpochMs, type Scalar } from './values.js';

export type Verdict = 'match' | 'differs' | 'missing attributes';
export type UserVerdict = Verdict | 'not visible yet';

export interface Difference {
  attribute: string;
  sent: Scalar;
  stored: unknown;
}

export interface Comparison {
  verdict: Verdict;
  differs: Difference[];
  /** Sent, but absent from the profile. */
  missing: string[];
  /** Sent and stored alike. */
  matched: string[];
}

/** One checked user: compared, or not found by the profile API (yet). */
export type UserCheck = { email: string } & (Comparison | { verdict: 'not visible yet' });

const ATTRIBUTE_TYPE: ReadonlyMap<string, ValueType> = new Map(USER_ATTRIBUTES.map((row) => [row.name, row.type]));

/** The identifier is how the profile was found; it is not compared. */
const IDENTIFIER = 'email';

const LOOKS_LIKE_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]|$)/;
const NUMERIC = /^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$/;

/** An instant in epoch ms from an ISO string (any offset, with or without fractions) or epoch seconds/ms. */
export function instantOf(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value < 1e11 ? value * 1000 : value;
  if (typeof value !== 'string') return undefined;
  return toEpochMs(value.trim());
}

function numberOf(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'string' && NUMERIC.test(value)) return Number(value);
  return undefined;
}

function sameNumber(a: number, b: number): boolean {
  // Values that went through a JSON round trip elsewhere may differ in the last binary digit.
  return a === b || Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
}

function sameMembers(sent: readonly string[], stored: unknown): boolean {
  if (!Array.isArray(stored)) return false;
  const want = new Set(sent.map(String));
  const got = new Set(stored.map(String));
  return want.size === got.size && [...want].every((member) => got.has(member));
}

function sameValue(name: string, sent: Scalar, stored: unknown): boolean {
  const type = ATTRIBUTE_TYPE.get(name);
  if (Array.isArray(sent)) return sameMembers(sent, stored);
  if (typeof sent === 'boolean') return stored === sent || stored === String(sent);
  if (typeof sent === 'number' || typeof stored === 'number') {
    const [a, b] = [numberOf(sent), numberOf(stored)];
    return a !== undefined && b !== undefined && sameNumber(a, b);
  }
  if (type === 'date' || (type === undefined && LOOKS_LIKE_DATE.test(sent))) {
    const [a, b] = [instantOf(sent), instantOf(stored)];
    if (a !== undefined && b !== undefined) return a === b;
  }
  return stored === sent;
}

/**
 * Compares what was sent with what the profile holds: dates as instants, numbers as numbers (a
 * numeric string is equal), arrays as the same members in any order, strings exactly.
 */
export function compareUser(sent: Record<string, Scalar>, stored: Record<string, unknown>): Comparison {
  const differs: Difference[] = [];
  const missing: string[] = [];
  const matched: string[] = [];
  for (const [attribute, value] of Object.entries(sent)) {
    if (attribute === IDENTIFIER) continue;
    const held = stored[attribute];
    if (held === undefined || held === null) missing.push(attribute);
    else if (sameValue(attribute, value, held)) matched.push(attribute);
    else differs.push({ attribute, sent: value, stored: held });
  }
  // A missing attribute is the systematic problem (the panel), so it names the user's verdict.
  const verdict: Verdict = missing.length > 0 ? 'missing attributes' : differs.length > 0 ? 'differs' : 'match';
  return { verdict, differs, missing, matched };
}

export interface AttributeCounts {
  matched: number;
  differed: number;
  missing: number;
}

export interface VerifySummary {
  checked: number;
  users: { match: number; differs: number; missing_attributes: number; not_visible_yet: number };
  attributes: Record<string, AttributeCounts>;
  causes: string[];
}

const PANEL_TYPE: ReadonlyMap<string, InsiderType> = new Map(USER_ATTRIBUTES.map((row) => [row.name, row.insiderType]));

function typeHint(attribute: string): string {
  const type = PANEL_TYPE.get(attribute);
  return type ? ` (${type})` : '';
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** Counts per verdict and per attribute, and the likely cause of each pattern seen (`waitedMinutes`: --wait was used). */
export function summarise(results: readonly UserCheck[], { waitedMinutes }: { waitedMinutes?: number } = {}): VerifySummary {
  const users = { match: 0, differs: 0, missing_attributes: 0, not_visible_yet: 0 };
  const attributes: Record<string, AttributeCounts> = {};
  const countsOf = (name: string) => (attributes[name] ??= { matched: 0, differed: 0, missing: 0 });
  for (const result of results) {
    if (result.verdict === 'not visible yet') {
      users.not_visible_yet++;
      continue;
    }
    if (result.verdict === 'match') users.match++;
    else if (result.verdict === 'differs') users.differs++;
    else users.missing_attributes++;
    for (const name of result.matched) countsOf(name).matched++;
    for (const { attribute } of result.differs) countsOf(attribute).differed++;
    for (const name of result.missing) countsOf(name).missing++;
  }

  const causes: string[] = [];
  for (const [name, counts] of Object.entries(attributes)) {
    const sentTo = counts.matched + counts.differed + counts.missing;
    if (counts.missing === sentTo) {
      causes.push(
        `${name}: missing in ${sentTo === 1 ? 'the one checked user' : `all ${sentTo} checked users`} that were sent it → it does not exist in the Insider panel or has another type: ` +
          `create it in InOne (Attributes & Events) with the type \`yotpo-insider mapping\` lists${typeHint(name)}; types are fixed once created`,
      );
    } else if (counts.missing > 0) {
      causes.push(
        `${name}: missing in ${counts.missing} of ${plural(sentTo, 'user')} → dropped for those users (a value of another type than the panel's) ` +
          'or deleted since by another source',
      );
    }
    if (counts.differed > 0 && counts.differed === sentTo && sentTo > 1) {
      causes.push(
        `${name}: differs in all ${sentTo} users → the panel's attribute likely has another type than \`yotpo-insider mapping\` lists${typeHint(name)}, ` +
          'so Insider converted every value; check it in InOne',
      );
    } else if (counts.differed > 0) {
      causes.push(
        `${name}: differs in ${counts.differed} of ${plural(sentTo, 'user')} → changed since by another source (or by Yotpo's own Insider integration); ` +
          'a backfill of those users (--emails) sends the Yotpo value again',
      );
    }
  }
  if (users.not_visible_yet > 0) {
    const who = `${plural(users.not_visible_yet, 'user')} not visible yet`;
    causes.push(
      waitedMinutes
        ? `${who} after waiting ${waitedMinutes} min → Insider writes asynchronously, up to a few hours after the upload: run verify again later; ` +
            "users still absent hours after the run were not written: look for them in the run's failed file"
        : `${who} → Insider writes asynchronously, up to a few hours after the upload: run \`yotpo-insider verify --wait <minutes>\``,
    );
  }
  return { checked: results.length, users, attributes, causes };
}

// ---- uncertain events (SPEC §4, §9) ------------------------------------------------------------

export interface UncertainEntry {
  /** The event's ledger key. */
  key: string;
  email: string;
  event_name: string;
  /** The event's own time (ISO). */
  timestamp: string;
  /** When its batch was sent (ISO). */
  sent_at: string;
}

export interface UncertainResolution {
  /** Found in the profile: Insider holds them. */
  delivered: string[];
  /** Still absent although sent longer ago than the ingestion lag: free to be sent again. */
  released: string[];
  /** Absent, but sent too recently to tell "not written" from "not written yet". */
  tooRecent: { key: string; retry_after: string }[];
  /** Older than Insider's event retention: it would not be stored, so it is never released. */
  beyondRetention: string[];
}

export const DEFAULT_INGESTION_LAG_MS = 6 * 60 * 60 * 1000;
export const DEFAULT_EVENT_RETENTION_MS = 90 * 24 * 60 * 60 * 1000;

export interface ResolveOptions {
  now: number;
  /** The ingestion lag: an event absent this long after its sending is taken as not written. */
  olderThanMs?: number;
  retentionMs?: number;
}

/** Whether the event is too old for Insider to keep, so looking for it tells nothing. */
export function isBeyondRetention(
  entry: Pick<UncertainEntry, 'timestamp'>,
  now: number,
  retentionMs = DEFAULT_EVENT_RETENTION_MS,
): boolean {
  const at = instantOf(entry.timestamp);
  return at !== undefined && at < now - retentionMs;
}

/**
 * Decides each uncertain event. `found` says whether the user's profile holds the event (same name
 * and timestamp): true, false, or undefined when the user is not visible at all (which, once the
 * lag has passed, means the event is absent too).
 */
export function resolveUncertain(
  entries: readonly UncertainEntry[],
  found: (entry: UncertainEntry) => boolean | undefined,
  { now, olderThanMs = DEFAULT_INGESTION_LAG_MS, retentionMs = DEFAULT_EVENT_RETENTION_MS }: ResolveOptions,
): UncertainResolution {
  const resolution: UncertainResolution = { delivered: [], released: [], tooRecent: [], beyondRetention: [] };
  for (const entry of entries) {
    if (found(entry) === true) {
      resolution.delivered.push(entry.key);
      continue;
    }
    if (isBeyondRetention(entry, now, retentionMs)) {
      resolution.beyondRetention.push(entry.key);
      continue;
    }
    const sentAt = instantOf(entry.sent_at);
    // A sending time that cannot be read is never old enough: releasing it could send an event twice.
    const decidableAt = sentAt === undefined ? now + olderThanMs : sentAt + olderThanMs;
    if (decidableAt <= now) resolution.released.push(entry.key);
    else resolution.tooRecent.push({ key: entry.key, retry_after: new Date(decidableAt).toISOString() });
  }
  return resolution;
}

const EVENT_TIME_FIELDS = ['timestamp', 'event_timestamp', 'created_date', 'created_at', 'date'] as const;

function eventTime(record: unknown): number | undefined {
  if (!record || typeof record !== 'object') return undefined;
  for (const field of EVENT_TIME_FIELDS) {
    const at = instantOf((record as Record<string, unknown>)[field]);
    if (at !== undefined) return at;
  }
  return undefined;
}

/**
 * Whether a profile's `events` part holds an event of this name at this instant (to the second,
 * as Insider may drop fractions). Read tolerantly: `{<name>: [{timestamp|created_date…}]}` or
 * `[{event_name, timestamp}]`.
 */
export function profileHasEvent(events: unknown, eventName: string, timestamp: string): boolean {
  const wanted = instantOf(timestamp);
  if (wanted === undefined || !events || typeof events !== 'object') return false;
  const second = (ms: number) => Math.floor(ms / 1000);
  const records: unknown[] = Array.isArray(events)
    ? events.filter((record) => record && typeof record === 'object' && (record as { event_name?: unknown }).event_name === eventName)
    : (() => {
        const list = (events as Record<string, unknown>)[eventName];
        return Array.isArray(list) ? list : [];
      })();
  return records.some((record) => {
    const at = eventTime(record);
    return at !== undefined && second(at) === second(wanted);
  });
}

// ---- the audit CSV as what was sent (SPEC §6) ---------------------------------------------------

export interface SentUser {
  email: string;
  attributes: Record<string, Scalar>;
}

/** Columns of an audit CSV that are not user attributes. */
const AUDIT_COLUMNS = new Set(['line', 'status', 'reason', 'email', 'event_name', 'timestamp', 'source', 'omitted']);
const NEUTRALISED = /^'[=+\-@\t\r]/;

/** A cell as written by the audit CSV back to the value sent: the formula guard undone, typed by the table. */
export function auditCellValue(attribute: string, cell: string): Scalar {
  const text = NEUTRALISED.test(cell) ? cell.slice(1) : cell;
  switch (ATTRIBUTE_TYPE.get(attribute)) {
    case 'number':
      return numberOf(text) ?? text;
    case 'boolean':
      return text === 'true' ? true : text === 'false' ? false : text;
    case 'string[]':
      return text.split('|');
    default:
      return text;
  }
}

/** A `sent` row of a live run's audit CSV (keyed by header) as the user sent; other rows are undefined. */
export function sentUserFromAuditRow(row: Readonly<Record<string, string | undefined>>): SentUser | undefined {
  const email = row.email === undefined ? '' : auditCellValue('email', row.email).toString().trim();
  if (row.status !== 'sent' || email === '') return undefined;
  const attributes: Record<string, Scalar> = {};
  for (const [column, cell] of Object.entries(row)) {
    if (cell === undefined || cell === '' || AUDIT_COLUMNS.has(column) || column.startsWith('event.')) continue;
    attributes[column] = auditCellValue(column, cell);
  }
  return { email, attributes };
}
