// Progress on stderr. At a terminal: three cli-progress rows (the phase in words; records read,
// with a bar and an ETA where a total is known; users sent, confirmed and failed with the current
// rate and what limits it). Elsewhere (CI, cron, pipes): one plain line at most every 10 s, led by
// the UTC time. --quiet shows neither. Rates are measured over the last 20 s, not since the
// start, so they follow the run as it speeds up or waits.

import cliProgress from 'cli-progress';
import type { Writable } from 'node:stream';
import type { ApiName } from '../errors.js';
import type { RequestCounters } from '../io/http.js';
import { showDisplay, streamClosed, type Io, type StreamDisplay } from './report.js';

/**
 * Where a run is: `reviews` (paging reviews, nothing else), `held` (reviews paging while the
 * loyalty listing is read and held until the aggregates are complete), `sending`, `reviewers`
 * (the reviewer-only users), `finishing` (waiting for Insider's last answers).
 */
export type ProgressPhase = 'reviews' | 'held' | 'sending' | 'reviewers' | 'finishing';

export interface ProgressFigures {
  reviewPages: number;
  reviews: number;
  /** The reviews list has ended. */
  reviewsDone?: boolean;
  /** Reviews expected (a resumed run's earlier count): an estimate, for the reviews' ETA. */
  reviewsTotal?: number;
  customersRead: number;
  /** Known with the page-numbered loyalty listing. */
  customersTotal?: number;
  /** `customersTotal` is an estimate (a resumed run's earlier count), shown with `~`. */
  customersTotalEstimated?: boolean;
  /** Loyalty customers read and waiting for the review aggregates. */
  held?: number;
  sent: number;
  succeeded: number;
  failed: number;
  uncertain?: number;
  phase?: ProgressPhase;
  /** Reviewer-only users to send, once their list is written. */
  reviewersTotal?: number;
}

/** A client whose pace may be what limits the run (its limiter's current requests per second). */
export interface PacedClient {
  readonly api: ApiName;
  readonly limiter: { readonly effectiveRps: number };
}

export interface ProgressOptions {
  quiet: boolean;
  /** What is read: "customers", "events", "users". */
  records: string;
  reviews?: boolean;
  recordsTotalKnown?: boolean;
  /** Minimum time between plain lines (default 10 s). */
  everyMs?: number;
  /** Read every second, so the figures move while no source reports (the finishing phase). */
  figures?: () => ProgressFigures;
  /** The run's clients and request counters: a client whose pace binds is named as the limit. */
  clients?: { counters: RequestCounters; paced: readonly (PacedClient | undefined)[] };
  /** The clock (tests). */
  now?: () => number;
}

const RATE_WINDOW_MS = 20_000;
/** A rate measured over less than this is noise: none is shown yet. */
const MIN_RATE_SPAN_MS = 2_000;
const TICK_MS = 1_000;
/** A client whose requests run at this share of its pace is limited by it. */
const BINDING_SHARE = 0.8;
const BAR_WIDTH = 24;
const APIS: readonly ApiName[] = ['loyalty', 'reviews', 'insider'];

const n = (value: number) => Math.round(value).toLocaleString('en-US');

export function utcStamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function formatDuration(seconds: number): string {
  // Rounded up: a run with work left is never said to be 0 s from its end.
  const s = Math.max(0, Math.ceil(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

interface Sample {
  at: number;
  /** Users confirmed, failed, uncertain or skipped: what the run is done with. */
  done: number;
  /** Users Insider answered for. */
  answered: number;
  read: number;
  reviews: number;
  requests: Record<ApiName, number> | undefined;
}

/** Rates over the recent window. */
class RateWindow {
  private readonly samples: Sample[] = [];

  add(sample: Sample): void {
    this.samples.push(sample);
    while (this.samples.length > 2 && this.samples[1]!.at <= sample.at - RATE_WINDOW_MS) this.samples.shift();
  }

  /** Per second over the window; undefined until the window spans enough time. */
  rate(pick: (sample: Sample) => number | undefined): number | undefined {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last.at - first.at < MIN_RATE_SPAN_MS) return undefined;
    const from = pick(first);
    const to = pick(last);
    if (from === undefined || to === undefined) return undefined;
    return Math.max(0, to - from) / ((last.at - first.at) / 1000);
  }
}

const answeredOf = (f: ProgressFigures) => f.succeeded + f.failed + (f.uncertain ?? 0);
const doneOf = (f: ProgressFigures) => answeredOf(f) + Math.max(0, f.customersRead - f.sent);

/** A later report keeps what an earlier one said and the later one leaves out. */
function merge(previous: ProgressFigures | undefined, next: ProgressFigures): ProgressFigures {
  if (!previous) return next;
  const merged: ProgressFigures = { ...previous, ...Object.fromEntries(Object.entries(next).filter(([, value]) => value !== undefined)) };
  // The pipeline's own reports carry zero review figures: a count never goes back.
  merged.reviewPages = Math.max(previous.reviewPages, next.reviewPages);
  merged.reviews = Math.max(previous.reviews, next.reviews);
  return merged;
}

function bar(share: number): string {
  const filled = Math.round(Math.min(1, Math.max(0, share)) * BAR_WIDTH);
  return `${'█'.repeat(filled)}${'░'.repeat(BAR_WIDTH - filled)}`;
}

const eta = (remaining: number, rate: number | undefined) =>
  rate && rate > 0 && remaining > 0 ? ` · ETA ${formatDuration(remaining / rate)}` : '';

export class Progress {
  private readonly now: () => number;
  private readonly startedAt: number;
  private lastLineAt: number;
  private figures: ProgressFigures | undefined;
  private readonly window = new RateWindow();
  /** Records read when the reviewer-only users began: what was read after them is theirs. */
  private reviewersFrom: number | undefined;
  private readonly bars: Bars | undefined;
  private readonly ticker: NodeJS.Timeout | undefined;

  constructor(
    private readonly io: Io,
    private readonly options: ProgressOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.startedAt = this.now();
    this.lastLineAt = this.startedAt;
    if (options.quiet) return;
    if (io.stderrIsTty) this.bars = new Bars(io.stderr, (width) => this.rows().map((row) => clip(row, width)));
    this.ticker = setInterval(() => this.tick(), TICK_MS);
    this.ticker.unref();
  }

  update(figures: ProgressFigures): void {
    if (this.options.quiet) return;
    this.record(figures);
    this.maybePrintLine();
  }

  /** Every second: the figures provider's view, a rate sample, and a plain line when due. */
  private tick(): void {
    if (this.bars && streamClosed(this.io.stderr)) return this.stop();
    const provided = this.options.figures?.();
    if (provided) this.record(provided);
    else if (this.figures) this.sample();
    this.maybePrintLine();
  }

  private record(figures: ProgressFigures): void {
    this.figures = merge(this.figures, figures);
    if (this.figures.phase === 'reviewers') this.reviewersFrom ??= this.figures.customersRead;
    this.sample();
  }

  private sample(): void {
    const counters = this.options.clients?.counters;
    this.window.add({
      at: this.now(),
      done: doneOf(this.figures!),
      answered: answeredOf(this.figures!),
      read: this.figures!.customersRead,
      reviews: this.figures!.reviews,
      requests: counters ? { ...counters.requests } : undefined,
    });
  }

  private maybePrintLine(): void {
    if (this.bars || !this.figures || streamClosed(this.io.stderr)) return;
    const now = this.now();
    if (now - this.lastLineAt < (this.options.everyMs ?? 10_000)) return;
    this.lastLineAt = now;
    try {
      this.io.stderr.write(`${this.plainLine()}\n`);
    } catch {
      // a closed stderr: the run goes on without messages
    }
  }

  /** The plain line: the UTC time, then the three rows. */
  plainLine(): string {
    return `${utcStamp(this.now())} ${this.rows().join('; ')}`;
  }

  /** The phase, the records read, the users: the rows a terminal shows. */
  private rows(): [string, string, string] {
    const f = this.figures ?? { reviewPages: 0, reviews: 0, customersRead: 0, sent: 0, succeeded: 0, failed: 0 };
    return [this.phaseRow(f), this.recordsRow(f), this.usersRow(f)];
  }

  private phaseRow(f: ProgressFigures): string {
    const reviewsRate = this.window.rate((s) => s.reviews);
    const total = f.reviewsTotal ? n(f.reviewsTotal) : '?';
    const paging = `reviews: paging (${n(f.reviews)} of ~${total}, ${n(f.reviewPages)} pages${f.reviewsTotal ? eta(f.reviewsTotal - f.reviews, reviewsRate) : ''})`;
    const phase = f.phase ?? (this.options.reviews && !f.reviewsDone ? 'reviews' : 'sending');
    if (phase === 'reviews') return f.reviewsDone ? `reviews: all read (${n(f.reviews)} on ${n(f.reviewPages)} pages)` : paging;
    if (phase === 'held' && !f.reviewsDone)
      return `${paging} · loyalty: reading, held until reviews finish${f.held !== undefined ? ` (${n(f.held)} held)` : ''}`;
    if (phase === 'reviewers') return 'reviewer-only users';
    if (phase === 'finishing') return "finishing: waiting for Insider's last answers";
    return 'sending';
  }

  private recordsRow(f: ProgressFigures): string {
    const label = this.options.records;
    const rate = this.window.rate((s) => s.done);
    const done = doneOf(f);
    if (this.reviewersFrom !== undefined) {
      const read = f.customersRead - this.reviewersFrom;
      if (f.reviewersTotal === undefined) return `reviewer-only users ${n(read)} read`;
      return `reviewer-only users ${this.bar(read / Math.max(1, f.reviewersTotal))}${n(read)} of ${n(f.reviewersTotal)} read${eta(
        f.reviewersTotal - read,
        this.window.rate((s) => s.read),
      )}`;
    }
    const held = f.held ? `, ${n(f.held)} held` : '';
    if (f.phase === 'held' && !f.reviewsDone && f.held === undefined)
      return `${label} read and held, counted once the reviews are complete`;
    if (!f.customersTotal) return `${label} ${n(f.customersRead)} read${held}`;
    const share = Math.min(1, done / f.customersTotal);
    const approx = f.customersTotalEstimated ? '~' : '';
    const sending = f.phase !== 'held' || f.reviewsDone === true;
    return `${label} ${this.bar(share)}${n(f.customersRead)} of ${approx}${n(f.customersTotal)} read${held} · ${n(done)} done (${Math.floor(share * 100)}%)${sending ? eta(f.customersTotal - done, rate) : ''}`;
  }

  private usersRow(f: ProgressFigures): string {
    const rate = this.window.rate((s) => s.answered);
    const uncertain = f.uncertain ? ` · ${n(f.uncertain)} uncertain` : '';
    const now = rate === undefined ? 'rate: measuring' : `${n(rate)}/s (last 20 s)`;
    const limits = this.bindingLimits();
    return `users ${n(f.sent)} sent · ${n(f.succeeded)} confirmed · ${n(f.failed)} failed${uncertain} · ${now}${limits ? ` · limited by ${limits}` : ''}`;
  }

  /** The clients whose requests run at their pace: `loyalty: 5 req/s limit`. */
  private bindingLimits(): string {
    const paced = this.options.clients?.paced ?? [];
    const binding: string[] = [];
    for (const api of APIS) {
      const client = paced.find((candidate) => candidate?.api === api);
      const rps = client?.limiter.effectiveRps ?? 0;
      if (rps <= 0) continue;
      const observed = this.window.rate((s) => s.requests?.[api]);
      if (observed !== undefined && observed >= rps * BINDING_SHARE)
        binding.push(`${api}: ${rps >= 10 ? n(rps) : Number(rps.toFixed(1))} req/s limit`);
    }
    return binding.join(', ');
  }

  /** A bar at a terminal; a log line has the figures alone. */
  private bar(share: number): string {
    return this.bars ? `${bar(share)} ` : '';
  }

  stop(): void {
    if (this.ticker) clearInterval(this.ticker);
    this.bars?.stop();
  }
}

/** A row never wider than the terminal: a wrapped row would break the redraw. */
function clip(row: string, width: number): string {
  return row.length < width ? row : `${row.slice(0, Math.max(0, width - 2))}…`;
}

/** The cli-progress rows, and the lines printed above them while they are shown. */
class Bars implements StreamDisplay {
  private readonly multibar: cliProgress.MultiBar;
  private resized = false;
  private readonly onResize = () => (this.resized = true);
  // A second Ctrl-C exits at once, without stop(): the terminal gets its cursor back all the same.
  private readonly onExit = () => {
    if (!streamClosed(this.stream)) this.stream.write('\x1b[?25h');
  };

  constructor(
    private readonly stream: Writable,
    rows: (width: number) => string[],
  ) {
    this.multibar = new cliProgress.MultiBar({
      stream: stream as NodeJS.WriteStream,
      hideCursor: true,
      clearOnComplete: false,
      fps: 5,
      // Rows are clipped to the width here; lines printed above wrap as the terminal wraps them.
      linewrap: true,
      // A line printed above moves the rows down: every frame redraws them all.
      forceRedraw: true,
      gracefulExit: false,
    });
    for (const index of [0, 1, 2]) {
      // A format function, not a template: no placeholder can ever be shown raw.
      this.multibar.create(1, 0, {}, { format: (_options, params) => rows(params.maxWidth)[index] ?? '' });
    }
    // After a resize the old rows may have been re-wrapped: clear below before drawing again.
    this.multibar.on('redraw-pre', () => {
      if (!this.resized) return;
      this.resized = false;
      this.stream.write('\x1b[0J');
    });
    stream.on('resize', this.onResize);
    process.once('exit', this.onExit);
    streamClosed(stream); // watched: a write to a closed stderr is no crash
    showDisplay(stream, this);
  }

  printAbove(line: string): void {
    // Cleared from the rows' top down first, so no part of a longer row stays beside the line.
    this.multibar.log(`\x1b[0J${line}\n`);
    this.multibar.update();
  }

  stop(): void {
    showDisplay(this.stream, undefined);
    this.stream.off('resize', this.onResize);
    process.off('exit', this.onExit);
    this.multibar.stop();
  }
}
