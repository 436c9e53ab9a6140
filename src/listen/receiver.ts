// The webhook receiver (SPEC §8): `POST /webhooks/yotpo` archives each accepted delivery and
// answers 200 only once an fsync covers it; `GET /healthz` reports the listener's health. The token
// is checked in constant time wherever Yotpo may put it, and never kept, logged or echoed.

import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { isIPv4, isIPv6, type AddressInfo } from 'node:net';
import { LocalFileError, UsageError } from '../errors.js';
import { registerSecret } from '../io/redact.js';
import { envelopeOf, type ArchiveEnvelope, type RejectEntry } from './archive.js';

export interface HealthBody {
  status: 'ok' | 'degraded';
  archived: number;
  forwarded: number;
  behind: number;
  insider: 'ok' | 'retrying' | 'rejected';
  since: string;
  reason?: string;
}

/** What the receiver needs of the archive (an ArchiveWriter). */
export interface ArchiveSink {
  append(envelope: ArchiveEnvelope): Promise<void>;
}

export interface ReceiverOptions {
  host: string;
  /** 0 picks a free port (see the returned url). */
  port: number;
  archive: ArchiveSink;
  /** Keeps a refused body (an ArchiveWriter's appendReject); a failure answers 503. */
  rejects: (entry: RejectEntry) => Promise<void> | void;
  /** YOTPO_WEBHOOK_TOKEN; without one only a loopback host is allowed. */
  token?: string;
  health: () => HealthBody;
  /** Default 1 MB. */
  maxBodyBytes?: number;
  /** The clock that stamps received_at (tests move it across midnight). */
  now?: () => Date;
}

export interface ReceiverStats {
  accepted: number;
  rejected: number;
  unauthorized: number;
  tooLarge: number;
  unavailable: number;
}

export interface Receiver {
  url: string;
  /** Stops accepting connections and resolves once every request in flight is answered. */
  close(): Promise<void>;
  stats: ReceiverStats;
}

export const WEBHOOK_PATH = '/webhooks/yotpo';
export const HEALTH_PATH = '/healthz';
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
/** Headers that may carry the token (besides Authorization and ?token=), lower-cased as node gives them. */
const TOKEN_HEADERS = ['x-api-key', 'x-webhook-token', 'x-yotpo-token'] as const;
/** After a 413, at most this much more of the body is read (and dropped) before the connection is cut. */
const DISCARD_AFTER_LIMIT = 4 * 1024 * 1024;

export function isLoopbackHost(host: string): boolean {
  const bare = host
    .trim()
    .replace(/^\[(.*)\]$/, '$1')
    .toLowerCase();
  if (bare === 'localhost' || bare === 'localhost.' || bare.endsWith('.localhost')) return true;
  if (isIPv4(bare)) return bare.startsWith('127.');
  if (isIPv6(bare)) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(bare);
    if (mapped?.[1]) return mapped[1].startsWith('127.');
    return expandIPv6(bare) === '0000:0000:0000:0000:0000:0000:0000:0001';
  }
  return false;
}

function expandIPv6(address: string): string {
  const [head = '', tail = ''] = address.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = address.includes('::') ? (tail === '' ? [] : tail.split(':')) : [];
  const groups = address.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  return groups.map((group) => group.padStart(4, '0')).join(':');
}

/** Without a token, deliveries could come from anyone who reaches the port: loopback only. */
export function checkBindAllowed(host: string, token: string | undefined): void {
  if (token) return;
  if (!isLoopbackHost(host)) {
    throw new UsageError(
      `listen --host ${host} is not a loopback address: set YOTPO_WEBHOOK_TOKEN (Yotpo's "Webhook Authentication" value) to accept deliveries from other hosts, or listen on 127.0.0.1`,
    );
  }
}

const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();

/** Every place Yotpo may put the token. */
function presentedTokens(request: IncomingMessage, url: URL): string[] {
  const found = url.searchParams.getAll('token');
  const authorization = request.headers.authorization;
  if (authorization !== undefined) {
    const trimmed = authorization.trim();
    found.push(trimmed);
    const bearer = /^bearer\s+(.+)$/i.exec(trimmed);
    if (bearer?.[1]) found.push(bearer[1].trim());
  }
  for (const name of TOKEN_HEADERS) {
    const value = request.headers[name];
    for (const one of Array.isArray(value) ? value : value === undefined ? [] : [value]) found.push(one.trim());
  }
  return found;
}

function authorized(expected: Buffer, presented: string[]): boolean {
  let match = false;
  // Equal-length digests, compared without an early exit: how much of a guess was right never shows.
  for (const candidate of presented) if (timingSafeEqual(digest(candidate), expected)) match = true;
  return match;
}

function hostForUrl(host: string): string {
  return isIPv6(host) ? `[${host}]` : host;
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}

type BodyRead = { kind: 'body'; bytes: Buffer } | { kind: 'too large' } | { kind: 'aborted' };

/** Reads the body up to `max` bytes; beyond it stops keeping bytes and reports 'too large' at once. */
function readBody(request: IncomingMessage, max: number): Promise<BodyRead> {
  const declared = Number(request.headers['content-length']);
  if (Number.isFinite(declared) && declared > max) return Promise.resolve({ kind: 'too large' });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const onData = (chunk: Buffer) => {
      length += chunk.length;
      if (length > max) {
        cleanup();
        resolve({ kind: 'too large' });
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve({ kind: 'body', bytes: Buffer.concat(chunks, length) });
    };
    const onAbort = () => {
      cleanup();
      resolve({ kind: 'aborted' });
    };
    const cleanup = () => {
      request.off('data', onData);
      request.off('end', onEnd);
      request.off('error', onAbort);
      request.off('close', onAbort);
    };
    request.on('data', onData);
    request.on('end', onEnd);
    request.on('error', onAbort);
    request.on('close', onAbort);
  });
}

/** Drops the rest of a refused body, so the client can read the answer; a huge one cuts the connection. */
function discardRest(request: IncomingMessage): void {
  let dropped = 0;
  request.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > DISCARD_AFTER_LIMIT) request.socket.destroy();
  });
  request.on('error', () => undefined);
  request.resume();
}

type Parsed = { ok: true; body: Record<string, unknown> } | { ok: false; reason: 'invalid json' | 'not an object'; detail: string };

function parseBody(text: string): Parsed {
  let value: unknown;
  try {
    value = JSON.parse(text.startsWith('\uFEFF') ? text.slice(1) : text);
  } catch (error) {
    return { ok: false, reason: 'invalid json', detail: (error as Error).message };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    const kind = value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
    return { ok: false, reason: 'not an object', detail: `the body is ${kind}, not a JSON object` };
  }
  return { ok: true, body: value as Record<string, unknown> };
}

function singleHeader(value: string | string[] | undefined): string | undefined {
  const one = Array.isArray(value) ? value[0] : value;
  const trimmed = one?.trim();
  return trimmed === '' ? undefined : trimmed;
}

export async function startReceiver(options: ReceiverOptions): Promise<Receiver> {
  const { host, port, archive, rejects, health } = options;
  const token = options.token === '' ? undefined : options.token;
  checkBindAllowed(host, token);
  registerSecret(token);
  const expected = token === undefined ? undefined : digest(token);
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const now = options.now ?? (() => new Date());
  const stats: ReceiverStats = { accepted: 0, rejected: 0, unauthorized: 0, tooLarge: 0, unavailable: 0 };
  let closing = false;

  /** A refused body kept in the rejects file, with the token (should it be in the body) masked. */
  const mask = (text: string) => (token === undefined ? text : text.split(token).join('[REDACTED]'));
  const keepRejected = async (reason: string, detail: string, raw: string): Promise<void> => {
    await rejects({ received_at: now().toISOString(), reason, detail: mask(detail), raw: mask(raw) });
  };

  async function receive(request: IncomingMessage, response: ServerResponse, url: URL): Promise<void> {
    if (expected !== undefined && !authorized(expected, presentedTokens(request, url))) {
      stats.unauthorized += 1;
      sendJson(response, 401, { ok: false, error: 'unauthorized' });
      return;
    }
    const read = await readBody(request, maxBodyBytes);
    if (read.kind === 'aborted') return;
    if (read.kind === 'too large') {
      stats.tooLarge += 1;
      discardRest(request);
      sendJson(response, 413, { ok: false, error: `body over ${maxBodyBytes} bytes` });
      return;
    }
    const text = read.bytes.toString('utf8');
    const parsed = parseBody(text);
    try {
      if (!parsed.ok) {
        await keepRejected(parsed.reason, parsed.detail, text);
        stats.rejected += 1;
        sendJson(response, 400, { ok: false, error: parsed.reason });
        return;
      }
      await archive.append(envelopeOf(parsed.body, singleHeader(request.headers['eventid']), now()));
    } catch (error) {
      if (!(error instanceof LocalFileError)) throw error;
      // Not on disk, so not acknowledged: Yotpo delivers it again.
      stats.unavailable += 1;
      sendJson(response, 503, { ok: false, error: 'archive unavailable' });
      return;
    }
    stats.accepted += 1;
    sendJson(response, 200, { ok: true });
  }

  function healthz(response: ServerResponse): void {
    const body = health();
    sendJson(response, body.status === 'ok' ? 200 : 503, body);
  }

  async function route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://receiver.invalid');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    if (path === WEBHOOK_PATH && request.method === 'POST') return receive(request, response, url);
    if (path === HEALTH_PATH && (request.method === 'GET' || request.method === 'HEAD')) return healthz(response);
    if (path === WEBHOOK_PATH || path === HEALTH_PATH) {
      response.setHeader('allow', path === WEBHOOK_PATH ? 'POST' : 'GET, HEAD');
      return sendJson(response, 405, { ok: false, error: 'method not allowed' });
    }
    sendJson(response, 404, { ok: false, error: 'not found' });
  }

  const inFlight = new Set<ServerResponse>();
  const server = createServer((request, response) => {
    inFlight.add(response);
    response.on('close', () => inFlight.delete(response));
    // While stopping, each answer also ends its connection, so close() is not held by keep-alives.
    if (closing) response.setHeader('connection', 'close');
    route(request, response).catch(() => {
      // An unexpected failure: answered without detail (it could quote a header) rather than hung.
      if (!response.headersSent) sendJson(response, 500, { ok: false, error: 'internal error' });
      else response.destroy();
    });
  });
  server.on('clientError', (_error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      if (error.code === 'EADDRINUSE') reject(new UsageError(`cannot listen on ${hostForUrl(host)}:${port}: the port is already in use`));
      else if (error.code === 'EACCES')
        reject(new UsageError(`cannot listen on ${hostForUrl(host)}:${port}: permission denied (a port below 1024 needs privileges)`));
      else if (error.code === 'EADDRNOTAVAIL' || error.code === 'ENOTFOUND' || error.code === 'EAI_AGAIN') {
        reject(new UsageError(`cannot listen on ${hostForUrl(host)}:${port}: this machine has no such address`));
      } else reject(new UsageError(`cannot listen on ${hostForUrl(host)}:${port}: ${error.message}`));
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });

  const address = server.address() as AddressInfo;
  const url = `http://${hostForUrl(host)}:${address.port}`;

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closed ??= new Promise<void>((resolve, reject) => {
      closing = true;
      server.close((error) => (error ? reject(error) : resolve()));
      // Idle keep-alive connections would hold close() open; busy ones end after their answer.
      server.closeIdleConnections();
      for (const response of inFlight) {
        if (!response.headersSent) response.setHeader('connection', 'close');
        else response.on('finish', () => setImmediate(() => server.closeIdleConnections()));
      }
    }));

  return { url, stats, close };
}
