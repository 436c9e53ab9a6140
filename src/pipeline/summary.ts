// The run summary (SPEC §5): one object that --json prints as is, and that is also printed
// readably on stderr. Commands return it so tests can assert on it.

import { createRequire } from 'node:module';
import { EXIT, type ExitCode } from '../errors.js';
import type { FillLine } from '../core/fill-report.js';
import type { RequestCounters } from '../io/http.js';

export const VERSION = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

export interface Tally {
  read: number;
  sent: number;
  succeeded: number;
  failed: number;
  skipped: number;
  /** Insider may hold them (an ambiguous failure, unreconciled counts, a run that ended before the answer). */
  uncertain: number;
}

export type RunCommand = 'backfill' | 'replay' | 'retry' | 'listen';

export interface RunSummary {
  command: RunCommand;
  version: string;
  run_id: string | null;
  dry_run: boolean;
  users: Tally;
  events: Tally & { rejected: number };
  requests: { yotpo: number; insider: number; retries: number; loyalty: number; reviews: number };
  /** Uploads carrying events sent again after an ambiguous failure (--on-ambiguous resend). */
  resent_after_ambiguous: number;
  reviews: {
    read: number;
    included: number;
    reviewers: number;
    pages: number;
    duplicates: number;
    deleted: number;
    without_email: number;
  } | null;
  /** Why records were skipped, with counts (`no email`, `duplicate`, ...). */
  skipped_reasons: Record<string, number>;
  /** Why records were rejected (replay), with counts. */
  rejected_reasons: Record<string, number>;
  /** Fields omitted because their value did not fit the type, with counts. */
  field_warnings: Record<string, number>;
  /** Non-fatal notes for the operator (events older than 90 days, ...). */
  warnings: string[];
  duration_ms: number;
  resumed: boolean;
  /** Why the run stopped early, if it did. */
  stopped: string | null;
  exit_code: ExitCode;
  failed_file: string | null;
  rejects_file: string | null;
  /** The file of the store this run wrote: its checkpoint, or the ledger. */
  state_file: string | null;
  /** The account's folder in the state store. */
  state_dir: string | null;
  audit_file: string | null;
  /** A dry run: per attribute, users carrying it and omissions with their reasons. */
  fill?: FillLine[];
  /** The message of the error that stopped the run (exit 2 or 3). */
  error?: string;
}

export const emptyTally = (): Tally => ({ read: 0, sent: 0, succeeded: 0, failed: 0, skipped: 0, uncertain: 0 });

export function newSummary(command: RunCommand, dryRun: boolean): RunSummary {
  return {
    command,
    version: VERSION,
    run_id: null,
    dry_run: dryRun,
    users: emptyTally(),
    events: { ...emptyTally(), rejected: 0 },
    requests: { yotpo: 0, insider: 0, retries: 0, loyalty: 0, reviews: 0 },
    resent_after_ambiguous: 0,
    reviews: null,
    skipped_reasons: {},
    rejected_reasons: {},
    field_warnings: {},
    warnings: [],
    duration_ms: 0,
    resumed: false,
    stopped: null,
    exit_code: EXIT.ok,
    failed_file: null,
    rejects_file: null,
    state_file: null,
    state_dir: null,
    audit_file: null,
  };
}

export function addReason(reasons: Record<string, number>, reason: string, count = 1): void {
  reasons[reason] = (reasons[reason] ?? 0) + count;
}

export function copyRequestCounters(summary: RunSummary, counters: RequestCounters): void {
  const { loyalty, reviews, insider } = counters.requests;
  summary.requests = { yotpo: loyalty + reviews, insider, retries: counters.retries, loyalty, reviews };
}

/** 0 when everything was delivered or skipped for a documented reason, 1 when anything failed. */
export function outcomeExitCode(summary: RunSummary): ExitCode {
  const failed =
    summary.users.failed + summary.events.failed + summary.events.rejected + summary.users.uncertain + summary.events.uncertain > 0;
  // A failed file also holds users a retry held back: someone must look at it.
  return failed || summary.failed_file !== null ? EXIT.someFailed : EXIT.ok;
}

const n = (value: number) => value.toLocaleString('en-US');
const uncertain = (count: number) => (count > 0 ? `${n(count)} uncertain, ` : '');

function reasons(record: Record<string, number>): string {
  const entries = Object.entries(record);
  return entries.length === 0 ? '' : ` (${entries.map(([reason, count]) => `${reason}: ${n(count)}`).join(', ')})`;
}

/** The summary as lines for a person. */
export function formatSummary(summary: RunSummary): string[] {
  const verb = summary.dry_run ? 'would send' : 'sent';
  const lines = [`${summary.command}${summary.dry_run ? ' (dry run)' : ''} finished in ${(summary.duration_ms / 1000).toFixed(1)} s`];
  const { users, events } = summary;
  if (summary.command !== 'replay' || users.sent > 0) {
    lines.push(
      `  users:    ${n(users.read)} read, ${n(users.sent)} ${verb}, ${n(users.succeeded)} succeeded, ${n(users.failed)} failed, ${uncertain(users.uncertain)}${n(users.skipped)} skipped${reasons(summary.command === 'replay' ? {} : summary.skipped_reasons)}`,
    );
  }
  if (summary.command === 'replay' || summary.command === 'listen' || events.read > 0) {
    lines.push(
      `  events:   ${n(events.read)} read, ${n(events.sent)} ${verb}, ${n(events.succeeded)} succeeded, ${n(events.failed)} failed, ${uncertain(events.uncertain)}${n(events.skipped)} skipped${reasons(summary.skipped_reasons)}, ${n(events.rejected)} rejected${reasons(summary.rejected_reasons)}`,
    );
  }
  if (summary.reviews) {
    const r = summary.reviews;
    lines.push(
      `  reviews:  ${n(r.read)} read on ${n(r.pages)} pages, ${n(r.included)} included, ${n(r.reviewers)} reviewers (${n(r.duplicates)} duplicates, ${n(r.deleted)} deleted, ${n(r.without_email)} without email)`,
    );
  }
  const q = summary.requests;
  lines.push(
    `  requests: ${n(q.yotpo)} Yotpo (${n(q.loyalty)} loyalty, ${n(q.reviews)} reviews), ${n(q.insider)} Insider, ${n(q.retries)} retries`,
  );
  const warnings = Object.entries(summary.field_warnings).sort(([a, x], [b, y]) => y - x || a.localeCompare(b));
  if (warnings.length > 0) {
    const total = warnings.reduce((sum, [, count]) => sum + count, 0);
    const shown = Object.fromEntries(warnings.slice(0, 4));
    const more = warnings.length > 4 ? `, and ${warnings.length - 4} more kinds in --json` : '';
    lines.push(`  fields omitted (value did not fit the type; never sent wrong): ${n(total)}${reasons(shown).replace(/\)$/, `${more})`)}`);
  }
  for (const warning of summary.warnings) lines.push(`  warning: ${warning}`);
  if (summary.stopped) lines.push(`  stopped: ${summary.stopped}`);
  for (const [label, file] of [
    ['audit CSV', summary.audit_file],
    ['failed file', summary.failed_file],
    ['rejects file', summary.rejects_file],
    ['state', summary.state_file ?? summary.state_dir],
  ] as const) {
    if (file) lines.push(`  ${label}: ${file}`);
  }
  return lines;
}
