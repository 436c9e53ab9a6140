/**
 * The sandbox server: Yotpo Loyalty, Yotpo Reviews and Insider upsert on one node:http server on
 * 127.0.0.1, serving generated data (./data.ts) with fault injection. See SPEC.md §3 and §7.
 * The Yotpo APIs live in ./yotpo-api.ts (with their paging quirks), Insider's in ./insider-api.ts.
 *
 * Other behaviour worth knowing:
 * - faults are decided on arrival: rate limit (token bucket per API, burst = rps) first, then
 *   failRate; a faulted request is not processed (nothing recorded as received). Latency is added
 *   to every API response, faulted or not. /__sandbox/* is never faulted, delayed or authenticated.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SANDBOX_CREDENTIALS } from './data.js';
import { isRejectedEmail, normaliseEmail } from './insider.js';
import { createInsiderApi, INSIDER_MAX_BODY_BYTES, INSIDER_MAX_USERS } from './insider-api.js';
import { STREAM, mix32, mulberry32, type Rng } from './prng.js';
import { json, type Reply, type RequestBody } from './reply.js';
import { createYotpoApi, REVIEWS_MAX_COUNT, YOTPO_RATE_LIMIT_HEADERS } from './yotpo-api.js';
import type { RecordedRequest, Sandbox, SandboxApi, SandboxFaults, SandboxOptions, SandboxStats } from './types.js';

export { INSIDER_MAX_BODY_BYTES, INSIDER_MAX_USERS, REVIEWS_MAX_COUNT };
const OTHER_MAX_BODY_BYTES = 1_000_000;
const SECRET_HEADERS = new Set(['x-api-key', 'x-guid', 'x-request-token', 'authorization', 'cookie', 'x-yotpo-token']);
const APIS: readonly SandboxApi[] = ['loyalty', 'reviews', 'insider'];

class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(private readonly rps: number) {
    this.tokens = Math.max(1, rps);
    this.last = performance.now();
  }
  take(): boolean {
    const now = performance.now();
    const cap = Math.max(1, this.rps);
    this.tokens = Math.min(cap, this.tokens + ((now - this.last) / 1000) * this.rps);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }
}

function apiOf(path: string): SandboxApi | null {
  if (path.startsWith('/api/v2/')) return 'loyalty';
  if (path === '/oauth/token' || path.startsWith('/v1/apps/')) return 'reviews';
  if (path.startsWith('/api/user/')) return 'insider';
  return null;
}

function readBody(req: IncomingMessage, limit: number): Promise<RequestBody> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (over) return;
      if (bytes > limit) {
        over = true;
        chunks.length = 0;
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve({ buf: over ? null : Buffer.concat(chunks), bytes }));
    req.on('error', reject);
  });
}

function safeHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined || SECRET_HEADERS.has(k)) continue;
    out[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

export function redactPath(rawUrl: string): string {
  return rawUrl.replace(/([?&]utoken=)[^&#]*/gi, '$1REDACTED');
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function startSandbox(opts: SandboxOptions): Promise<Sandbox> {
  const nCustomers = opts.customers;
  const nReviews = opts.reviews;
  if (!Number.isSafeInteger(nCustomers) || nCustomers < 0)
    throw new RangeError(`customers must be a non-negative integer, got ${nCustomers}`);
  if (!Number.isSafeInteger(nReviews) || nReviews < 0) throw new RangeError(`reviews must be a non-negative integer, got ${nReviews}`);
  const seed = opts.seed ?? 1;
  const record = opts.recordUsers ?? true;
  const creds = SANDBOX_CREDENTIALS;

  // ---- mutable state ------------------------------------------------------------------------
  const faults = {
    latencyMs: 0,
    failRate: 0,
    rateLimitRps: 0,
    rejectRate: 0,
    badRequestEmails: new Set<string>(),
  };
  const insiderApi = createInsiderApi({
    partnerName: creds.insiderPartner,
    apiKey: creds.insiderApiKey,
    faults,
    stats: () => stats,
    record,
    options: opts,
  });
  const yotpoApi = createYotpoApi({
    seed,
    customers: nCustomers,
    reviews: nReviews,
    loyaltyPageSizeMax: opts.loyaltyPageSizeMax ?? 100,
    credentials: creds,
    stats: () => stats,
    faults: opts,
  });
  let buckets = new Map<SandboxApi, TokenBucket>();
  const applyFaults = (f: SandboxFaults): void => {
    insiderApi.applyFaults(f);
    yotpoApi.applyFaults(f);
    if (f.latencyMs !== undefined) faults.latencyMs = Math.max(0, f.latencyMs);
    if (f.failRate !== undefined) faults.failRate = Math.min(1, Math.max(0, f.failRate));
    if (f.rejectRate !== undefined) faults.rejectRate = Math.min(1, Math.max(0, f.rejectRate));
    if (f.badRequestEmails !== undefined) faults.badRequestEmails = new Set(f.badRequestEmails.map(normaliseEmail));
    if (f.rateLimitRps !== undefined) {
      faults.rateLimitRps = Math.max(0, f.rateLimitRps);
      buckets = new Map();
    }
  };
  applyFaults(opts);
  const faultRng: Rng = mulberry32(mix32(seed, STREAM.faults, 0));

  let requests: RecordedRequest[] = [];
  const emptyStats = (): SandboxStats => ({
    requests: 0,
    byStatus: {},
    byApi: {
      loyalty: { requests: 0, byStatus: {} },
      reviews: { requests: 0, byStatus: {} },
      insider: { requests: 0, byStatus: {} },
    },
    faults: { rateLimited: 0, failed: 0 },
    users: { accepted: 0, rejected: 0 },
    events: { accepted: 0 },
    tokensIssued: 0,
  });
  let stats = emptyStats();

  // ---- faults -------------------------------------------------------------------------------
  function injectedFailure(api: SandboxApi): Reply {
    const u = faultRng();
    if (u < 1 / 3) {
      return json(
        500,
        api === 'insider'
          ? { success: false, message: 'The request processing has failed because of an unknown error.' }
          : { error: 'internal server error' },
      );
    }
    if (u < 2 / 3) {
      return {
        status: 502,
        body: null,
        text: '<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>',
        headers: { 'content-type': 'text/html' },
      };
    }
    return json(503, { error: 'Temporarily unavailable, please try again later.' });
  }

  // ---- control ------------------------------------------------------------------------------
  async function control(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const body = await readBody(req, OTHER_MAX_BODY_BYTES);
    const route = `${req.method} ${url.pathname}`;
    switch (route) {
      case 'GET /__sandbox/insider/users':
        return send(res, json(200, insiderApi.received()));
      case 'GET /__sandbox/stats':
        return send(res, json(200, stats));
      case 'GET /__sandbox/requests':
        return send(res, json(200, requests));
      case 'POST /__sandbox/faults': {
        let f: unknown;
        try {
          f = JSON.parse(body.buf?.toString('utf8') || '{}');
        } catch {
          f = null;
        }
        if (!isPlainObject(f)) return send(res, json(400, { error: 'body must be a JSON object' }));
        applyFaults(f as SandboxFaults);
        return send(
          res,
          json(200, { ...faults, badRequestEmails: [...faults.badRequestEmails], ...insiderApi.faultState(), ...yotpoApi.faults() }),
        );
      }
      case 'POST /__sandbox/expire-tokens':
        yotpoApi.expireTokens();
        return send(res, json(200, { ok: true }));
      case 'POST /__sandbox/reset':
        doReset();
        return send(res, json(200, { ok: true }));
      default:
        return send(
          res,
          (await insiderApi.control(req.method ?? 'GET', url, body)) ?? json(404, { error: 'unknown sandbox control endpoint' }),
        );
    }
  }

  function doReset(): void {
    insiderApi.reset();
    requests = [];
    stats = emptyStats();
  }

  interface Serialised {
    status: number;
    headers: Record<string, string>;
    payload: string;
  }

  function serialise(r: Reply): Serialised {
    const headers: Record<string, string> = { ...(r.headers ?? {}) };
    let payload: string;
    if (r.text !== undefined) {
      payload = r.text;
    } else {
      payload = JSON.stringify(r.body);
      headers['content-type'] ??= 'application/json; charset=utf-8';
    }
    headers['content-length'] = String(Buffer.byteLength(payload));
    return { status: r.status, headers, payload };
  }

  function write(res: ServerResponse, out: Serialised): void {
    res.writeHead(out.status, out.headers);
    res.end(out.payload);
  }

  function send(res: ServerResponse, r: Reply): void {
    write(res, serialise(r));
  }

  // ---- dispatch -----------------------------------------------------------------------------
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rawUrl = req.url ?? '/';
    const url = new URL(rawUrl, 'http://127.0.0.1');
    if (url.pathname.startsWith('/__sandbox/')) return control(req, res, url);
    const api = apiOf(url.pathname);
    if (api === null) {
      await readBody(req, 0);
      return send(res, json(404, { error: 'not found' }));
    }

    // fault decisions are taken on arrival
    let fault: RecordedRequest['fault'];
    if (faults.rateLimitRps > 0) {
      let b = buckets.get(api);
      if (!b) buckets.set(api, (b = new TokenBucket(faults.rateLimitRps)));
      if (!b.take()) fault = 'rate_limit';
    }
    if (!fault && faults.failRate > 0 && faultRng() < faults.failRate) fault = 'fail';

    const arrivedAt = Date.now();
    const body = await readBody(req, api === 'insider' ? INSIDER_MAX_BODY_BYTES : OTHER_MAX_BODY_BYTES);

    let reply: Reply;
    const redirect = insiderApi.redirect(url);
    if (redirect) {
      reply = redirect;
    } else if (fault === 'rate_limit') {
      stats.faults.rateLimited++;
      reply = json(
        429,
        { error: 'rejected: too many requests' },
        api === 'insider' ? { 'retry-after': '1' } : { ...YOTPO_RATE_LIMIT_HEADERS },
      );
    } else if (fault === 'fail') {
      stats.faults.failed++;
      reply = injectedFailure(api);
    } else if (api === 'loyalty') {
      reply = yotpoApi.loyalty(req, url);
    } else if (api === 'reviews') {
      reply = yotpoApi.reviews(req, url, body);
    } else {
      reply = insiderApi.handle(req, url, body);
    }
    // The answer leaves latencyMs after the request arrived: the sandbox's own work happens inside
    // that time, as a real API's does, instead of adding to it.
    const out = serialise(reply);
    const wait = faults.latencyMs - (Date.now() - arrivedAt);
    if (wait > 0) await sleep(wait);
    if (reply.before) await reply.before;
    if (reply.destroySocket) req.socket.destroy();
    else write(res, out);

    const status = String(reply.status);
    stats.requests++;
    stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
    const s = stats.byApi[api];
    s.requests++;
    s.byStatus[status] = (s.byStatus[status] ?? 0) + 1;
    if (record) {
      const rec: RecordedRequest = {
        api,
        method: req.method ?? 'GET',
        path: redactPath(rawUrl),
        status: reply.status,
        headers: safeHeaders(req),
      };
      if (req.method === 'POST' || body.bytes > 0) rec.bytes = body.bytes;
      if (reply.users !== undefined) rec.users = reply.users;
      if (reply.skipHook !== undefined) rec.skipHook = reply.skipHook;
      if (fault) rec.fault = fault;
      requests.push(rec);
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) {
        try {
          send(res, json(500, { error: `sandbox internal error: ${err instanceof Error ? err.message : String(err)}` }));
        } catch {
          res.destroy();
        }
      } else {
        res.destroy();
      }
    });
  });
  server.keepAliveTimeout = 30_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;

  let closed: Promise<void> | null = null;
  return {
    url,
    env: {
      YOTPO_LOYALTY_URL: url,
      YOTPO_API_URL: url,
      INSIDER_API_URL: url,
      YOTPO_LOYALTY_API_KEY: creds.loyaltyApiKey,
      YOTPO_LOYALTY_GUID: creds.loyaltyGuid,
      YOTPO_APP_KEY: creds.appKey,
      YOTPO_API_SECRET: creds.apiSecret,
      INSIDER_PARTNER_NAME: creds.insiderPartner,
      INSIDER_API_KEY: creds.insiderApiKey,
    },
    setFaults: applyFaults,
    expireReviewTokens: () => yotpoApi.expireTokens(),
    received: () => insiderApi.received(),
    requests: () => requests.slice(),
    stats: () => structuredClone(stats),
    reset: doReset,
    get storedBatches() {
      return insiderApi.storedBatches;
    },
    waitForStored: (n: number) => insiderApi.waitForStored(n),
    releaseHeld: () => insiderApi.releaseHeld(),
    setProfile: (email: string, attributes: Record<string, unknown>) => insiderApi.setProfile(email, attributes),
    close: () => {
      insiderApi.releaseHeld();
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}

export { isRejectedEmail, APIS as SANDBOX_APIS };
