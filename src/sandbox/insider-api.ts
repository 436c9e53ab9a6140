/**
 * The sandbox's Insider API (SPEC §3, §7): the upsert endpoint, served on the sandbox's server.
 * server.ts routes every `/api/user/*` request here; the Yotpo side lives in server.ts.
 */
import type { IncomingMessage } from 'node:http';
import { normaliseEmail, validateUser } from './insider.js';
import type { ReceivedUser, SandboxStats } from './types.js';

export const INSIDER_MAX_BODY_BYTES = 5_000_000;
export const INSIDER_MAX_USERS = 1000;

/** A request body as server.ts read it: null when over the limit. */
export interface InsiderRequestBody {
  buf: Buffer | null;
  bytes: number;
}

/** What server.ts writes back (the same shape as its own replies). */
export interface InsiderReply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
  /** raw text body instead of JSON */
  text?: string;
  users?: number;
  skipHook?: boolean;
}

export interface InsiderApiContext {
  partnerName: string;
  apiKey: string;
  /** The live fault settings (mutated by setFaults). */
  faults: { rejectRate: number; badRequestEmails: Set<string> };
  /** The current stats object (replaced by a reset). */
  stats: () => SandboxStats;
  /** false: keep counts only. */
  record: boolean;
}

export interface InsiderApi {
  handle(req: IncomingMessage, url: URL, body: InsiderRequestBody): InsiderReply;
  received(): ReceivedUser[];
  reset(): void;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

function json(status: number, body: unknown, headers?: Record<string, string>): InsiderReply {
  return headers ? { status, body, headers } : { status, body };
}

export function createInsiderApi(ctx: InsiderApiContext): InsiderApi {
  const partnerLower = ctx.partnerName.toLowerCase();
  let received: ReceivedUser[] = [];

  function upsert(req: IncomingMessage, body: InsiderRequestBody): InsiderReply {
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
    const meta: Pick<InsiderReply, 'users' | 'skipHook'> = { users: users.length };
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
        if (ctx.record) received.push({ ...user, skip_hook: skipHook });
      } else {
        failed++;
      }
    });
    stats.users.accepted += ok;
    stats.users.rejected += failed;
    return {
      ...json(200, {
        data: {
          successful: ok > 0 ? { count: ok } : {},
          fail: failed > 0 ? { count: failed, errors } : {},
        },
      }),
      ...meta,
    };
  }

  return {
    handle(req, url, body) {
      if (headerValue(req, 'x-partner-name') !== partnerLower || headerValue(req, 'x-request-token') !== ctx.apiKey) {
        return json(401, { success: false, message: 'Partner token authentication failed.' });
      }
      if (url.pathname !== '/api/user/v1/upsert' || req.method !== 'POST') return json(404, { error: 'not found' });
      return upsert(req, body);
    },
    received: () => received.slice(),
    reset() {
      received = [];
    },
  };
}
