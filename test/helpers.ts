// Test helpers: an Io that captures what the CLI prints, a private working folder, and the
// expected results computed straight from the sandbox's generators.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { Io } from '../src/pipeline/report.js';
import { customerAt, reviewAt } from '../src/sandbox/index.js';

export interface CapturedIo extends Io {
  out(): string;
  err(): string;
}

export function captureIo(env: Record<string, string>, cwd = workdir()): CapturedIo {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
  return { stdout, stderr, stderrIsTty: false, env, cwd, out: () => out, err: () => err };
}

export function workdir(): string {
  return mkdtempSync(join(tmpdir(), 'yotpo-insider-test-'));
}

/** Options that lift every rate limit and shorten backoff, so tests run at loopback speed. */
export const FAST = { loyaltyRps: 0, reviewsRps: 0, insiderRps: 0, retryBaseMs: 5, maxRetryAfter: 0.05 } as const;

export function normalised(email: unknown): string | undefined {
  if (typeof email !== 'string') return undefined;
  const e = email.trim().toLowerCase();
  return /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(e) ? e : undefined;
}

export function sandboxCustomers(seed: number, customers: number): Record<string, unknown>[] {
  return Array.from({ length: customers }, (_, i) => customerAt(seed, i));
}

export function sandboxReviews(seed: number, reviews: number, customers: number): Record<string, unknown>[] {
  return Array.from({ length: reviews }, (_, j) => reviewAt(seed, j, customers));
}

/** MAPPING §4 computed the plain way (lists of reviews), independent of the product's aggregator. */
export function expectedAggregates(reviews: Record<string, unknown>[]): Map<string, Record<string, unknown>> {
  const byEmail = new Map<string, Record<string, unknown>[]>();
  const seen = new Set<unknown>();
  for (const review of reviews) {
    if (seen.has(review.id)) continue;
    seen.add(review.id);
    const email = normalised(review.email);
    if (!email) continue;
    if (!byEmail.has(email)) byEmail.set(email, []);
    if (review.deleted !== true) byEmail.get(email)!.push(review);
  }
  const round = (x: number) => Math.sign(x) * Math.round(Math.abs(x) * 100 + 1e-9) / 100;
  const mean = (xs: number[]) => (xs.length ? round(xs.reduce((a, b) => a + b, 0) / xs.length) : undefined);
  const result = new Map<string, Record<string, unknown>>();
  for (const [email, list] of byEmail) {
    const site = list.filter((r) => r.sku === 'yotpo_site_reviews');
    const product = list.filter((r) => r.sku !== 'yotpo_site_reviews');
    const sentiments = (rs: Record<string, unknown>[]) => rs.map((r) => r.sentiment).filter((s): s is number => typeof s === 'number');
    const topicCounts = new Map<string, number>();
    for (const r of list) for (const t of (r.topics as string[] | undefined) ?? []) topicCounts.set(t, (topicCounts.get(t) ?? 0) + 1);
    const topics = [...topicCounts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, 5).map(([t]) => t);
    const values: Record<string, unknown> = {
      yotpo_total_reviews: list.length,
      yotpo_avg_product_rating: mean(product.map((r) => r.score as number)),
      yotpo_avg_site_rating: mean(site.map((r) => r.score as number)),
      yotpo_total_avg_rating: mean(list.map((r) => r.score as number)),
      yotpo_avg_sentiment_product: mean(sentiments(product)),
      yotpo_avg_sentiment_site: mean(sentiments(site)),
      yotpo_total_avg_sentiment: mean(sentiments(list)),
      yotpo_top_topics: topics.length ? topics : undefined,
    };
    result.set(email, Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)));
  }
  return result;
}

export const REVIEW_ATTRIBUTES = [
  'yotpo_total_reviews',
  'yotpo_avg_product_rating',
  'yotpo_avg_site_rating',
  'yotpo_total_avg_rating',
  'yotpo_avg_sentiment_product',
  'yotpo_avg_sentiment_site',
  'yotpo_total_avg_sentiment',
  'yotpo_top_topics',
];
