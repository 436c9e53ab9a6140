// A load generator for the receiver: a number of concurrent senders, each posting deliveries one
// after another over its own keep-alive connection, like Yotpo's parallel webhook workers. Reports
// the throughput and the latency from the start of a request to its 200.

import { Agent, request } from 'node:http';

export interface DeliveryLoad {
  /** The receiver's webhook URL (with `?token=` if it needs one). */
  url: string;
  senders: number;
  deliveries: number;
  /** The payload, or one per delivery (so that each can carry its own event). */
  body: unknown | ((index: number) => unknown);
  /** Extra headers per delivery, e.g. an `eventid`. */
  headers?: (index: number) => Record<string, string>;
}

export interface DeliveryFigures {
  perSecond: number;
  p50ms: number;
  p99ms: number;
  /** Deliveries answered with something other than 200 (not counted in the latencies). */
  failed: number;
}

function post(agent: Agent, url: URL, body: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const outgoing = request(
      url,
      { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
        response.on('error', reject);
      },
    );
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

function percentile(sorted: number[], fraction: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1);
  return sorted[Math.max(0, index)] ?? 0;
}

export async function measureDeliveries(load: DeliveryLoad): Promise<DeliveryFigures> {
  const url = new URL(load.url);
  const agent = new Agent({ keepAlive: true, maxSockets: load.senders });
  const bodyOf = typeof load.body === 'function' ? (load.body as (index: number) => unknown) : () => load.body;
  const latencies: number[] = [];
  let failed = 0;
  let next = 0;

  async function sender(): Promise<void> {
    for (let index = next++; index < load.deliveries; index = next++) {
      const body = JSON.stringify(bodyOf(index));
      const started = process.hrtime.bigint();
      const status = await post(agent, url, body, load.headers?.(index) ?? {});
      const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
      if (status === 200) latencies.push(elapsedMs);
      else failed += 1;
    }
  }

  const started = process.hrtime.bigint();
  try {
    await Promise.all(Array.from({ length: load.senders }, () => sender()));
  } finally {
    agent.destroy();
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  latencies.sort((a, b) => a - b);
  return {
    perSecond: seconds > 0 ? latencies.length / seconds : 0,
    p50ms: percentile(latencies, 0.5),
    p99ms: percentile(latencies, 0.99),
    failed,
  };
}
