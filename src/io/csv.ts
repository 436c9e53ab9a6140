// The audit CSV (SPEC §6): columns fixed by the mapping table (never by the data, so two runs can
// be diffed), values as they are sent, text neutralised against spreadsheet formulas. Streamed
// through csv-stringify with backpressure.

import { createWriteStream, mkdirSync } from 'node:fs';
import { once } from 'node:events';
import { dirname } from 'node:path';
import type { Writable } from 'node:stream';
import { stringify, type Stringifier } from 'csv-stringify';
import { EVENT_PARAMS, USER_ATTRIBUTES } from '../core/table.js';
import type { FlatAttributes } from '../core/transform.js';
import { WriteGuard } from './files.js';

export type AuditStatus = 'would_send' | 'sent' | 'failed' | 'skipped' | 'rejected';

const ATTRIBUTE_NAMES = USER_ATTRIBUTES.map((row) => row.name);
const PARAM_NAMES = EVENT_PARAMS.map((row) => row.name);

/** backfill / retry: one row per user. */
export const USER_COLUMNS: readonly string[] = ['status', 'reason', 'email', ...ATTRIBUTE_NAMES];
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

export function userRow(status: AuditStatus, reason: string, email: string, attributes: FlatAttributes): string[] {
  return [status, cell(reason), cell(email), ...ATTRIBUTE_NAMES.map((name) => cell(attributes[name]))];
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
  ];
}

/** A CSV file (or stdout for `-`), header first, written with backpressure. */
export class AuditCsv {
  private readonly stringifier: Stringifier;
  private readonly destination: Writable;
  private readonly ownsDestination: boolean;
  private readonly guard: WriteGuard;
  rows = 0;

  constructor(
    readonly path: string,
    columns: readonly string[],
    stdout: Writable,
  ) {
    this.stringifier = stringify({ header: true, columns: [...columns], record_delimiter: 'windows' });
    if (path === '-') {
      this.destination = stdout;
      this.ownsDestination = false;
    } else {
      mkdirSync(dirname(path), { recursive: true });
      this.destination = createWriteStream(path, { mode: 0o600 });
      this.ownsDestination = true;
    }
    this.stringifier.pipe(this.destination, { end: this.ownsDestination });
    this.guard = new WriteGuard(path === '-' ? 'the audit CSV to stdout' : `the audit CSV ${path}`, this.stringifier, this.destination);
  }

  /** Queues a row; producers call drained() between chunks of work so memory stays bounded. */
  write(row: string[]): void {
    this.guard.check();
    this.rows++;
    this.stringifier.write(row);
  }

  /** Resolves once the CSV has caught up with what was written (backpressure for the producer). */
  async drained(): Promise<void> {
    if (this.stringifier.writableNeedDrain) await this.guard.wait(once(this.stringifier, 'drain'));
  }

  async close(): Promise<void> {
    const done = this.ownsDestination ? once(this.destination, 'finish') : once(this.stringifier, 'end');
    this.stringifier.end();
    await this.guard.wait(done);
  }
}
