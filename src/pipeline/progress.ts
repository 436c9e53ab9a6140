// Progress on stderr. At a terminal: cli-progress bars (review pages, customers read, users
// confirmed), with percentage and ETA where a total is known. Elsewhere (CI, cron, pipes): one
// plain line at most every 10 s. --quiet shows neither.

import cliProgress from 'cli-progress';
import type { Io } from './report.js';

export interface ProgressFigures {
  reviewPages: number;
  reviews: number;
  customersRead: number;
  /** Known with the page-numbered loyalty listing. */
  customersTotal?: number;
  sent: number;
  succeeded: number;
  failed: number;
}

const n = (value: number) => value.toLocaleString('en-US');

/** The plain line: `users 12,000 sent, 11,990 ok, 10 failed, 430/s`. */
export function progressLine(figures: ProgressFigures, elapsedMs: number, records = 'customers'): string {
  const rate = elapsedMs > 0 ? Math.round((figures.succeeded + figures.failed) / (elapsedMs / 1000)) : 0;
  const reviews = figures.reviewPages > 0 ? `reviews ${n(figures.reviews)} read on ${n(figures.reviewPages)} pages; ` : '';
  const total = figures.customersTotal ? ` of ${n(figures.customersTotal)}` : '';
  return `${reviews}${records} ${n(figures.customersRead)}${total} read; users ${n(figures.sent)} sent, ${n(figures.succeeded)} ok, ${n(figures.failed)} failed, ${n(rate)}/s`;
}

const REVIEWS_FORMAT = 'review pages    {value} pages, {reviews} reviews';
const USERS_FORMAT = 'users confirmed {value} ok, {failed} failed, {rate}/s';

export class Progress {
  private readonly startedAt = Date.now();
  private lastLineAt = Date.now();
  private readonly multibar: cliProgress.MultiBar | undefined;
  private readonly bars = new Map<'reviews' | 'records' | 'users', cliProgress.SingleBar>();

  constructor(
    private readonly io: Io,
    private readonly options: { quiet: boolean; everyMs?: number; records: string; reviews?: boolean; recordsTotalKnown?: boolean },
  ) {
    if (options.quiet || !io.stderrIsTty) return;
    this.multibar = new cliProgress.MultiBar(
      {
        stream: io.stderr as NodeJS.WriteStream,
        hideCursor: true,
        clearOnComplete: false,
        etaBuffer: 50,
        fps: 5,
        barsize: 24,
      },
      cliProgress.Presets.shades_classic,
    );
    // Created in reading order, so the bars stand reviews, records, users from top to bottom.
    if (options.reviews) this.bar('reviews', REVIEWS_FORMAT);
    this.bar('records', this.recordsFormat(), options.recordsTotalKnown ? 1 : 0);
    this.bar('users', USERS_FORMAT);
  }

  private recordsFormat(): string {
    const label = this.options.records.padEnd(15);
    return this.options.recordsTotalKnown ? `${label} {bar} {value}/{total} {percentage}% ETA {eta_formatted}` : `${label} {value} read`;
  }

  /** Bars appear when they first have something to show; a known total gets a bar and an ETA. */
  private bar(key: 'reviews' | 'records' | 'users', format: string, total = 0): cliProgress.SingleBar {
    let bar = this.bars.get(key);
    if (!bar) {
      bar = this.multibar!.create(total, 0, {}, { format });
      this.bars.set(key, bar);
    }
    return bar;
  }

  update(figures: ProgressFigures): void {
    if (this.options.quiet) return;
    const elapsed = Date.now() - this.startedAt;
    const rate = elapsed > 0 ? Math.round((figures.succeeded + figures.failed) / (elapsed / 1000)) : 0;
    if (this.multibar) {
      this.bars.get('reviews')?.update(figures.reviewPages, { reviews: n(figures.reviews) });
      const records = this.bar('records', this.recordsFormat());
      if (figures.customersTotal) records.setTotal(figures.customersTotal);
      records.update(figures.customersRead);
      this.bar('users', USERS_FORMAT).update(figures.succeeded, {
        failed: n(figures.failed),
        rate: n(rate),
      });
      return;
    }
    const now = Date.now();
    if (now - this.lastLineAt < (this.options.everyMs ?? 10_000)) return;
    this.lastLineAt = now;
    this.io.stderr.write(`${progressLine(figures, elapsed, this.options.records)}\n`);
  }

  stop(): void {
    this.multibar?.stop();
  }
}
