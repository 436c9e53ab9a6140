// The audit CSV's columns and rows (SPEC §6): fixed by the mapping table (never by the data, so two
// runs can be diffed), values as they are sent, text neutralised against spreadsheet formulas. Pure;
// src/io/csv.ts writes them.

import { EVENT_PARAMS, USER_ATTRIBUTES } from './table.js';
import type { FlatAttributes } from './transform.js';

export type AuditStatus = 'would_send' | 'sent' | 'failed' | 'uncertain' | 'skipped' | 'rejected';

/** Where a backfill / retry row's user came from. */
export type AuditSource = 'loyalty' | 'reviewer' | 'retry';

const ATTRIBUTE_NAMES = USER_ATTRIBUTES.map((row) => row.name);
const PARAM_NAMES = EVENT_PARAMS.map((row) => row.name);

/** backfill / retry: one row per user; `source` and `omitted` after the attributes. */
export const USER_COLUMNS: readonly string[] = ['status', 'reason', 'email', ...ATTRIBUTE_NAMES, 'source', 'omitted'];
/** replay: one row per input event; params prefixed `event.` (some share a name with an attribute). */
export const EVENT_COLUMNS: readonly string[] = [
  'line',
  'status',
  'reason',
  'email',
  'event_name',
  'timestamp',
  ...PARAM_NAMES.map((name) => `event.${name}`),
  ...ATTRIBUTE_NAMES,
  'omitted',
];

const FORMULA_START = /^[=+\-@\t\r]/;

/** Text that a spreadsheet would run as a formula gets a leading apostrophe. */
export function neutralise(text: string): string {
  return FORMULA_START.test(text) ? `'${text}` : text;
}

/** A value as it is sent: numbers unformatted, booleans true/false, arrays joined with `|`. */
export function cell(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'number') return String(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (Array.isArray(value)) return neutralise(value.map(String).join('|'));
  return neutralise(String(value));
}

/**
 * The `omitted` cell: the fields left out because their value did not fit, as the run's field
 * warnings name them (`birthday: no year`), joined with `|`.
 */
export function omittedCell(omitted: Iterable<string> | undefined): string {
  return omitted ? cell([...omitted]) : '';
}

export interface UserRowExtras {
  source?: AuditSource | undefined;
  /** Field warnings of this user, `<field>: <why>` each. */
  omitted?: Iterable<string> | undefined;
}

export function userRow(
  status: AuditStatus,
  reason: string,
  email: string,
  attributes: FlatAttributes,
  extras: UserRowExtras = {},
): string[] {
  return [
    status,
    cell(reason),
    cell(email),
    ...ATTRIBUTE_NAMES.map((name) => cell(attributes[name])),
    cell(extras.source),
    omittedCell(extras.omitted),
  ];
}

export function eventRow(
  line: number,
  status: AuditStatus,
  reason: string,
  email: string | undefined,
  eventName: string | undefined,
  timestamp: string | undefined,
  params: FlatAttributes,
  attributes: FlatAttributes,
  omitted?: Iterable<string>,
): string[] {
  return [
    String(line),
    status,
    cell(reason),
    cell(email),
    cell(eventName),
    cell(timestamp),
    ...PARAM_NAMES.map((name) => cell(params[name])),
    ...ATTRIBUTE_NAMES.map((name) => cell(attributes[name])),
    omittedCell(omitted),
  ];
}
