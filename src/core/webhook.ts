// One replay input line (SPEC §4) → an Insider event with the member's attributes, a counted skip,
// or a reject with one of SPEC §4's reasons. Pure: no I/O, no clock (the run start comes in).

import { createHash } from 'node:crypto';
import { z } from 'zod';
import {
  EVENT_NAMES,
  EVENT_TIMESTAMP_PATHS,
  INSIDER_EVENT_NAME,
  MEMBER_EMAIL_PATHS,
  MEMBER_OBJECT_PATHS,
  OPT_IN_TIMESTAMP_PATH,
  SHARE_EVENT_MEMBER_EMAIL_PATHS,
  type EventNameRow,
} from './table.js';
import {
  mapAttributes,
  mapEventParams,
  normaliseEmail,
  type FieldWarnings,
  type FlatAttributes,
  type InsiderEvent,
} from './transform.js';
import { formatUtc, getPath, isAbsent, toDate } from './values.js';

export interface ReplayOptions {
  /** `--allow-unknown-events`: send an unknown event as the snake_case of its `name`. */
  allowUnknownEvents: boolean;
  /** `--timestamp-fallback now`: a line without a timestamp is sent at the run's start. */
  timestampFallback?: 'now';
  /** The run's start (used by timestampFallback). */
  now: Date;
  /** `--birthday-placeholder-year`. */
  placeholderYear?: number;
}

export type RejectReason = 'invalid json' | 'not an object' | 'no email' | 'unknown event' | 'no timestamp' | 'invalid timestamp';

export type ParsedLine =
  | {
      kind: 'event';
      email: string;
      event: InsiderEvent;
      epochMs: number;
      attributes: FlatAttributes;
      params: FlatAttributes;
      /** The ledger key: a hash of the canonical payload (SPEC §4). */
      key: string;
      yotpoName: string;
    }
  | { kind: 'skipped'; reason: string; email?: string; yotpoName: string }
  | { kind: 'rejected'; reason: RejectReason; detail: string };

type Json = Record<string, unknown>;

/** A JSON object (not an array, not null); every key kept. */
const JsonObject = z.record(z.string(), z.unknown());

/** A saved delivery: `{"received_at":..., "body"|"payload": <payload>, "headers":...}`. */
const Envelope = z.looseObject({
  received_at: z.unknown().optional(),
  headers: z.unknown().optional(),
  body: z.unknown().optional(),
  payload: z.unknown().optional(),
});

/** A webhook payload, loosely: only the keys that identify it are typed. */
const Payload = z.looseObject({
  topic: z.string().nullish(),
  name: z.string().nullish(),
});

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

function quote(value: unknown, max = 60): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text);
}

const isPlainObject = (value: unknown): value is Json => JsonObject.safeParse(value).success;

/**
 * An envelope is an object carrying `body` or `payload` that is not itself a webhook (no `topic`
 * or `name`). Its body may also have been saved as a JSON string.
 */
function envelopeBody(object: Json): { present: false } | { present: true; key: 'body' | 'payload'; value: unknown } {
  if (!('body' in object) && !('payload' in object)) return { present: false };
  if (!isAbsent(object['topic']) || !isAbsent(object['name'])) return { present: false };
  const key = object['body'] !== undefined ? 'body' : 'payload';
  return { present: true, key, value: object[key] };
}

type Unwrapped =
  | { ok: true; payload: Json; receivedAt: unknown }
  | { ok: false; reason: 'invalid json' | 'not an object'; detail: string };

/** Removes the envelope, if any, and checks that what is left is a JSON object. */
function unwrap(parsed: unknown): Unwrapped {
  const top = JsonObject.safeParse(parsed);
  if (!top.success) return { ok: false, reason: 'not an object', detail: `the line is ${kindOf(parsed)}, not a JSON object` };
  const body = envelopeBody(top.data);
  if (!body.present) return { ok: true, payload: top.data, receivedAt: undefined };
  const envelope = Envelope.parse(top.data);
  let inner = body.value;
  if (typeof inner === 'string') {
    try {
      inner = JSON.parse(inner);
    } catch (error) {
      return { ok: false, reason: 'invalid json', detail: `the envelope's ${body.key} is a string that is not JSON: ${(error as Error).message}` };
    }
  }
  const payload = JsonObject.safeParse(inner);
  if (!payload.success) {
    return { ok: false, reason: 'not an object', detail: `the envelope's ${body.key} is ${kindOf(inner)}, not a JSON object` };
  }
  return { ok: true, payload: payload.data, receivedAt: envelope.received_at };
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object') {
    const sorted: Json = {};
    for (const key of Object.keys(value).sort()) sorted[key] = canonical((value as Json)[key]);
    return sorted;
  }
  return value;
}

/**
 * The ledger key (SPEC §4): sha256 of the payload with its envelope removed and its keys sorted,
 * so the same payload has the same key whatever its key order or envelope.
 */
export function eventKey(payload: unknown): string {
  const unwrapped = unwrap(payload);
  return hashPayload(unwrapped.ok ? unwrapped.payload : payload);
}

function hashPayload(payload: unknown): string {
  return createHash('sha256').update(JSON.stringify(canonical(payload)) ?? 'undefined').digest('hex');
}

const BY_TOPIC = new Map<string, EventNameRow>();
const BY_NAME = new Map<string, EventNameRow>();
const BY_LOOSE_NAME = new Map<string, EventNameRow>();
const loose = (name: string) => name.trim().replace(/\s+/g, ' ').toLowerCase();
for (const row of EVENT_NAMES) {
  for (const topic of row.topics) BY_TOPIC.set(topic, row);
  if (row.yotpoName) {
    BY_NAME.set(row.yotpoName, row);
    BY_LOOSE_NAME.set(loose(row.yotpoName), row);
  }
}

/** MAPPING §5: the event row by `topic` first (topics are stable), else by `name`. */
export function identifyEvent(payload: unknown): EventNameRow | undefined {
  const topic = getPath(payload, ['topic']);
  const name = getPath(payload, ['name']);
  if (typeof topic === 'string') {
    const row = BY_TOPIC.get(topic) ?? BY_TOPIC.get(topic.trim().toLowerCase());
    if (row) return row;
  }
  if (typeof name === 'string') return BY_NAME.get(name) ?? BY_LOOSE_NAME.get(loose(name));
  return undefined;
}

/** `--allow-unknown-events`: lower-case, runs outside `[a-z0-9._-]` → `_`, trimmed of `_`. */
export function snakeCase(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '_')
    .replace(/^_+|_+$/g, '');
}

const reject = (reason: RejectReason, detail: string): ParsedLine => ({ kind: 'rejected', reason, detail });

function firstPresentPath(source: unknown, paths: readonly string[]): { path: string; value: unknown } | undefined {
  for (const path of paths) {
    const value = getPath(source, path.split('.'));
    if (!isAbsent(value)) return { path, value };
  }
  return undefined;
}

/** Turns one non-blank replay line into an event, a skip or a reject. */
export function parseWebhookLine(text: string, options: ReplayOptions, warnings: FieldWarnings): ParsedLine {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return reject('invalid json', `the line is not valid JSON: ${(error as Error).message}`);
  }
  const unwrapped = unwrap(parsed);
  if (!unwrapped.ok) return reject(unwrapped.reason, unwrapped.detail);
  const { payload, receivedAt } = unwrapped;

  // Identity of the event.
  const identified = Payload.safeParse(payload);
  if (!identified.success) {
    const issue = identified.error.issues[0];
    const field = issue?.path.join('.') || 'topic';
    return reject('unknown event', `the payload's ${field} is ${kindOf(getPath(payload, [field]))}, not a string`);
  }
  const topic = identified.data.topic ?? undefined;
  const name = identified.data.name ?? undefined;
  const row = identifyEvent(payload);
  let insiderName: string;
  let shareEvent = false;
  let optInEvent = false;
  const yotpoName = row?.yotpoName ?? name?.trim() ?? topic?.trim() ?? '';
  if (row) {
    // Merchant-only (no customer): counted as skipped, never a reject for its missing email.
    if (row.insiderName === null) return { kind: 'skipped', reason: row.skipReason ?? 'not sent to Insider', yotpoName };
    insiderName = row.insiderName;
    shareEvent = row.shareEvent === true;
    optInEvent = row.optInEvent === true;
  } else {
    const label = [topic ? `topic ${quote(topic)}` : '', name ? `name ${quote(name)}` : ''].filter(Boolean).join(', ');
    if (!label) return reject('unknown event', 'the payload has neither a topic nor a name, so the event cannot be identified');
    const candidate = snakeCase(name ?? topic ?? '');
    if (!options.allowUnknownEvents) {
      return reject(
        'unknown event',
        `${label} is not a Yotpo loyalty event of the mapping; --allow-unknown-events would send it as ${quote(candidate)}`,
      );
    }
    if (!INSIDER_EVENT_NAME.test(candidate)) {
      return reject('unknown event', `${label} gives the event name ${quote(candidate)}, which Insider does not accept`);
    }
    insiderName = candidate;
  }

  // The member (MAPPING §1): in referral-share events the top-level email is the friend.
  const emailPaths = shareEvent ? SHARE_EVENT_MEMBER_EMAIL_PATHS : MEMBER_EMAIL_PATHS;
  const emailAt = firstPresentPath(payload, emailPaths);
  if (!emailAt) {
    const friend = shareEvent && !isAbsent(payload['email']) ? ' (the top-level email of a referral share is the friend, not the member)' : '';
    return reject('no email', `no member email: none of ${emailPaths.join(', ')} is present${friend}`);
  }
  const email = normaliseEmail(emailAt.value);
  if (!email) return reject('no email', `the member email ${emailAt.path} ${quote(emailAt.value)} is not a valid email address`);

  // The event time (MAPPING §5).
  const timestampPaths = optInEvent ? [...EVENT_TIMESTAMP_PATHS, OPT_IN_TIMESTAMP_PATH] : EVENT_TIMESTAMP_PATHS;
  let timestampAt = firstPresentPath(payload, timestampPaths);
  if (!timestampAt && !isAbsent(receivedAt)) timestampAt = { path: 'received_at', value: receivedAt };
  let timestamp: string;
  if (timestampAt) {
    const date = toDate(timestampAt.value);
    if (!('ok' in date)) {
      const why = 'warning' in date ? date.warning : 'unparseable date';
      return reject('invalid timestamp', `the event time ${timestampAt.path} ${quote(timestampAt.value)} cannot be read as a date (${why})`);
    }
    timestamp = date.ok as string;
  } else if (options.timestampFallback === 'now') {
    timestamp = formatUtc(options.now.getTime());
  } else {
    return reject(
      'no timestamp',
      `no event time: none of ${[...timestampPaths, 'the envelope received_at'].join(', ')} is present; --timestamp-fallback now would use the run's start`,
    );
  }

  const params = mapEventParams(payload, shareEvent, warnings);
  const memberObject = MEMBER_OBJECT_PATHS.map((path) => getPath(payload, path.split('.'))).find(isPlainObject);
  const attributes = mapAttributes(
    memberObject ? [memberObject, payload] : [payload],
    undefined,
    options.placeholderYear === undefined ? {} : { placeholderYear: options.placeholderYear },
    warnings,
  );
  const event: InsiderEvent = { event_name: insiderName, timestamp };
  if (Object.keys(params).length > 0) event.event_params = { custom: { ...params } };

  return {
    kind: 'event',
    email,
    event,
    epochMs: Date.parse(timestamp),
    attributes,
    params,
    key: hashPayload(payload),
    yotpoName,
  };
}
