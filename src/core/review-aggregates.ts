// Per-reviewer review aggregates (MAPPING §4), kept compact: a reviewer is one row of typed-array
// columns (counts and running sums), not a list of reviews, so a million reviewers fit in memory.

import { countWarning, type FieldWarnings, normaliseEmail, type FlatAttributes } from './transform.js';
import { SITE_REVIEW_SKU, TOP_TOPICS_LIMIT } from './table.js';
import { round2, toEpochMs } from './values.js';
import { grown, IdSet, PairCounts, StringIndex } from './compact.js';

export type ReviewVerdict = 'included' | 'duplicate' | 'deleted' | 'no email' | 'invalid score';

// Column indices in the counts / sums arrays.
const PRODUCT = 0;
const SITE = 1;
const PRODUCT_SENTIMENT = 2;
const SITE_SENTIMENT = 3;
const COLUMNS = 4;

export class ReviewAggregator {
  private readonly index = new StringIndex();
  private capacity = 1024;
  private counts = new Uint32Array(COLUMNS * 1024);
  private sums = new Float64Array(COLUMNS * 1024);
  /** Newest `updated_at` of any of the reviewer's reviews, deleted ones too (for --since). */
  private updatedMs = new Float64Array(1024);
  private matched = new Uint8Array(1024);
  /** Topic names, interned: a store has few distinct topics and many reviewers. */
  private readonly topicNames = new StringIndex();
  private readonly topics = new PairCounts();
  private readonly seenIds = new IdSet();
  readonly verdicts: Record<ReviewVerdict, number> = {
    included: 0,
    duplicate: 0,
    deleted: 0,
    'no email': 0,
    'invalid score': 0,
  };

  get reviewers(): number {
    return this.index.size;
  }

  private row(email: string): number {
    const row = this.index.intern(email);
    if (row >= this.capacity) {
      // Grow by half: the last doubling of a large run would waste the most.
      this.capacity = Math.ceil(this.capacity * 1.5);
      this.counts = grown(this.counts, this.capacity * COLUMNS);
      this.sums = grown(this.sums, this.capacity * COLUMNS);
      this.updatedMs = grown(this.updatedMs, this.capacity);
      this.matched = grown(this.matched, this.capacity);
    }
    return row;
  }

  /** Adds one review as the API returned it; the verdict says whether it counted and why not. */
  add(review: unknown): ReviewVerdict {
    const r = (review ?? {}) as Record<string, unknown>;
    const id = r.id;
    if ((typeof id === 'number' || typeof id === 'string') && !this.seenIds.add(id)) return this.count('duplicate');
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
        if (typeof topic === 'string' && topic.trim() !== '') this.topics.add(row, this.topicNames.intern(topic.trim()));
      }
    }
    return this.count('included');
  }

  private count(verdict: ReviewVerdict): ReviewVerdict {
    this.verdicts[verdict]++;
    return verdict;
  }

  private rowOrUndefined(email: string): number | undefined {
    const row = this.index.find(email);
    return row < 0 ? undefined : row;
  }

  has(email: string): boolean {
    return this.index.find(email) >= 0;
  }

  /**
   * The review attributes for `email`. A reviewer known only by excluded reviews gets
   * `yotpo_total_reviews: 0`, as does a loyalty customer without any review.
   */
  attributesFor(email: string, warnings?: FieldWarnings): FlatAttributes {
    const row = this.rowOrUndefined(email);
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
    for (const [name, value] of Object.entries(values)) {
      if (value === undefined) continue;
      // A sum of huge scores overflows: such a mean is omitted with a field warning, never sent as null.
      if (typeof value === 'number' && !Number.isFinite(value)) {
        if (warnings) countWarning(warnings, `${name}: not a finite number`);
        continue;
      }
      attributes[name] = value;
    }
    return attributes;
  }

  private topTopics(row: number): string[] | undefined {
    const pairs = this.topics.of(row).map(([id, count]) => [this.topicNames.get(id), count] as const);
    if (pairs.length === 0) return undefined;
    return pairs
      .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0))
      .slice(0, TOP_TOPICS_LIMIT)
      .map(([name]) => name);
  }

  /** Included reviews of this reviewer (0 when all were excluded). */
  includedCount(email: string): number {
    const row = this.rowOrUndefined(email);
    return row === undefined ? 0 : this.counts[row * COLUMNS + PRODUCT]! + this.counts[row * COLUMNS + SITE]!;
  }

  /** Newest review update of the reviewer, in epoch ms (0 when unknown). */
  lastUpdatedMs(email: string): number {
    const row = this.rowOrUndefined(email);
    return row === undefined ? 0 : this.updatedMs[row]!;
  }

  /** Marks a reviewer as sent with a loyalty customer, so it is not sent again as reviewer-only. */
  markMatched(email: string): void {
    const row = this.rowOrUndefined(email);
    if (row !== undefined) this.matched[row] = 1;
  }

  /** Reviewers not matched to any loyalty customer, in the order they were first seen. */
  *unmatched(): Generator<string> {
    for (let row = 0; row < this.index.size; row++) if (!this.matched[row]) yield this.index.get(row);
  }
}
