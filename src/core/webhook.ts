// One replay input line (SPEC §4) → an Insider event with the member's attributes, a counted skip,
// or a reject with one of SPEC §4's reasons. Pure: no I/O, no clock (the run start comes in).

import { createHash } from 'node:crypto';
import { z } from 'zod';
import { canonicalJson, InvalidUtf8Text, MAX_DEPTH, NonFiniteNumber, parseJsonLossless, type JsonValue } from './canonical.js';
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
import { mapAttributes, mapEventParams, normaliseEmail, type FieldWarnings, type FlatAttributes, type InsiderEvent } from './transform.js';
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

export type RejectReason =
  | 'invalid json'
  | 'not an object'
  | 'too deeply nested'
  | 'no email'
  | 'unknown event'
  | 'no timestamp'
  | 'invalid timestamp';

export type ParsedLine =
  | {
      kind: 'event';
      email: string;
      event: InsiderEvent;
      epochMs: number;
      attributes: FlatAttributes;
      params: FlatAttributes;
      /** The ledger key (MAPPING §5 event identity): see eventKey. */
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
  if (value instanceof InvalidUtf8Text) return 'text that is not valid UTF-8';
  if (value instanceof NonFiniteNumber || typeof value === 'bigint') return 'a number';
  return `a ${typeof value}`;
}

function quote(value: unknown, max = 60): string {
  const text = typeof value === 'string' ? value : value instanceof InvalidUtf8Text ? value.text : canonicalJson(value);
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
  | { ok: true; payload: Json; receivedAt: unknown; eventId: string | undefined }
  | { ok: false; reason: 'invalid json' | 'not an object' | 'too deeply nested'; detail: string };

/** SPEC §4: of an envelope's headers only `eventid` is read (any case), a string or a number. */
function eventIdOf(headers: unknown): string | undefined {
  if (!isPlainObject(headers)) return undefined;
  for (const name of Object.keys(headers)) {
    if (name.toLowerCase() !== 'eventid') continue;
    const value = headers[name];
    if (typeof value === 'string' && value.trim() !== '') return value.trim();
    if ((typeof value === 'number' && Number.isFinite(value)) || typeof value === 'bigint') return String(value);
  }
  return undefined;
}

/** Removes the envelope, if any, and checks that what is left is a JSON object. */
function unwrap(parsed: JsonValue): Unwrapped {
  const top = JsonObject.safeParse(parsed);
  if (!top.success) return { ok: false, reason: 'not an object', detail: `the line is ${kindOf(parsed)}, not a JSON object` };
  const body = envelopeBody(top.data);
  if (!body.present) return { ok: true, payload: top.data, receivedAt: undefined, eventId: undefined };
  const envelope = Envelope.parse(top.data);
  let inner = body.value;
  if (typeof inner === 'string') {
    // The body sits one level inside the envelope, so it has one level less to spend.
    const innerParse = parseJsonLossless(inner, MAX_DEPTH - 1);
    if (!innerParse.ok) {
      return {
        ok: false,
        reason: innerParse.reason,
        detail: `the envelope's ${body.key} is a string that is not usable JSON: ${innerParse.detail}`,
      };
    }
    inner = innerParse.value;
  }
  const payload = JsonObject.safeParse(inner);
  if (!payload.success) {
    return { ok: false, reason: 'not an object', detail: `the envelope's ${body.key} is ${kindOf(inner)}, not a JSON object` };
  }
  return { ok: true, payload: payload.data, receivedAt: envelope.received_at, eventId: eventIdOf(envelope.headers) };
}

/** What identifies an event (MAPPING §5). */
export interface EventIdentity {
  /** The envelope's `eventid` header: Yotpo's id of the delivery, when the line has one. */
  eventId?: string | undefined;
  /** The webhook payload, envelope removed (as parsed by parseJsonLossless, or any JSON-like value). */
  payload: unknown;
  /** The UTC date (`YYYY-MM-DD`) of the envelope's `received_at`, when that is what timed the event. */
  receivedOn?: string | undefined;
}

/**
 * Key formats carry a version, so that a later change of the rule never makes an old key look like
 * a new one: `e1:<eventid>` (or `e1#<sha256 of it>` for an id that is not a plain token, which a
 * one-key-per-line ledger could not hold), `h1:<sha256 hex>`.
 */
export const EVENT_KEY_FORMAT = { eventId: 'e1', hash: 'h1' } as const;

const PLAIN_EVENT_ID = /^[A-Za-z0-9._:-]{1,128}$/;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * The ledger key (MAPPING §5): the envelope's eventid when there is one; else a sha256 of the
 * canonical payload (keys sorted, big integers exact) followed, when the envelope's received_at
 * timed the event, by a newline and its UTC date. So a birthday or reminder whose body repeats a
 * year or a month later is a new event, and a delivery Yotpo repeats the same day is the same one.
 */
export function eventKey(identity: EventIdentity): string {
  return keyOf(identity.eventId, () => canonicalJson(identity.payload), identity.receivedOn);
}

function keyOf(eventId: string | undefined, canonicalPayload: () => string, receivedOn: string | undefined): string {
  if (eventId !== undefined) {
    return PLAIN_EVENT_ID.test(eventId) ? `${EVENT_KEY_FORMAT.eventId}:${eventId}` : `${EVENT_KEY_FORMAT.eventId}#${sha256(eventId)}`;
  }
  return `${EVENT_KEY_FORMAT.hash}:${hashIdentity(canonicalPayload(), receivedOn)}`;
}

function hashIdentity(canonicalPayload: string, receivedOn: string | undefined): string {
  return sha256(receivedOn === undefined ? canonicalPayload : `${canonicalPayload}\n${receivedOn}`);
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

/**
 * Turns one non-blank replay line into an event, a skip or a reject. `text` is the line as the
 * reader decoded it: a U+FFFD inside a string that is not written as an escape is taken for bytes
 * that were not UTF-8 (the value is omitted with a field warning; a member email is a reject).
 */
export function parseWebhookLine(text: string, options: ReplayOptions, warnings: FieldWarnings): ParsedLine {
  const parsed = parseJsonLossless(text);
  if (!parsed.ok) {
    return parsed.reason === 'invalid json'
      ? reject('invalid json', `the line is not valid JSON: ${parsed.detail}`)
      : reject('too deeply nested', `the line is ${parsed.detail}; no webhook payload is nested that deep`);
  }
  const unwrapped = unwrap(parsed.value);
  if (!unwrapped.ok) return reject(unwrapped.reason, unwrapped.detail);
  const { payload, receivedAt, eventId } = unwrapped;

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
  let untimed = false;
  const yotpoName = row?.yotpoName ?? name?.trim() ?? topic?.trim() ?? '';
  if (row) {
    // Merchant-only (no customer): counted as skipped, never a reject for its missing email.
    if (row.insiderName === null) return { kind: 'skipped', reason: row.skipReason ?? 'not sent to Insider', yotpoName };
    insiderName = row.insiderName;
    shareEvent = row.shareEvent === true;
    optInEvent = row.optInEvent === true;
    untimed = row.untimed === true;
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
    const friend =
      shareEvent && !isAbsent(payload['email']) ? ' (the top-level email of a referral share is the friend, not the member)' : '';
    return reject('no email', `no member email: none of ${emailPaths.join(', ')} is present${friend}`);
  }
  if (emailAt.value instanceof InvalidUtf8Text) {
    return reject('no email', `the member email ${emailAt.path} is not valid UTF-8 (the reader replaced undecodable bytes with U+FFFD)`);
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
      return reject(
        'invalid timestamp',
        `the event time ${timestampAt.path} ${quote(timestampAt.value)} cannot be read as a date (${why})`,
      );
    }
    timestamp = date.ok as string;
  } else if (options.timestampFallback === 'now') {
    timestamp = formatUtc(options.now.getTime());
  } else {
    const searched = `none of ${timestampPaths.join(', ')} is present`;
    const fix =
      "an envelope's received_at times it (listen writes one around every delivery), or --timestamp-fallback now uses the run's start";
    return reject(
      'no timestamp',
      untimed
        ? `Yotpo's ${yotpoName || 'payload'} carries no time of its own (${searched}): ${fix}`
        : `no event time: ${searched} and there is no envelope received_at; ${fix}`,
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

  // The fallback's date is never part of the key: the same file would look new every day.
  const receivedOn = timestampAt?.path === 'received_at' ? timestamp.slice(0, 10) : undefined;
  const key = keyOf(eventId, () => canonicalJson(payload), receivedOn);
  return {
    kind: 'event',
    email,
    event,
    epochMs: Date.parse(timestamp),
    attributes,
    params,
    key,
    yotpoName,
  };
}
