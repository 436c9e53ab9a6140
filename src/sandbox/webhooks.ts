/**
 * `sandbox --webhooks <file> --post-to <url>` (SPEC §7): posts saved Yotpo webhook payloads (JSONL,
 * the replay input format; `.gz` is gunzipped) to a listener as Yotpo would, for rehearsals of
 * `listen` and the benchmark. Each line is one delivery: an envelope's `body` (or `payload`) with its
 * `headers.eventid` as an `eventid` header, or the line itself as the raw payload. A delivery that
 * gets no 2xx (a refused connection included) is tried again after a bounded backoff, up to
 * `maxAttempts`; then it counts as failed. It stops by itself at the end of the file.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { createGunzip } from 'node:zlib';
import { readAhead } from '../io/read-ahead.js';
import { RateLimiter } from '../io/rate-limit.js';

export interface PostWebhooksOptions {
  /** JSONL of payloads or envelopes `{"received_at","headers":{"eventid"},"body"}`. */
  file: string;
  /** The listener, e.g. `http://127.0.0.1:8787/webhooks/yotpo`. */
  url: string;
  /** Attempts started per second; 0 = no limit. */
  ratePerSecond: number;
  /** Deliveries in flight at once (default 8). */
  concurrency?: number;
  /** The listener's shared secret, sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Stops starting deliveries and abandons those in flight. */
  signal?: AbortSignal;
  /** Attempts per delivery, the first included (default 6). */
  maxAttempts?: number;
  /** First backoff ceiling in ms (default 200); doubles per attempt up to 5 s, with full jitter. */
  backoffMs?: number;
}

export interface PostWebhooksResult {
  /** Deliveries that got a 2xx. */
  delivered: number;
  /** POST requests sent, retries included. */
  attempts: number;
  /** Deliveries that never got a 2xx. */
  failed: number;
}

const MAX_BACKOFF_MS = 5_000;

interface Delivery {
  body: string;
  eventId?: string;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** What Yotpo would post for one line: an envelope's payload and event id, or the line itself. */
export function deliveryOf(line: string): Delivery {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return { body: line };
  }
  if (isObject(parsed) && ('received_at' in parsed || 'headers' in parsed)) {
    const payload = parsed.body ?? parsed.payload;
    if (payload !== undefined) {
      const eventId = isObject(parsed.headers) ? parsed.headers.eventid : undefined;
      return { body: JSON.stringify(payload), ...(typeof eventId === 'string' && eventId !== '' ? { eventId } : {}) };
    }
  }
  return { body: line };
}

async function* linesOf(file: string): AsyncGenerator<string> {
  const raw = createReadStream(file);
  const input = file.endsWith('.gz') ? raw.pipe(createGunzip()) : raw;
  raw.on('error', (error) => input.destroy(error));
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    if (line.trim() !== '') yield line;
  }
}

export async function postWebhooks(options: PostWebhooksOptions): Promise<PostWebhooksResult> {
  const { url, token, signal } = options;
  const maxAttempts = Math.max(1, options.maxAttempts ?? 6);
  const backoffMs = Math.max(1, options.backoffMs ?? 200);
  const pacer = new RateLimiter(Math.max(0, options.ratePerSecond));
  const result: PostWebhooksResult = { delivered: 0, attempts: 0, failed: 0 };

  const post = async ({ body, eventId }: Delivery): Promise<void> => {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'Yotpo-Webhooks (yotpo-insider sandbox)' };
    if (eventId) headers.eventid = eventId;
    if (token) headers.authorization = `Bearer ${token}`;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      await pacer.take(signal);
      result.attempts++;
      try {
        const response = await fetch(url, { method: 'POST', headers, body, ...(signal ? { signal } : {}) });
        await response.arrayBuffer(); // frees the connection for the next delivery
        if (response.ok) {
          result.delivered++;
          return;
        }
      } catch (error) {
        if (signal?.aborted) throw error;
        // a refused or broken connection: tried again like a non-2xx answer
      }
      if (attempt < maxAttempts) {
        const ceiling = Math.min(MAX_BACKOFF_MS, backoffMs * 2 ** (attempt - 1));
        await sleep(Math.floor(Math.random() * ceiling), undefined, signal ? { signal } : {});
      }
    }
    result.failed++;
  };

  async function* deliveries() {
    for await (const line of linesOf(options.file)) {
      const delivery = deliveryOf(line);
      yield () => post(delivery);
    }
  }
  try {
    for await (const _ of readAhead(deliveries(), Math.max(1, options.concurrency ?? 8), signal)) {
      // each delivery counts itself
    }
  } catch (error) {
    if (!signal?.aborted) throw error;
  }
  return result;
}
