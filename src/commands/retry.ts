// `yotpo-insider retry <failed.jsonl>`: sends exactly the users of a failed file again, with the
// same batching, retries and summary; what fails again goes to a failed file of its own.

import { resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { RETRY_OPTIONS, withDefaults, type RetryOptions } from '../options.js';
import type { Io } from '../pipeline/report.js';
import { resumeCommand } from '../pipeline/resume-hint.js';
import { runPipeline } from '../pipeline/run-pipeline.js';
import type { RunControl } from '../pipeline/run.js';
import type { RunSummary } from '../pipeline/summary.js';
import { USER_AUDIT_COLUMNS } from '../sources/audit-rows.js';
import { checkFailedFile, failedFileSource, type RetryTag } from '../sources/failed-file.js';

export async function runRetry(file: string, given: Partial<RetryOptions>, io: Io, control: RunControl = {}): Promise<RunSummary> {
  const options = withDefaults(RETRY_OPTIONS, given);
  const path = file === '-' ? '-' : resolve(io.cwd, file);
  return runPipeline<RetryTag>({
    command: 'retry',
    options,
    io,
    control,
    needs: [],
    auditColumns: USER_AUDIT_COLUMNS,
    progress: { records: 'users' },
    prepare: async () => {
      if (options.failed && resolve(io.cwd, options.failed) === path) throw new UsageError('--failed must not name the file being retried');
      if (path !== '-') await checkFailedFile(path, file);
    },
    source: (ctx) => failedFileSource(ctx, path, options.force),
    failedExtra: (tag) => (tag.eventKeys.length > 0 ? { event_keys: tag.eventKeys } : {}),
    end: (ctx) => {
      const held = ctx.summary.skipped_reasons['delivery uncertain'] ?? 0;
      if (held > 0) {
        ctx.summary.warnings.push(
          `${held} user(s) ${options.dryRun ? 'would be held back' : 'not sent (kept in the new failed file)'}: Insider may hold their events already. Run yotpo-insider verify --uncertain to settle them, or retry with --force to send them anyway`,
        );
      }
    },
    resumeHint: () => resumeCommand('retry', RETRY_OPTIONS, options, [file]),
  });
}
