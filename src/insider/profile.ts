// Insider's profile contract (SPEC §3): one user read back per call, within a quota of units per
// minute that each answer reports. `verify` reads users through it; the pacer keeps every minute
// within the quota however the calls are spread.

import { setTimeout as sleep } from 'node:timers/promises';
import { USER_ATTRIBUTES } from '../core/table.js';
import { AuthError } from '../errors.js';
import type { ApiClient } from '../io/http.js';

export const PROFILE_PATH = '/api/user/v1/profile';

export interface ProfileQuota {
  cost: number;
  used: number;
  total: number;
}

export type Profile = { found: true; attributes: Record<string, unknown>; events: unknown; quota?: ProfileQuota } | { found: false };

export interface ReadProfileOptions {
  /** Mapping names to read (custom ones are asked for `c_`-prefixed); default every attribute. */
  attributes?: readonly string[];
  /** Also read the user's events between these instants (ISO). */
  eventsWindow?: { from: string; to: string };
  /** With eventsWindow: only these events. */
  eventNames?: readonly string[];
  /** Waits for room in the quota before the call, and learns the quota from the answer. */
  pacer?: ProfilePacer;
}

/** The profile API names custom attributes `c_<name>`; the mapping (and the upsert) do not. */
const CUSTOM_PREFIX = 'c_';
const CUSTOM = new Set(USER_ATTRIBUTES.filter((row) => row.where === 'custom').map((row) => row.name));
const MAPPED = new Set(USER_ATTRIBUTES.map((row) => row.name));

function requestedName(name: string): string {
  return CUSTOM.has(name) ? `${CUSTOM_PREFIX}${name}` : name;
}

function mappingName(key: string): string {
  return key.startsWith(CUSTOM_PREFIX) && !MAPPED.has(key) ? key.slice(CUSTOM_PREFIX.length) : key;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Attributes under the mapping's names: `c_` dropped, and a nested `custom` object flattened. */
export function normaliseProfileAttributes(raw: Record<string, unknown>): Record<string, unknown> {
  const attributes: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (key === 'custom' && isObject(value)) {
      for (const [customKey, customValue] of Object.entries(value)) attributes[mappingName(customKey)] = customValue;
    } else attributes[mappingName(key)] = value;
  }
  return attributes;
}

function readQuota(value: unknown): ProfileQuota | undefined {
  if (!isObject(value)) return undefined;
  const { cost, used, total } = value;
  const finite = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n);
  return finite(cost) && finite(used) && finite(total) && total > 0 ? { cost, used, total } : undefined;
}

function messageOf(body: unknown): string {
  if (typeof body === 'string') return body;
  if (isObject(body)) return String(body.error ?? body.message ?? '');
  return '';
}

const CREDENTIAL_MESSAGE = /partner|token|access denied|unauthori[sz]ed/i;
const NO_SUCH_USER = /no such user/i;

const epochSeconds = (iso: string) => Math.floor(Date.parse(iso) / 1000);

/** Reads one user by email. A 404 "no such user" is `{found: false}` (not written, or not yet). */
export async function readProfile(client: ApiClient, email: string, options: ReadProfileOptions = {}): Promise<Profile> {
  const body: Record<string, unknown> = {
    identifiers: { email },
    attributes: options.attributes ? [...new Set(options.attributes.map(requestedName))] : ['*'],
    quota: true,
  };
  if (options.eventsWindow) {
    body.events = {
      start_date: epochSeconds(options.eventsWindow.from),
      end_date: epochSeconds(options.eventsWindow.to),
      ...(options.eventNames ? { wanted: options.eventNames.map((event_name) => ({ event_name, params: ['timestamp'] })) } : {}),
    };
  }
  const settle = await options.pacer?.take();
  const response = await client.request({ method: 'POST', path: PROFILE_PATH, json: body, passStatuses: [404], readable: isObject });
  const quota = isObject(response.body) ? readQuota(response.body.quota) : undefined;
  settle?.(quota);
  if (response.status === 404) {
    if (NO_SUCH_USER.test(messageOf(response.body))) return { found: false };
    throw client.unexpected(response, 'profile lookup (is INSIDER_API_URL the unification host?)');
  }
  // Insider answers credential problems with a 400 naming the partner or the token (SPEC §3).
  if (response.status === 400 && CREDENTIAL_MESSAGE.test(messageOf(response.body))) throw new AuthError(client.api, 400);
  if (response.status < 200 || response.status >= 300 || !isObject(response.body)) throw client.unexpected(response, 'profile lookup');
  const attributes = isObject(response.body.attributes) ? normaliseProfileAttributes(response.body.attributes) : {};
  return { found: true, attributes, events: response.body.events, ...(quota ? { quota } : {}) };
}

export interface PacerOptions {
  /** Units per window before any answer has reported the quota. */
  total?: number;
  /** Units per call before any answer has reported it. */
  cost?: number;
  windowMs?: number;
  /** Added to the window, so that calls a little late on the wire still fall in separate minutes. */
  marginMs?: number;
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  signal?: AbortSignal;
}

interface Spend {
  at: number;
  cost: number;
}

/**
 * Spaces profile calls evenly at the quota's pace (window × cost / total apart) and never lets the
 * units spent in any window (plus a margin) exceed the total: the calls this process made, and
 * the units the answers report that it did not spend (another process on the account).
 */
export class ProfilePacer {
  private total: number;
  private cost: number;
  private readonly windowMs: number;
  private readonly marginMs: number;
  private readonly now: () => number;
  private readonly wait: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly signal: AbortSignal | undefined;
  private readonly spent: Spend[] = [];
  private nextStartAt = 0;

  constructor(options: PacerOptions = {}) {
    this.total = options.total ?? 1000;
    this.cost = options.cost ?? 2.5;
    this.windowMs = options.windowMs ?? 60_000;
    this.marginMs = options.marginMs ?? 1000;
    this.now = options.now ?? Date.now;
    this.wait = options.sleep ?? ((ms, signal) => sleep(ms, undefined, signal ? { signal } : {}));
    this.signal = options.signal;
  }

  private get span(): number {
    return this.windowMs + this.marginMs;
  }

  /** Units spent in the span that ends at `at`. */
  private spentBefore(at: number): number {
    let sum = 0;
    for (const spend of this.spent) if (spend.at > at - this.span && spend.at <= at) sum += spend.cost;
    return sum;
  }

  /** The earliest instant ≥ `from` at which one more call of `cost` fits in the span before it. */
  private roomAt(from: number): number {
    let at = from;
    // Each step moves past the oldest spend that keeps the span too full; the log is short (one window).
    for (;;) {
      const inSpan = this.spent.filter((spend) => spend.at > at - this.span && spend.at <= at);
      const used = inSpan.reduce((sum, spend) => sum + spend.cost, 0);
      if (used + this.cost <= this.total || inSpan.length === 0) return at;
      at = inSpan[0]!.at + this.span;
    }
  }

  /**
   * Resolves when a call may start; the call's slot is reserved at once (concurrent callers queue).
   * Call the returned function with the answer's quota (or undefined when it had none).
   */
  async take(): Promise<(quota: ProfileQuota | undefined) => void> {
    const now = this.now();
    this.forget(now);
    const startAt = this.roomAt(Math.max(now, this.nextStartAt));
    const spend: Spend = { at: startAt, cost: this.cost };
    this.spent.push(spend);
    this.spent.sort((a, b) => a.at - b.at);
    this.nextStartAt = startAt + (this.windowMs * this.cost) / this.total;
    if (startAt > now) await this.wait(startAt - now, this.signal);
    return (quota) => this.learn(spend, quota);
  }

  private learn(spend: Spend, quota: ProfileQuota | undefined): void {
    if (!quota) return;
    spend.cost = quota.cost;
    this.cost = Math.max(quota.cost, Number.EPSILON);
    this.total = quota.total;
    // Units the account spent in this window that this process did not: someone else's calls.
    const now = this.now();
    const foreign = quota.used - this.spentBefore(now);
    if (foreign > 1e-9) {
      this.spent.push({ at: now, cost: foreign });
      this.spent.sort((a, b) => a.at - b.at);
    }
  }

  private forget(now: number): void {
    while (this.spent.length > 0 && this.spent[0]!.at <= now - this.span) this.spent.shift();
  }
}
