// `yotpo-insider replay <file|->`: saved Yotpo loyalty webhooks become Insider events, exactly once
// per account, whatever folder or copy of the file a later replay reads.

import { resolve } from 'node:path';
import { EVENT_NAMES } from '../core/table.js';
import { toEpochMs } from '../core/values.js';
import { UsageError } from '../errors.js';
import { spoolInput } from '../io/files.js';
import { readableOnce } from '../io/lines.js';
import { REPLAY_OPTIONS, withDefaults, type ReplayOptions } from '../options.js';
import type { Io } from '../pipeline/report.js';
import { resumeCommand } from '../pipeline/resume-hint.js';
import { runPipeline } from '../pipeline/run-pipeline.js';
import { fileTimestamp, type RunControl } from '../pipeline/run.js';
import type { RunSummary } from '../pipeline/summary.js';
import { EVENT_AUDIT_COLUMNS } from '../sources/audit-rows.js';
import { replaySource, type ReplayPlan } from '../sources/replay.js';
import type { EventTag } from '../sources/webhook-events.js';

export async function runReplay(input: string, given: Partial<ReplayOptions>, io: Io, control: RunControl = {}): Promise<RunSummary> {
  const options = withDefaults(REPLAY_OPTIONS, given);
  const startedAt = new Date();
  let plan: ReplayPlan | undefined;
  let spooled: { path: string; remove: () => void } | undefined;
  return runPipeline<EventTag>({
    command: 'replay',
    options,
    rejects: {
      file: options.rejects ?? (input === '-' ? `yotpo-insider-rejects-${fileTimestamp(startedAt)}.jsonl` : `${input}.rejects.jsonl`),
      append: false,
    },
    io,
    control,
    needs: [],
    schema: 'all',
    auditColumns: EVENT_AUDIT_COLUMNS,
    auditByLine: true,
    progress: { records: 'events' },
    prepare: async () => {
      const only = options.only ? new Set(options.only) : undefined;
      const known = new Set(EVENT_NAMES.flatMap((row) => [row.insiderName, row.yotpoName, ...(row.topics ?? [])]).filter(Boolean));
      const unknown = [...(only ?? [])].filter((name) => !known.has(name));
      if (unknown.length > 0 && !options.allowUnknownEvents)
        throw new UsageError(`--only names unknown events: ${unknown.join(', ')} (see yotpo-insider mapping)`);
      const filters = { fromMs: dateOption('--from', options.from), toMs: dateOption('--to', options.to), only };
      // The input is read twice (the newest event per user first): stdin or a FIFO is spooled to a private file.
      const path = input === '-' ? '-' : resolve(io.cwd, input);
      if (readableOnce(path)) spooled = await spoolInput(path);
      plan = {
        path: spooled?.path ?? path,
        lineOptions: {
          allowUnknownEvents: options.allowUnknownEvents,
          now: startedAt,
          ...(options.timestampFallback ? { timestampFallback: options.timestampFallback } : {}),
          ...(options.birthdayPlaceholderYear ? { placeholderYear: options.birthdayPlaceholderYear } : {}),
        },
        filters,
        resend: options.force ? { delivered: true, uncertain: true } : {},
        batchSize: options.batchSize,
      };
    },
    source: (ctx) => replaySource(ctx, plan!),
    failedExtra: (tag) => ({ event_keys: tag.events.map((queued) => queued.ref.key) }),
    end: () => spooled?.remove(),
    resumeHint: () => resumeCommand('replay', REPLAY_OPTIONS, options, [input]),
  });
}

function dateOption(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = toEpochMs(value);
  if (ms === undefined) throw new UsageError(`${flag} ${value} is not a date (use e.g. 2026-09-01 or 2026-09-01T12:00:00Z, UTC)`);
  return ms;
}
