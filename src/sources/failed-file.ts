// `retry`'s source: the users of a failed file, sent again exactly as they were, except events the
// shared ledger no longer allows: one delivered since is dropped from its user, and a user whose
// events Insider may hold (uncertain) is held back, kept in this run's failed file, until the
// operator chooses `--force` (or verify --uncertain releases them).

import { normaliseEmail, type InsiderUser } from '../core/transform.js';
import { StoreError, UsageError } from '../errors.js';
import { readLines } from '../io/lines.js';
import type { Item } from '../pipeline/items.js';
import type { RunContext } from '../pipeline/run-pipeline.js';
import type { EventRef, Reservation } from '../state/ledger.js';
import { describeAccount, sameAccount, type Account } from '../state/store.js';
import { userAudit } from './audit-rows.js';

export interface FailedLine {
  user: InsiderUser;
  event_keys?: string[];
  delivery_uncertain?: boolean;
  account?: Account;
  [field: string]: unknown;
}

export interface RetryTag {
  eventKeys: string[];
}

/** What a line that is not a failed-user record looks like, for the message that refuses the file. */
export function describeLine(value: unknown): string | undefined {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return 'not a JSON object';
  const record = value as Record<string, unknown>;
  const user = record.user as { identifiers?: { email?: unknown } } | undefined;
  if (user && typeof user === 'object' && typeof user.identifiers?.email === 'string') return undefined;
  if ('raw' in record && 'reason' in record) return 'a line of a rejects file';
  if ('topic' in record || 'body' in record || 'payload' in record || 'name' in record) return 'a saved webhook (replay it instead)';
  return 'not a failed-file record (no user.identifiers.email)';
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Refuses a file whose first record is not a failed user (exit 2, saying what it is instead). */
export async function checkFailedFile(path: string, label: string): Promise<void> {
  for await (const { lineNumber, text } of readLines(path)) {
    if (text.trim() === '') continue;
    const problem = describeLine(parse(text));
    if (problem) throw new UsageError(`${label} is not a failed file: line ${lineNumber} is ${problem}`);
    return;
  }
  throw new UsageError(`${label} holds no failed users (it is empty)`);
}

export async function* failedFileSource(ctx: RunContext, path: string, force: boolean): AsyncGenerator<Item<RetryTag>> {
  const account = ctx.config.insider ? { partner: ctx.config.insider.partnerName, url: ctx.config.insider.url } : undefined;
  let chunk: { line: number; record: FailedLine }[] = [];
  // Keys this run already sends: a user listed twice (overlapping failed files) sends its events once.
  const taken = new Set<string>();
  const flush = async function* (): AsyncGenerator<Item<RetryTag>> {
    const all = chunk.flatMap(({ record }) => eventRefs(record));
    const ledger = all.length > 0 ? await ctx.ledger() : undefined;
    // A line marked uncertain stays held unless the ledger released its keys (verify --uncertain) or --force.
    const held = (record: FailedLine) =>
      !force &&
      record.delivery_uncertain === true &&
      eventRefs(record).some((ref) => !['released', 'delivered'].includes(ledger?.stateOf(ref.key) ?? 'unknown'));
    const refs = chunk.flatMap(({ record }) => (held(record) ? [] : eventRefs(record).filter((ref) => !taken.has(ref.key))));
    // Without a store (a dry run without Insider variables) nothing is known: every event would be sent.
    const verdicts = ledger
      ? await ledger.reserve(refs, { uncertain: force })
      : new Map<string, Reservation>(refs.map((ref) => [ref.key, 'reserved']));
    const items = chunk.map(({ record }) => itemFor(record, verdicts, held(record), taken));
    // Keys reserved for a user that is held back after all were never sent: give them back.
    const sending = new Set(items.flatMap((item) => (item.kind === 'send' ? (item.events ?? []).map((ref) => ref.key) : [])));
    const unused = refs.filter((ref) => verdicts.get(ref.key) === 'reserved' && !sending.has(ref.key)).map((ref) => ref.key);
    await ledger?.settle(unused, 'released');
    chunk = [];
    // Keys of users the run has not taken yet are given back if it stops early: they were never sent.
    const notTaken = new Set(sending);
    try {
      for (const item of items) {
        yield item;
        if (item.kind === 'send') for (const ref of item.events ?? []) notTaken.delete(ref.key);
      }
    } finally {
      if (notTaken.size > 0) await ledger?.settle([...notTaken], 'released');
    }
  };
  for await (const { lineNumber, text } of readLines(path)) {
    if (ctx.signal.aborted) return;
    if (text.trim() === '') continue;
    const record = parse(text);
    const problem = describeLine(record);
    if (problem || !normaliseEmail((record as FailedLine).user.identifiers.email)) {
      ctx.reporter.warn(`line ${lineNumber} is ${problem ?? 'a user without a valid email'}: not retried`);
      yield { kind: 'reject', line: lineNumber, reason: 'not a failed-file line', raw: text };
      continue;
    }
    const failed = record as FailedLine;
    if (failed.account && account && !sameAccount(failed.account, account)) {
      throw new StoreError(
        `line ${lineNumber} was written for ${describeAccount(failed.account)}, but this run writes to ${describeAccount(account)}: retry it with that account's variables`,
      );
    }
    chunk.push({ line: lineNumber, record: failed });
    if (chunk.length >= ctx.options.batchSize) yield* flush();
  }
  yield* flush();
}

/** The ledger identity of each event a failed user carries, aligned with `user.events`. */
function eventRefs(record: FailedLine): EventRef[] {
  const keys = Array.isArray(record.event_keys) ? record.event_keys.map(String) : [];
  const events = Array.isArray(record.user.events) ? record.user.events : [];
  return keys.map((key, index) => ({
    key,
    email: record.user.identifiers.email,
    event_name: String(events[index]?.event_name ?? ''),
    timestamp: String(events[index]?.timestamp ?? ''),
  }));
}

function itemFor(record: FailedLine, verdicts: ReadonlyMap<string, Reservation>, markedHeld: boolean, taken: Set<string>): Item<RetryTag> {
  // A line written by an earlier version may lack not_append: Insider would then grow array attributes.
  const user: InsiderUser = { ...record.user, not_append: true };
  const email = user.identifiers.email;
  const refs = eventRefs(record);
  const audit = userAudit(email, user, 'retry');
  // Events without their ledger keys (a hand-made line) cannot be guarded against a second send.
  if (refs.length === 0 && (user.events?.length ?? 0) > 0) {
    return { kind: 'skip', unit: 'user', reason: 'events without ledger keys', audit, failedLine: { ...record } };
  }
  if (refs.length === 0) return { kind: 'send', user, tag: { eventKeys: [] }, audit };
  const held =
    markedHeld ||
    refs.some((ref) => {
      const verdict = verdicts.get(ref.key);
      return verdict === 'delivery uncertain' || verdict === 'in flight elsewhere';
    });
  if (held)
    return {
      kind: 'skip',
      unit: 'user',
      reason: 'delivery uncertain',
      audit,
      uncertainEvents: refs.length,
      failedLine: { ...record, delivery_uncertain: true },
    };
  const keep = refs.map((ref, index) => ({ ref, index })).filter(({ ref }) => verdicts.get(ref.key) === 'reserved' && !taken.has(ref.key));
  for (const { ref } of keep) taken.add(ref.key);
  if (keep.length === 0) return { kind: 'skip', unit: 'user', reason: 'already delivered', audit };
  const events = keep.map(({ index }) => user.events![index]!);
  const sent: InsiderUser = { ...user, events };
  return {
    kind: 'send',
    user: sent,
    tag: { eventKeys: keep.map(({ ref }) => ref.key) },
    events: keep.map(({ ref }) => ref),
    audit: userAudit(email, sent, 'retry'),
  };
}
