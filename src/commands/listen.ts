// `yotpo-insider listen`: receives Yotpo loyalty webhooks, archives each one durably before it is
// acknowledged, and forwards the archive to Insider through the same pipeline as replay, exactly
// once. Insider being down or refusing credentials never stops the receiver: it reports degraded.

import { join, resolve } from 'node:path';
import { loadConfig } from '../config.js';
import { EXIT, LocalFileError, StoreError, UsageError } from '../errors.js';
import { ArchiveWriter } from '../listen/archive.js';
import { checkBindAllowed, startReceiver, type HealthBody } from '../listen/receiver.js';
import { LISTEN_OPTIONS, withDefaults, type ListenOptions } from '../options.js';
import type { Io } from '../pipeline/report.js';
import { utcStamp } from '../pipeline/progress.js';
import { Reporter } from '../pipeline/report.js';
import { runPipeline } from '../pipeline/run-pipeline.js';
import { fileTimestamp, makeClients, type RunControl } from '../pipeline/run.js';
import { checkPanel } from '../pipeline/schema-check.js';
import type { RunSummary } from '../pipeline/summary.js';
import { archiveSource, ForwardPosition, linesAfter, type ForwardTag } from '../sources/archive.js';
import { EVENT_AUDIT_COLUMNS } from '../sources/audit-rows.js';
import { currentHolder, describeHolder, tryLock, unlock } from '../state/lock.js';
import { StateStore } from '../state/store.js';

/** The grace a stop gives the forwarder to send what is archived (SPEC §8), of which the last part waits for answers in flight. */
const STOP_GRACE_MS = 10_000;
const ANSWER_GRACE_MS = 2_000;
/** An archive that cannot be written for this long stops listen (exit 3). */
const ARCHIVE_FAILURE_LIMIT_MS = 60_000;

export async function runListen(given: Partial<ListenOptions>, io: Io, control: RunControl = {}): Promise<{ exit_code: number }> {
  const options = withDefaults(LISTEN_OPTIONS, given);
  const reporter = new Reporter(io, { quiet: options.quiet, verbose: options.verbose });
  const config = loadConfig(options.forward ? ['insider'] : [], io);
  checkBindAllowed(options.host, config.webhookToken);
  const store = StateStore.forConfig(config, { state: options.state, cwd: io.cwd, writable: true });
  if (!options.archive && !store)
    throw new UsageError(
      '--no-forward without Insider variables needs --archive <dir> (by default the archive lives in the account’s state folder)',
    );
  const archiveDir = options.archive ? resolve(io.cwd, options.archive) : store!.path('archive');
  if (options.forward && config.insider) {
    const reader = makeClients(config, { ...options, dryRun: false }, {}, reporter).insider!;
    await checkPanel(reader, 'all', { dryRun: false, allowMissing: options.allowMissingSchema, reporter });
  }

  const writer = new ArchiveWriter({ dir: archiveDir });
  const lockFile = join(archiveDir, 'writer.lock');
  const me = currentHolder('listen');
  const lock = tryLock(lockFile, me);
  if (!lock.acquired)
    throw new StoreError(
      `another listen writes this archive (${lock.holder ? describeHolder(lock.holder) : 'holder unknown'}): ${archiveDir}`,
    );

  const positionFile = join(archiveDir, 'forwarded.json');
  const position = new ForwardPosition(positionFile, ForwardPosition.read(positionFile));
  // What earlier runs archived and the forwarder has still to read counts as archived and behind.
  const backlog = options.forward
    ? await linesAfter(archiveDir, position.current).catch((error: unknown) => {
        unlock(lockFile, me);
        throw error;
      })
    : 0;
  const health = { insider: 'ok' as HealthBody['insider'], reason: undefined as string | undefined, since: new Date().toISOString() };
  const setInsider = (state: HealthBody['insider'], reason?: string) => {
    if (health.insider !== state) Object.assign(health, { insider: state, since: new Date().toISOString() });
    health.reason = reason;
  };
  const healthBody = (): HealthBody => {
    const archived = backlog + writer.stats.archived;
    const failing = writer.failingSince;
    const degraded = failing !== undefined || (options.forward && health.insider !== 'ok');
    return {
      status: degraded ? 'degraded' : 'ok',
      archived,
      forwarded: position.forwarded,
      behind: Math.max(0, archived - position.forwarded),
      insider: health.insider,
      since: health.since,
      ...(failing
        ? { reason: `the archive cannot be written since ${failing.toISOString()}` }
        : health.reason
          ? { reason: health.reason }
          : {}),
    };
  };

  const receiver = await startReceiver({
    host: options.host,
    port: options.port,
    archive: writer,
    rejects: (entry) => writer.appendReject(entry),
    ...(config.webhookToken ? { token: config.webhookToken } : {}),
    health: healthBody,
  }).catch((error: unknown) => {
    unlock(lockFile, me);
    throw error;
  });
  reporter.info(
    `listening on ${receiver.url}/webhooks/yotpo (health: ${receiver.url}/healthz); archive ${archiveDir}${options.forward ? '' : '; not forwarding (--no-forward)'}`,
  );

  // A stop: the receiver closes first (requests in flight are answered), then the forwarder reads
  // to the end of the archive and sends it, within the grace, then the pipeline stops.
  const drain = new AbortController();
  const forwarderStop = new AbortController();
  let stopping: Promise<void> | undefined;
  let archiveFailure: Error | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await receiver.close();
      drain.abort();
      setTimeout(() => forwarderStop.abort(), STOP_GRACE_MS - ANSWER_GRACE_MS).unref();
    })());
  control.signal?.addEventListener('abort', () => void stop(), { once: true });
  const watch = setInterval(() => {
    const failing = writer.failingSince;
    if (failing && Date.now() - failing.getTime() > ARCHIVE_FAILURE_LIMIT_MS) {
      archiveFailure = new LocalFileError(
        `the webhook archive ${archiveDir} could not be written for ${ARCHIVE_FAILURE_LIMIT_MS / 1000} s`,
      );
      void stop();
    }
    if (!options.quiet) {
      const h = healthBody();
      reporter.info(
        `${utcStamp(Date.now())} accepted ${receiver.stats.accepted}, rejected ${receiver.stats.rejected}, refused for a wrong token ${receiver.stats.unauthorized}, forwarded ${h.forwarded}, behind ${h.behind}, Insider ${h.insider}`,
      );
    }
  }, 10_000);
  watch.unref();

  let summary: RunSummary | undefined;
  try {
    if (options.forward) {
      summary = await runPipeline<ForwardTag>({
        command: 'listen',
        options: {
          ...options,
          dryRun: false,
          out: undefined,
          excel: false,
          failed: options.failed ?? join(archiveDir, `failed-${fileTimestamp(new Date())}.jsonl`),
        },
        io,
        control: { signal: forwarderStop.signal },
        needs: [],
        auditColumns: EVENT_AUDIT_COLUMNS,
        rejects: { file: join(archiveDir, 'rejects.jsonl'), append: true },
        progress: { records: 'events' },
        graceMs: ANSWER_GRACE_MS,
        persist: {
          onDegraded: (error) =>
            setInsider(
              (error as { exitCode?: number }).exitCode === EXIT.stopped && /credentials|rejected|partner|access/i.test(error.message)
                ? 'rejected'
                : 'retrying',
              error.message,
            ),
          onHealthy: () => setInsider('ok'),
        },
        source: (ctx) =>
          archiveSource(ctx, {
            dir: archiveDir,
            lineOptions: {
              allowUnknownEvents: options.allowUnknownEvents,
              ...(options.birthdayPlaceholderYear ? { placeholderYear: options.birthdayPlaceholderYear } : {}),
            },
            position,
            durable: writer,
            drain: drain.signal,
            batchSize: options.batchSize,
          }),
        settle: (tag) => {
          for (const seq of tag.lines) position.settleEvent(seq);
        },
        failedExtra: (tag) => ({ event_keys: tag.events.map((queued) => queued.ref.key) }),
        end: () => position.save(),
      });
    } else {
      await new Promise<void>((done) => drain.signal.addEventListener('abort', () => done(), { once: true }));
    }
  } finally {
    clearInterval(watch);
    await stop();
    await writer.close();
    unlock(lockFile, me);
  }
  if (archiveFailure) {
    reporter.error(`error: ${archiveFailure.message}`);
    return { exit_code: EXIT.stopped };
  }
  // A signal is how a service is stopped: exit 0 (SPEC §8), also when records failed, were rejected
  // or are uncertain on the way (the summary and the failed and rejects files say so). A stop for a
  // cause (exit 2, 3) keeps its code.
  const code = summary?.exit_code ?? EXIT.ok;
  return { exit_code: code === EXIT.interrupted || code === EXIT.someFailed ? EXIT.ok : code };
}
