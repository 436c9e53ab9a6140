// Value normalisation (MAPPING §2 "Decisions", §3 Dates). Pure functions: a value either becomes
// the Insider type or is reported as a field warning, never sent with the wrong type.

import { InvalidUtf8Text, NonFiniteNumber } from './canonical.js';
import type { ValueType } from './table.js';

export type Scalar = string | number | boolean | string[];

/** A value converted, absent (omit silently), or wrong (omit and count a warning). */
export type Coerced = { ok: Scalar } | { absent: true } | { warning: string };

const ABSENT: Coerced = { absent: true };
const NOT_UTF8: Coerced = { warning: 'invalid UTF-8' };
const NOT_FINITE: Coerced = { warning: 'not a finite number' };

/** MAPPING: "absent, null or an empty string" is omitted, never sent as null. */
export function isAbsent(value: unknown): boolean {
  if (value === undefined || value === null) return true;
  if (typeof value !== 'string') return false;
  // Only a string that starts with whitespace can be blank; most values need no trim().
  const first = value.charCodeAt(0);
  return value.length === 0 || ((first <= 32 || first >= 0x80) && value.trim() === '');
}

/** Reads `a.b.c` from a parsed JSON object; anything that is not an object along the way is a miss. */
export function getPath(source: unknown, dottedPath: readonly string[]): unknown {
  let current: unknown = source;
  for (let i = 0; i < dottedPath.length; i++) {
    if (current === null || typeof current !== 'object' || Array.isArray(current)) return undefined;
    current = (current as Record<string, unknown>)[dottedPath[i]!];
  }
  return current;
}

const NUMERIC = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** A value the lossless parser (canonical.ts) marked: text that is not UTF-8, a number no double holds. */
function marked(value: unknown): Coerced | undefined {
  if (value instanceof InvalidUtf8Text) return NOT_UTF8;
  if (value instanceof NonFiniteNumber) return NOT_FINITE;
  return undefined;
}

/** Numbers that are not finite (`1e400` as a literal, "1e400" as text) are omitted, never sent as null. */
function finite(value: number): Coerced {
  return Number.isFinite(value) ? { ok: value } : NOT_FINITE;
}

export function toNumber(value: unknown): Coerced {
  if (isAbsent(value)) return ABSENT;
  if (typeof value === 'number') return finite(value);
  // An integer beyond 2^53: Insider's numbers are doubles, so the nearest one is the value.
  if (typeof value === 'bigint') return finite(Number(value));
  if (typeof value === 'string' && NUMERIC.test(value.trim())) return finite(Number(value.trim()));
  return marked(value) ?? { warning: 'not a number' };
}

export function toText(value: unknown): Coerced {
  if (isAbsent(value)) return ABSENT;
  if (typeof value === 'string') return { ok: value.trim() };
  // Real payloads send ids such as product.id and perk.campaign_id as numbers; one beyond 2^53 keeps every digit.
  if (typeof value === 'number' && Number.isFinite(value)) return { ok: String(value) };
  if (typeof value === 'bigint') return { ok: value.toString() };
  return marked(value) ?? { warning: 'not a string' };
}

export function toBoolean(value: unknown): Coerced {
  if (isAbsent(value)) return ABSENT;
  if (typeof value === 'boolean') return { ok: value };
  if (value instanceof InvalidUtf8Text) return NOT_UTF8;
  if (typeof value === 'string') {
    const lowered = value.trim().toLowerCase();
    if (lowered === 'true') return { ok: true };
    if (lowered === 'false') return { ok: false };
  }
  return { warning: 'not a boolean' };
}

export function toStringList(value: unknown): Coerced {
  if (isAbsent(value)) return ABSENT;
  if (!Array.isArray(value)) return marked(value) ?? { warning: 'not a list' };
  if (value.some((item) => item instanceof InvalidUtf8Text)) return NOT_UTF8;
  const items = value.filter((item): item is string => typeof item === 'string' && item.trim() !== '');
  if (items.length !== value.length) return { warning: 'not a list of strings' };
  return items.length === 0 ? ABSENT : { ok: items.map((item) => item.trim()) };
}

const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?|UTC)?$/;

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function daysInMonth(year: number, month: number): number {
  const leap = month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return leap ? 29 : DAYS_IN_MONTH[month - 1]!;
}

function isRealDate(year: number, month: number, day: number): boolean {
  return month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month);
}

/** RFC 3339 in UTC without fractional seconds: `2024-04-25T13:05:00Z`. */
export function formatUtc(epochMs: number): string {
  return `${new Date(epochMs).toISOString().slice(0, 19)}Z`;
}

const digit = (text: string, at: number) => text.charCodeAt(at) - 48;
const two = (text: string, at: number) => digit(text, at) * 10 + digit(text, at + 1);

/** Already `YYYY-MM-DDTHH:MM:SSZ` and a real instant: most timestamps are, and need no Date. */
function isCanonicalUtc(text: string): boolean {
  if (text.length !== 20 || text.charCodeAt(19) !== 90 /* Z */ || text[10] !== 'T') return false;
  for (const at of [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]) {
    const d = digit(text, at);
    if (d < 0 || d > 9) return false;
  }
  if (text[4] !== '-' || text[7] !== '-' || text[13] !== ':' || text[16] !== ':') return false;
  const year = two(text, 0) * 100 + two(text, 2);
  return isRealDate(year, two(text, 5), two(text, 8)) && two(text, 11) < 24 && two(text, 14) < 60 && two(text, 17) < 60;
}

/**
 * MAPPING §3: offsets converted to UTC, a zone-less timestamp taken as UTC, fractions dropped,
 * a bare date at midnight UTC. Anything else is unparseable.
 */
export function toDate(value: unknown): Coerced {
  if (isAbsent(value)) return ABSENT;
  if (typeof value !== 'string') return marked(value) ?? { warning: 'not a date' };
  if (isCanonicalUtc(value)) return { ok: value };
  const match = DATE_TIME.exec(value.trim());
  if (!match) return { warning: 'unparseable date' };
  const [, y, mo, d, h = '0', mi = '0', s = '0', zone] = match;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (!isRealDate(year, month, day) || hour > 23 || minute > 59 || second > 59) return { warning: 'impossible date' };
  if (!zone || zone === 'Z' || zone === 'z' || zone === 'UTC') {
    // Already UTC: the parts are the answer, no Date needed.
    return { ok: `${y}-${mo}-${d}T${h.padStart(2, '0')}:${mi.padStart(2, '0')}:${s.padStart(2, '0')}Z` };
  }
  let offsetMinutes = 0;
  {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    offsetMinutes = sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || '0'));
  }
  const epochMs = Date.UTC(year, month - 1, day, hour, minute, second) - offsetMinutes * 60_000;
  return { ok: formatUtc(epochMs) };
}

/** Parses a timestamp to epoch milliseconds (for ordering and windows), or undefined. */
export function toEpochMs(value: unknown): number | undefined {
  const coerced = toDate(value);
  return 'ok' in coerced ? Date.parse(coerced.ok as string) : undefined;
}

function wholeNumber(value: unknown): number | undefined | 'bad' {
  if (isAbsent(value)) return undefined;
  const coerced = toNumber(value);
  if (!('ok' in coerced)) return 'bad';
  const n = coerced.ok as number;
  return Number.isInteger(n) ? n : 'bad';
}

/**
 * MAPPING §3: a date from year, month and day. A missing year is never invented: without the
 * operator's placeholder year the value is omitted with a warning.
 */
export function toDateFromParts(year: unknown, month: unknown, day: unknown, placeholderYear?: number): Coerced {
  const y = wholeNumber(year);
  const m = wholeNumber(month);
  const d = wholeNumber(day);
  if (m === undefined && d === undefined && y === undefined) return ABSENT;
  if (m === 'bad' || d === 'bad' || y === 'bad') return { warning: 'not a date' };
  if (m === undefined || d === undefined) return { warning: 'incomplete date' };
  const fullYear = y ?? placeholderYear;
  if (fullYear === undefined) return { warning: 'no year' };
  if (fullYear < 1 || fullYear > 9999 || !isRealDate(fullYear, m, d)) return { warning: 'impossible date' };
  const pad = (n: number, width: number) => String(n).padStart(width, '0');
  return { ok: `${pad(fullYear, 4)}-${pad(m, 2)}-${pad(d, 2)}T00:00:00Z` };
}

export const COERCE: Record<ValueType, (value: unknown) => Coerced> = {
  string: toText,
  number: toNumber,
  boolean: toBoolean,
  date: toDate,
  'string[]': toStringList,
};

/** Rounds half away from zero to 2 decimals (MAPPING §4), immune to 1.005-style binary error. */
export function round2(value: number): number {
  const sign = value < 0 ? -1 : 1;
  const scaled = Math.abs(value) * 100;
  // A magnitude this large has no decimals left to round, and scaling it would overflow to Infinity.
  if (!Number.isFinite(scaled)) return value;
  return (sign * Math.round(scaled + 1e-9)) / 100;
}
