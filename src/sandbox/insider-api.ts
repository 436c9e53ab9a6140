/**
 * The sandbox's Insider API (SPEC §3, §7, §9), unkind where the real one is:
 * - the partner name is checked first: an unknown one answers `400 Partner is invalid.` (as
 *   Insider does), the right one not lower-cased or a wrong token `401 Partner token
 *   authentication failed.`;
 * - request-level 400s with Insider's texts;
 * - a profile store per email, merged across upserts, where array attributes are APPENDED
 *   unless the user says `not_append: true` (or `append: false`);
 * - a panel schema (default: every custom attribute, event and parameter of the mapping) whose
 *   unknown or mistyped values are dropped silently while the 200 counts the user successful;
 * - the metadata endpoint serving that schema, and the profile endpoint serving the store (dates
 *   with milliseconds, arrays in another order than sent, `c_` custom keys, a per-minute quota);
 * - store-then-fault: the batch is stored, then the answer is slow, lost, a 5xx, miscounted,
 *   unreadable or held; and a redirect fault for every API.
 * server.ts routes every `/api/user/*` request here; the Yotpo side lives elsewhere.
 */
import type { IncomingMessage } from 'node:http';
import { requiredSchemaFromTable, type PanelType } from '../core/schema.js';
import { normaliseEmail, validateUser } from './insider.js';
import { json, type Reply, type RequestBody } from './reply.js';
import type { InsiderAfterStoreMode, InsiderSandboxFaults, InsiderSandboxOptions, ReceivedUser, SandboxStats } from './types.js';

export const INSIDER_MAX_BODY_BYTES = 5_000_000;
export const INSIDER_MAX_USERS = 1000;
export const PROFILE_CALL_COST = 2.5;
const MINUTE_MS = 60_000;

export interface InsiderApiContext {
  partnerName: string;
  apiKey: string;
  /** The live fault settings (mutated by setFaults). */
  faults: { rejectRate: number; badRequestEmails: Set<string> };
  /** The current stats object (replaced by a reset). */
  stats: () => SandboxStats;
  /** false: keep counts only. */
  record: boolean;
  options: InsiderSandboxOptions;
}

export interface InsiderApi {
  handle(req: IncomingMessage, url: URL, body: RequestBody): Reply;
  /** A redirect answer for any API while the redirect fault is set. */
  redirect(url: URL): Reply | null;
  /** `/__sandbox/*` routes of the Insider side; null when the route is not one of them. */
  control(method: string, url: URL, body: RequestBody): Reply | Promise<Reply> | null;
  applyFaults(f: InsiderSandboxFaults): void;
  faultState(): InsiderSandboxFaults;
  received(): ReceivedUser[];
  readonly storedBatches: number;
  waitForStored(n: number): Promise<void>;
  releaseHeld(): void;
  setProfile(email: string, attributes: Record<string, unknown>): void;
  reset(): void;
}

interface StoredEvent {
  name: string;
  timestampMs: number;
  params: Record<string, unknown>;
}

interface StoredProfile {
  defaults: Record<string, unknown>;
  custom: Record<string, unknown>;
  events: StoredEvent[];
  storedAtMs: number;
  iid: string;
}

type Schema = { attributes: Map<string, PanelType>; events: Map<string, Map<string, PanelType>> };

const DEFAULT_COLUMNS: readonly [string, PanelType][] = [
  ['email', 'string'],
  ['name', 'string'],
  ['surname', 'string'],
  ['birthday', 'date'],
  ['gender', 'string'],
  ['email_optin', 'boolean'],
  ['gdpr_optin', 'boolean'],
];

/** Another type than the mapping's, so a mistyped attribute's values never fit. */
const OTHER_TYPE: Record<PanelType, PanelType> = { string: 'number', number: 'string', boolean: 'string', date: 'string', array: 'string' };

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

function fits(value: unknown, type: PanelType): boolean {
  switch (type) {
    case 'array':
      return Array.isArray(value);
    case 'date':
      return typeof value === 'string' && RFC3339.test(value) && !Number.isNaN(Date.parse(value));
    default:
      return typeof value === type;
  }
}

/** How the profile API shows a stored value: dates with milliseconds, arrays in another order. */
function shown(value: unknown): unknown {
  if (Array.isArray(value)) return [...value].reverse();
  if (typeof value === 'string' && RFC3339.test(value) && !Number.isNaN(Date.parse(value))) return new Date(value).toISOString();
  return value;
}

function parseJson(body: RequestBody): unknown {
  if (!body.buf) return undefined;
  try {
    return JSON.parse(body.buf.toString('utf8'));
  } catch {
    return undefined;
  }
}

function buildSchema(options: InsiderSandboxOptions): Schema {
  const required = requiredSchemaFromTable();
  const missing = new Set(options.missingAttributes ?? []);
  const mistyped = new Set(options.mistypedAttributes ?? []);
  const attributes = new Map<string, PanelType>();
  for (const { name, type } of required.attributes) {
    if (missing.has(name)) continue;
    attributes.set(name, mistyped.has(name) ? OTHER_TYPE[type] : type);
  }
  const events = new Map<string, Map<string, PanelType>>();
  for (const event of required.events) events.set(event.name, new Map(event.params.map((p) => [p.name, p.type])));
  return { attributes, events };
}

export function createInsiderApi(ctx: InsiderApiContext): InsiderApi {
  const partnerLower = ctx.partnerName.toLowerCase();
  const schema = buildSchema(ctx.options);
  const quotaTotal = ctx.options.profileQuotaPerMinute ?? 1000;
  const fault: Required<Omit<InsiderSandboxFaults, 'afterStore' | 'redirect'>> & Pick<InsiderSandboxFaults, 'afterStore' | 'redirect'> = {
    afterStore: null,
    afterStoreDelayMs: 5000,
    redirect: null,
    visibilityDelayMs: 0,
    metadataEndpoint: true,
  };
  let received: ReceivedUser[] = [];
  const profiles = new Map<string, StoredProfile>();
  let storedBatches = 0;
  let unreadableCount = 0;
  let storedWaiters: { n: number; resolve: () => void }[] = [];
  const held: (() => void)[] = [];
  let profileCalls: number[] = [];

  function applyFaults(f: InsiderSandboxFaults): void {
    if (f.afterStore !== undefined) fault.afterStore = f.afterStore && f.afterStore.count > 0 ? { ...f.afterStore } : null;
    if (f.afterStoreDelayMs !== undefined) fault.afterStoreDelayMs = Math.max(0, f.afterStoreDelayMs);
    if (f.redirect !== undefined) fault.redirect = f.redirect;
    if (f.visibilityDelayMs !== undefined) fault.visibilityDelayMs = Math.max(0, f.visibilityDelayMs);
    if (f.metadataEndpoint !== undefined) fault.metadataEndpoint = f.metadataEndpoint;
  }
  applyFaults(ctx.options);

  function profileOf(email: string): StoredProfile {
    let profile = profiles.get(email);
    if (!profile) {
      profile = { defaults: {}, custom: {}, events: [], storedAtMs: Date.now(), iid: `sbx-${profiles.size + 1}` };
      profiles.set(email, profile);
    }
    return profile;
  }

  /** Merges one accepted user into the store, dropping what the panel schema does not hold. */
  function store(user: Record<string, unknown>): void {
    const ids = user.identifiers;
    const email = isPlainObject(ids) && typeof ids.email === 'string' ? normaliseEmail(ids.email) : undefined;
    if (email === undefined) return;
    const profile = profileOf(email);
    profile.storedAtMs = Date.now();
    const overwrite = user.append === false || (user.append === undefined && user.not_append === true);
    const attributes = isPlainObject(user.attributes) ? user.attributes : {};
    for (const [key, value] of Object.entries(attributes)) {
      if (key !== 'custom') profile.defaults[key] = value;
    }
    const custom = isPlainObject(attributes.custom) ? attributes.custom : {};
    for (const [key, value] of Object.entries(custom)) {
      const type = schema.attributes.get(key);
      if (type === undefined || !fits(value, type)) continue; // dropped silently, as Insider does
      const before = profile.custom[key];
      profile.custom[key] = type === 'array' && !overwrite && Array.isArray(before) ? [...before, ...(value as unknown[])] : value;
    }
    for (const event of Array.isArray(user.events) ? user.events : []) {
      if (!isPlainObject(event) || typeof event.event_name !== 'string' || typeof event.timestamp !== 'string') continue;
      const params = schema.events.get(event.event_name);
      if (!params) continue;
      const sent = isPlainObject(event.event_params) && isPlainObject(event.event_params.custom) ? event.event_params.custom : {};
      const kept: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(sent)) {
        const type = params.get(key);
        if (type !== undefined && fits(value, type)) kept[key] = value;
      }
      profile.events.push({ name: event.event_name, timestampMs: Date.parse(event.timestamp), params: kept });
    }
  }

  function stored(): void {
    storedBatches++;
    storedWaiters = storedWaiters.filter((waiter) => {
      if (storedBatches < waiter.n) return true;
      waiter.resolve();
      return false;
    });
  }

  /** The answer Insider gives once the batch is stored, bent by the after-store fault. */
  function afterStore(reply: Reply, mode: InsiderAfterStoreMode): Reply {
    const meta = { users: reply.users, skipHook: reply.skipHook };
    switch (mode) {
      case 'slow':
        return { ...reply, before: new Promise((resolve) => setTimeout(resolve, fault.afterStoreDelayMs)) };
      case 'hold':
        return { ...reply, before: new Promise<void>((resolve) => held.push(resolve)) };
      case 'reset':
        return { ...reply, destroySocket: true };
      case '500':
        return { ...json(500, { success: false, message: 'The request processing has failed because of an unknown error.' }), ...meta };
      case '502':
        return {
          status: 502,
          body: null,
          text: '<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>',
          headers: { 'content-type': 'text/html' },
          ...meta,
        };
      case 'bad-counts':
        return { ...json(200, { data: { successful: { count: 0 }, fail: { count: 0 } } }), ...meta };
      case 'unreadable':
        // Alternately an HTML page from a proxy and a JSON answer cut short.
        return unreadableCount++ % 2 === 0
          ? {
              status: 200,
              body: null,
              text: '<html><body>Service temporarily busy</body></html>',
              headers: { 'content-type': 'text/html' },
              ...meta,
            }
          : { status: 200, body: null, text: '{"data":{"successful":{"cou', headers: { 'content-type': 'application/json' }, ...meta };
    }
  }

  function upsert(req: IncomingMessage, body: RequestBody): Reply {
    const { faults } = ctx;
    const stats = ctx.stats();
    const ct = headerValue(req, 'content-type') ?? '';
    if (!/^application\/json\s*(;|$)/i.test(ct)) return json(400, { error: 'content type must be application/json' });
    if (body.buf === null || body.bytes > INSIDER_MAX_BODY_BYTES) {
      return json(400, { error: 'request body is bigger than maximum allowed size 5,000,000 bytes' });
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.buf.toString('utf8'));
    } catch {
      return json(400, { error: 'Request data is not in valid JSON format.' });
    }
    if (!isPlainObject(parsed)) return json(400, { error: 'Request data is not in valid JSON format.' });
    const users = parsed.users;
    if (!Array.isArray(users) || users.length === 0) return { ...json(400, { error: 'users must be defined: bad request' }), users: 0 };
    const meta: Pick<Reply, 'users' | 'skipHook'> = { users: users.length };
    if (typeof parsed.skip_hook === 'boolean') meta.skipHook = parsed.skip_hook;
    if (users.length > INSIDER_MAX_USERS) {
      return { ...json(400, { error: `users count must be less than or equal to ${INSIDER_MAX_USERS}: bad request` }), ...meta };
    }
    if (parsed.skip_hook !== undefined && typeof parsed.skip_hook !== 'boolean') {
      return { ...json(400, { error: 'skip_hook must be a boolean: bad request' }), ...meta };
    }
    if (faults.badRequestEmails.size > 0) {
      for (const u of users) {
        const e: unknown = isPlainObject(u) && isPlainObject(u.identifiers) ? u.identifiers.email : undefined;
        if (typeof e === 'string' && faults.badRequestEmails.has(normaliseEmail(e))) {
          return { ...json(400, { error: `sandbox bad request: the batch contains ${e.trim()}` }), ...meta };
        }
      }
    }
    const errors: Record<string, string[]> = {};
    let ok = 0;
    let failed = 0;
    const skipHook = typeof parsed.skip_hook === 'boolean' ? parsed.skip_hook : null;
    users.forEach((u: unknown, i: number) => {
      if (validateUser(u, i, errors, faults.rejectRate)) {
        ok++;
        const user = u as Record<string, unknown>;
        stats.events.accepted += Array.isArray(user.events) ? user.events.length : 0;
        store(user);
        if (ctx.record) received.push({ ...user, skip_hook: skipHook });
      } else {
        failed++;
      }
    });
    stats.users.accepted += ok;
    stats.users.rejected += failed;
    stored();
    const reply: Reply = {
      ...json(200, {
        data: {
          successful: ok > 0 ? { count: ok } : {},
          fail: failed > 0 ? { count: failed, errors } : {},
        },
      }),
      ...meta,
    };
    const pending = fault.afterStore;
    if (!pending) return reply;
    pending.count--;
    if (pending.count <= 0) fault.afterStore = null;
    return afterStore(reply, pending.mode);
  }

  function metadata(body: RequestBody): Reply {
    if (!fault.metadataEndpoint) return json(404, { error: 'not found' });
    const parsed = parseJson(body);
    const table = isPlainObject(parsed) ? parsed.table : undefined;
    if (table === 'contacts') {
      return json(200, [
        ...DEFAULT_COLUMNS.map(([key, type]) => ({ key, display_name: key, type })),
        ...[...schema.attributes].map(([name, type]) => ({ key: `c_${name}`, display_name: name, type })),
      ]);
    }
    if (table === 'events') {
      return json(
        200,
        [...schema.events].map(([name, params]) => ({
          key: name,
          display_name: name,
          params: [...params].map(([param, type]) => ({ key: param, display_name: param, type })),
        })),
      );
    }
    return json(400, { error: 'table must be one of contacts, events: bad request' });
  }

  function profile(body: RequestBody): Reply {
    const now = Date.now();
    profileCalls = profileCalls.filter((at) => at > now - MINUTE_MS);
    if ((profileCalls.length + 1) * PROFILE_CALL_COST > quotaTotal) {
      return json(
        429,
        { error: 'rejected: too many requests' },
        { 'retry-after': String(Math.ceil((profileCalls[0]! + MINUTE_MS - now) / 1000)) },
      );
    }
    profileCalls.push(now);
    const quota = { cost: PROFILE_CALL_COST, used: profileCalls.length * PROFILE_CALL_COST, total: quotaTotal };
    const parsed = parseJson(body);
    if (!isPlainObject(parsed)) return json(400, { error: 'Request data is not in valid JSON format.' });
    const ids = parsed.identifiers;
    const email = isPlainObject(ids) && typeof ids.email === 'string' ? normaliseEmail(ids.email) : undefined;
    if (email === undefined) return json(400, { error: 'identifiers must be defined: bad request' });
    const found = profiles.get(email);
    if (!found || now < found.storedAtMs + fault.visibilityDelayMs)
      return json(404, { error: 'no such user for these identifiers: no data' });

    const all: Record<string, unknown> = { iid: found.iid };
    for (const [key, value] of Object.entries(found.defaults)) all[key] = shown(value);
    for (const [key, value] of Object.entries(found.custom)) all[`c_${key}`] = shown(value);
    const wanted = Array.isArray(parsed.attributes) ? parsed.attributes.filter((a): a is string => typeof a === 'string') : [];
    const attributes = wanted.includes('*')
      ? all
      : Object.fromEntries(wanted.filter((name) => name in all).map((name) => [name, all[name]]));

    const events: Record<string, Record<string, unknown>[]> = {};
    if (isPlainObject(parsed.events)) {
      const { start_date: start, end_date: end, wanted: wantedEvents } = parsed.events;
      const fromMs = typeof start === 'number' ? start * 1000 : -Infinity;
      const toMs = typeof end === 'number' ? end * 1000 : Infinity;
      const names = Array.isArray(wantedEvents)
        ? new Map(
            wantedEvents.filter(isPlainObject).map((w) => [String(w.event_name), Array.isArray(w.params) ? w.params.map(String) : null]),
          )
        : null;
      for (const event of found.events) {
        if (event.timestampMs < fromMs || event.timestampMs > toMs) continue;
        if (names && !names.has(event.name)) continue;
        const params = names?.get(event.name) ?? null;
        const shownParams = params
          ? Object.fromEntries(params.filter((p) => p in event.params).map((p) => [p, event.params[p]]))
          : { ...event.params };
        (events[event.name] ??= []).push({ ...shownParams, created_date: new Date(event.timestampMs).toISOString().replace('.000Z', 'Z') });
      }
    }
    return json(200, { attributes, events, quota });
  }

  return {
    handle(req, url, body) {
      const partner = headerValue(req, 'x-partner-name') ?? '';
      if (partner.toLowerCase() !== partnerLower) return json(400, { success: false, message: 'Partner is invalid.' });
      if (partner !== partnerLower || headerValue(req, 'x-request-token') !== ctx.apiKey) {
        return json(401, { success: false, message: 'Partner token authentication failed.' });
      }
      if (req.method !== 'POST') return json(404, { error: 'not found' });
      switch (url.pathname) {
        case '/api/user/v1/upsert':
          return upsert(req, body);
        case '/api/user/v3/metadata/columns':
          return metadata(body);
        case '/api/user/v1/profile':
          return profile(body);
        default:
          return json(404, { error: 'not found' });
      }
    },
    redirect(url) {
      if (!fault.redirect) return null;
      const location = new URL(url.pathname + url.search, fault.redirect.to).toString();
      return json(fault.redirect.status, { error: 'moved' }, { location });
    },
    control(method, url, body) {
      const route = `${method} ${url.pathname}`;
      switch (route) {
        case 'POST /__sandbox/release':
          held.splice(0).forEach((release) => release());
          return json(200, { ok: true });
        case 'GET /__sandbox/wait-stored': {
          const n = Number(url.searchParams.get('batches') ?? '1');
          if (!Number.isSafeInteger(n) || n < 0) return json(400, { error: 'batches must be a non-negative integer' });
          return waitForStored(n).then(() => json(200, { storedBatches }));
        }
        case 'POST /__sandbox/insider/profile': {
          const parsed = parseJson(body);
          if (!isPlainObject(parsed) || typeof parsed.email !== 'string' || !isPlainObject(parsed.attributes)) {
            return json(400, { error: 'body must be {"email":…,"attributes":{…}}' });
          }
          setProfile(parsed.email, parsed.attributes);
          return json(200, { ok: true });
        }
        default:
          return null;
      }
    },
    applyFaults,
    faultState: () => structuredClone(fault),
    received: () => received.slice(),
    get storedBatches() {
      return storedBatches;
    },
    waitForStored,
    releaseHeld: () => held.splice(0).forEach((release) => release()),
    setProfile,
    reset() {
      received = [];
    },
  };

  function waitForStored(n: number): Promise<void> {
    if (storedBatches >= n) return Promise.resolve();
    return new Promise((resolve) => storedWaiters.push({ n, resolve }));
  }

  /** Overwrites stored values as given, without the schema (a test's way to make a profile differ). */
  function setProfile(email: string, attributes: Record<string, unknown>): void {
    const profile = profileOf(normaliseEmail(email));
    for (const [key, value] of Object.entries(attributes)) {
      if (key === 'custom' && isPlainObject(value)) Object.assign(profile.custom, value);
      else profile.defaults[key] = value;
    }
  }
}
