// Per-reviewer review aggregates (MAPPING §4), kept compact: a reviewer is one row of typed-array
// columns (counts and running sums), not a list of reviews, so a million reviewers fit in memory.

import { normaliseEmail, type FlatAttributes } from './transform.js';
import { SITE_REVIEW_SKU, TOP_TOPICS_LIMIT } from './table.js';
import { round2, toEpochMs } from './values.js';

export type ReviewVerdict = 'included' | 'duplicate' | 'deleted' | 'no email' | 'invalid score';

// Column indices in the counts / sums arrays.
const PRODUCT = 0;
const SITE = 1;
const PRODUCT_SENTIMENT = 2;
const SITE_SENTIMENT = 3;
const COLUMNS = 4;

export class ReviewAggregator {
  private readonly rowOf = new Map<string, number>();
  private emails: string[] = [];
  private counts = new Uint32Array(COLUMNS * 1024);
  private sums = new Float64Array(COLUMNS * 1024);
  /** Newest `updated_at` of any of the reviewer's reviews, deleted ones too (for --since). */
  private updatedMs = new Float64Array(1024);
  private matched = new Uint8Array(1024);
  private readonly topics = new Map<number, Map<string, number>>();
  private readonly seenIds = new Set<number | string>();
  readonly verdicts: Record<ReviewVerdict, number> = {
    included: 0,
    duplicate: 0,
    deleted: 0,
    'no email': 0,
    'invalid score': 0,
  };

  get reviewers(): number {
    return this.emails.length;
  }

  private row(email: string): number {
    let row = this.rowOf.get(email);
    if (row !== undefined) return row;
    row = this.emails.length;
    if (row >= this.matched.length) this.grow();
    this.emails.push(email);
    this.rowOf.set(email, row);
    return row;
  }

  private grow(): void {
    const capacity = this.matched.length * 2;
    const grow = <T extends Uint32Array | Float64Array | Uint8Array>(old: T, make: (n: number) => T, width: number) => {
      const next = make(capacity * width);
      next.set(old);
      return next;
    };
    this.counts = grow(this.counts, (n) => new Uint32Array(n), COLUMNS);
    this.sums = grow(this.sums, (n) => new Float64Array(n), COLUMNS);
    this.updatedMs = grow(this.updatedMs, (n) => new Float64Array(n), 1);
    this.matched = grow(this.matched, (n) => new Uint8Array(n), 1);
  }

  /** Adds one review as the API returned it; the verdict says whether it counted and why not. */
  add(review: unknown): ReviewVerdict {
    const r = (review ?? {}) as Record<string, unknown>;
    const id = r.id;
    if (typeof id === 'number' || typeof id === 'string') {
      if (this.seenIds.has(id)) return this.count('duplicate');
      this.seenIds.add(id);
    }
    const email = normaliseEmail(r.email);
    if (!email) return this.count('no email');
    const row = this.row(email);
    const updated = toEpochMs(r.updated_at) ?? toEpochMs(r.created_at);
    if (updated !== undefined && updated > this.updatedMs[row]!) this.updatedMs[row] = updated;
    if (r.deleted === true || r.deleted === 'true') return this.count('deleted');
    const score = typeof r.score === 'string' ? Number(r.score) : r.score;
    if (typeof score !== 'number' || !Number.isFinite(score)) return this.count('invalid score');

    const kind = r.sku === SITE_REVIEW_SKU ? SITE : PRODUCT;
    const base = row * COLUMNS;
    this.counts[base + kind]!++;
    this.sums[base + kind]! += score;
    const sentiment = typeof r.sentiment === 'string' && r.sentiment.trim() !== '' ? Number(r.sentiment) : r.sentiment;
    if (typeof sentiment === 'number' && Number.isFinite(sentiment)) {
      const column = kind === SITE ? SITE_SENTIMENT : PRODUCT_SENTIMENT;
      this.counts[base + column]!++;
      this.sums[base + column]! += sentiment;
    }
    if (Array.isArray(r.topics)) {
      for (const topic of r.topics) {
        if (typeof topic !== 'string' || topic.trim() === '') continue;
        let counts = this.topics.get(row);
        if (!counts) this.topics.set(row, (counts = new Map()));
        const name = topic.trim();
        counts.set(name, (counts.get(name) ?? 0) + 1);
      }
    }
    return this.count('included');
  }

  private count(verdict: ReviewVerdict): ReviewVerdict {
    this.verdicts[verdict]++;
    return verdict;
  }

  has(email: string): boolean {
    return this.rowOf.has(email);
  }

  /**
   * The review attributes for `email`. A reviewer known only by excluded reviews gets
   * `yotpo_total_reviews: 0`, as does a loyalty customer without any review.
   */
  attributesFor(email: string): FlatAttributes {
    const row = this.rowOf.get(email);
    if (row === undefined) return { yotpo_total_reviews: 0 };
    const base = row * COLUMNS;
    const c = (column: number) => this.counts[base + column]!;
    const s = (column: number) => this.sums[base + column]!;
    const mean = (sum: number, count: number) => (count > 0 ? round2(sum / count) : undefined);
    const values: Record<string, number | string[] | undefined> = {
      yotpo_total_reviews: c(PRODUCT) + c(SITE),
      yotpo_avg_product_rating: mean(s(PRODUCT), c(PRODUCT)),
      yotpo_avg_site_rating: mean(s(SITE), c(SITE)),
      yotpo_total_avg_rating: mean(s(PRODUCT) + s(SITE), c(PRODUCT) + c(SITE)),
      yotpo_avg_sentiment_product: mean(s(PRODUCT_SENTIMENT), c(PRODUCT_SENTIMENT)),
      yotpo_avg_sentiment_site: mean(s(SITE_SENTIMENT), c(SITE_SENTIMENT)),
      yotpo_total_avg_sentiment: mean(s(PRODUCT_SENTIMENT) + s(SITE_SENTIMENT), c(PRODUCT_SENTIMENT) + c(SITE_SENTIMENT)),
      yotpo_top_topics: this.topTopics(row),
    };
    const attributes: FlatAttributes = {};
    for (const [name, value] of Object.entries(values)) if (value !== undefined) attributes[name] = value;
    return attributes;
  }

  private topTopics(row: number): string[] | undefined {
    const counts = this.topics.get(row);
    if (!counts) return undefined;
    return [...counts]
      .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0))
      .slice(0, TOP_TOPICS_LIMIT)
      .map(([name]) => name);
  }

  /** Included reviews of this reviewer (0 when all were excluded). */
  includedCount(email: string): number {
    const row = this.rowOf.get(email);
    return row === undefined ? 0 : this.counts[row * COLUMNS + PRODUCT]! + this.counts[row * COLUMNS + SITE]!;
  }

  /** Newest review update of the reviewer, in epoch ms (0 when unknown). */
  lastUpdatedMs(email: string): number {
    const row = this.rowOf.get(email);
    return row === undefined ? 0 : this.updatedMs[row]!;
  }

  /** Marks a reviewer as sent with a loyalty customer, so it is not sent again as reviewer-only. */
  markMatched(email: string): void {
    const row = this.rowOf.get(email);
    if (row !== undefined) this.matched[row] = 1;
  }

  /** Reviewers not matched to any loyalty customer, in the order they were first seen. */
  *unmatched(): Generator<string> {
    for (let row = 0; row < this.emails.length; row++) if (!this.matched[row]) yield this.emails[row]!;
  }
}
