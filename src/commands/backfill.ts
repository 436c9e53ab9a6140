// `yotpo-insider backfill`: Yotpo loyalty customers and review aggregates → Insider users, resumable
// from the account's checkpoint for this Yotpo source and scope.

import { toEpochMs } from '../core/values.js';
import { UsageError, type ApiName } from '../errors.js';
import { BACKFILL_OPTIONS, withDefaults, type BackfillOptions } from '../options.js';
import type { Io } from '../pipeline/report.js';
import { resumeCommand } from '../pipeline/resume-hint.js';
import { runPipeline } from '../pipeline/run-pipeline.js';
import type { RunControl } from '../pipeline/run.js';
import type { RunSummary } from '../pipeline/summary.js';
import { BackfillCheckpoint, describeScope, yotpoSource, type BackfillScope, type BackfillTag } from '../state/checkpoint.js';
import { USER_AUDIT_COLUMNS } from '../sources/audit-rows.js';
import { backfillSource, type BackfillPlan } from '../sources/backfill.js';
import { readEmailList } from '../sources/email-list.js';
import { resolve } from 'node:path';

export async function runBackfill(given: Partial<BackfillOptions>, io: Io, control: RunControl = {}): Promise<RunSummary> {
  const options = withDefaults(BACKFILL_OPTIONS, given);
  const needs: ApiName[] = [...(options.loyalty ? (['loyalty'] as const) : []), ...(options.reviews ? (['reviews'] as const) : [])];
  let plan: BackfillPlan | undefined;
  return runPipeline<BackfillTag>({
    command: 'backfill',
    options,
    io,
    control,
    needs,
    yotpoRps: { ...(options.loyalty ? { loyalty: options.loyaltyRps } : {}), ...(options.reviews ? { reviews: options.reviewsRps } : {}) },
    schema: 'attributes',
    auditColumns: USER_AUDIT_COLUMNS,
    progress: {
      records: 'customers',
      reviews: options.reviews,
      totalKnown: options.loyalty && options.loyaltyEndpoint === 'all' && !options.emails,
    },
    prepare: async (ctx) => {
      if (!options.loyalty && !options.reviews) throw new UsageError('--no-loyalty and --no-reviews leave nothing to backfill');
      const sinceMs = sinceOption(options.since, ctx.store?.runs.list() ?? []);
      const emailList = options.emails === undefined ? undefined : await readEmailList(resolve(io.cwd, options.emails));
      const scope: BackfillScope = {
        loyalty: options.loyalty,
        reviews: options.reviews,
        endpoint: options.loyaltyEndpoint,
        since: sinceMs === undefined ? null : new Date(sinceMs).toISOString(),
        withAnniversary: options.withAnniversary,
      };
      // A subset run (--emails) and a dry run neither resume nor move the full backfill's checkpoint.
      const checkpoint =
        ctx.store && !options.dryRun && !emailList
          ? new BackfillCheckpoint(ctx.store, yotpoSource(ctx.config.loyalty, ctx.config.reviews), scope, options.fresh)
          : undefined;
      if (checkpoint?.tookOverFrom)
        ctx.reporter.warn(
          `took over the checkpoint of a backfill that is gone (pid ${checkpoint.tookOverFrom.pid}, started ${checkpoint.tookOverFrom.started_at})`,
        );
      if (checkpoint?.resumed) {
        ctx.summary.resumed = true;
        ctx.reporter.info(
          `resuming the backfill of ${describeScope(scope)} started ${checkpoint.state.started_at}: ${checkpoint.state.pages_confirmed} loyalty page(s) and ${checkpoint.state.reviewers_confirmed} reviewer(s) already confirmed (--fresh starts over)`,
        );
      }
      if (checkpoint) ctx.summary.state_file = checkpoint.file;
      plan = { options, checkpoint, sinceMs, emailList };
    },
    source: (ctx) => backfillSource(ctx, plan!),
    settle: (tag, outcome) => {
      if (outcome.status !== 'unsent') plan?.checkpoint?.settle(tag);
    },
    end: (ctx, error) => {
      const checkpoint = plan?.checkpoint;
      if (!checkpoint) return;
      try {
        if (!error && !(options.limit !== undefined && ctx.summary.users.read >= options.limit)) checkpoint.done();
        checkpoint.save();
      } finally {
        checkpoint.release();
      }
    },
    resumeHint: () => resumeCommand('backfill', BACKFILL_OPTIONS, options),
  });
}

/** `--since <date|last>`: a UTC date, or the start of this account's last completed backfill. */
function sinceOption(
  since: string | undefined,
  runs: readonly { command: string; outcome: string; exit_code?: number; started_at: string }[],
): number | undefined {
  if (since === undefined) return undefined;
  if (since === 'last') {
    const last = runs.filter((run) => run.command === 'backfill' && run.outcome === 'finished' && run.exit_code === 0).at(-1);
    if (!last)
      throw new UsageError(
        '--since last: this account has no completed backfill yet; run a full backfill first (yotpo-insider status shows the runs)',
      );
    return Date.parse(last.started_at);
  }
  const ms = toEpochMs(since);
  if (ms === undefined) throw new UsageError(`--since ${since} is not a date (use e.g. 2026-01-31 or 2026-01-31T12:00:00Z, UTC)`);
  return ms;
}
