// Commander wiring only: flags → typed options → run*(options) → exit code. No logic lives here.

import { createRequire } from 'node:module';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { EXIT, exitCodeOf, UsageError } from './errors.js';
import { redact } from './io/redact.js';
import { processIo, type Io } from './pipeline/report.js';
import type { RunControl } from './pipeline/run.js';
import type { RunSummary } from './pipeline/summary.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

function integer(min: number, max: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}`);
    const n = Number(value);
    if (n < min || n > max) throw new InvalidArgumentError(`must be from ${min} to ${max}`);
    return n;
  };
}

function decimal(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
      throw new InvalidArgumentError(`must be a number from ${min} to ${max}`);
    }
    return n;
  };
}

/** Options shared by backfill, replay and retry (SPEC §1). */
function withCommonOptions(command: Command): Command {
  return command
    .option('--dry-run', 'do everything except the upload to Insider; write the audit CSV')
    .option('--out <file>', 'audit CSV path (- for stdout)')
    .option('--concurrency <n>', 'Insider requests in flight', integer(1, 64), 4)
    .option('--batch-size <n>', 'users per Insider request (1..1000)', integer(1, 1000), 500)
    .option('--insider-rps <n>', 'max Insider requests per second (0 = no limit)', decimal(0, 10_000), 50)
    .option('--failed <file>', 'where undeliverable users are written (JSONL)')
    .option('--state <file>', 'checkpoint / ledger file', '.yotpo-insider/state.json')
    .option('--json', 'print the run summary as one JSON object on stdout')
    .option('--quiet', 'print only errors and the final summary')
    .option('--verbose', 'one line per request on stderr')
    .option('--trigger-journeys', 'send skip_hook: false, so Insider journeys fire for this data')
    .option('--max-retry-after <seconds>', 'longest Retry-After honoured', decimal(0, 3600), 60)
    .option('--max-attempts <n>', 'attempts per request, the first included', integer(1, 20), 6)
    .addOption(new Option('--timeout <ms>', 'per-request timeout').argParser(integer(100, 600_000)).default(60_000))
    .addOption(new Option('--retry-base-ms <ms>').argParser(integer(0, 60_000)).default(1000).hideHelp());
}

type Flags = Record<string, unknown>;

function commonFrom(flags: Flags) {
  return {
    dryRun: Boolean(flags.dryRun),
    ...(flags.out !== undefined ? { out: String(flags.out) } : {}),
    concurrency: flags.concurrency as number,
    batchSize: flags.batchSize as number,
    insiderRps: flags.insiderRps as number,
    ...(flags.failed !== undefined ? { failed: String(flags.failed) } : {}),
    state: String(flags.state),
    json: Boolean(flags.json),
    quiet: Boolean(flags.quiet),
    verbose: Boolean(flags.verbose),
    triggerJourneys: Boolean(flags.triggerJourneys),
    maxRetryAfter: flags.maxRetryAfter as number,
    maxAttempts: flags.maxAttempts as number,
    timeoutMs: flags.timeout as number,
    retryBaseMs: flags.retryBaseMs as number,
  };
}

export function buildProgram(io: Io, control: RunControl, setResult: (code: number) => void): Command {
  const program = new Command('yotpo-insider')
    .description("Move a brand's Yotpo loyalty customers, review aggregates and loyalty webhooks into Insider.")
    .version(version)
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    });

  const finish = (summary: RunSummary) => setResult(summary.exit_code);

  withCommonOptions(
    program
      .command('backfill')
      .description('page through Yotpo (loyalty customers and reviews), transform, upsert to Insider'),
  )
    .option('--since <date>', 'send only customers / reviewers updated since this date')
    .option('--limit <n>', 'stop after n customers (for trials)', integer(1, Number.MAX_SAFE_INTEGER))
    .option('--no-reviews', 'skip the Reviews API (loyalty attributes only)')
    .option('--no-loyalty', 'skip the Loyalty API (reviewers with review attributes only)')
    .option('--emails <file>', 'backfill just these customers (one email per line, or a CSV with an email column)')
    .option('--fresh', 'ignore the saved checkpoint and start over')
    .option('--loyalty-rps <n>', 'Loyalty API requests per second (0 = no limit)', decimal(0, 10_000), 5)
    .option('--reviews-rps <n>', 'Reviews API requests per second (0 = no limit)', decimal(0, 10_000), 20)
    .option('--birthday-placeholder-year <yyyy>', 'year for birthdays/anniversaries without one', integer(1, 9999))
    .addOption(new Option('--loyalty-endpoint <name>', 'customer listing to page').choices(['recent', 'all']).default('recent'))
    .option('--pages-in-flight <n>', 'review pages (and `all` loyalty pages) requested at once', integer(1, 64), 8)
    .action(async (flags: Flags) => {
      const { runBackfill } = await import('./commands/backfill.js');
      const summary = await runBackfill(
        {
          ...commonFrom(flags),
          ...(flags.since !== undefined ? { since: String(flags.since) } : {}),
          ...(flags.limit !== undefined ? { limit: flags.limit as number } : {}),
          reviews: flags.reviews !== false,
          loyalty: flags.loyalty !== false,
          ...(flags.emails !== undefined ? { emails: String(flags.emails) } : {}),
          fresh: Boolean(flags.fresh),
          loyaltyRps: flags.loyaltyRps as number,
          reviewsRps: flags.reviewsRps as number,
          ...(flags.birthdayPlaceholderYear !== undefined ? { birthdayPlaceholderYear: flags.birthdayPlaceholderYear as number } : {}),
          loyaltyEndpoint: flags.loyaltyEndpoint as 'recent' | 'all',
          pagesInFlight: flags.pagesInFlight as number,
        },
        io,
        control,
      );
      finish(summary);
    });

  withCommonOptions(
    program
      .command('replay')
      .argument('<file>', 'JSONL of saved webhook payloads (.gz accepted; - for stdin)')
      .description('replay saved Yotpo loyalty webhook payloads into Insider as events, exactly once'),
  )
    .option('--rejects <file>', 'where unusable lines are written (default <input>.rejects.jsonl)')
    .option('--from <date>', 'send only events at or after this time')
    .option('--to <date>', 'send only events at or before this time')
    .option('--only <events>', 'send only these events (comma-separated Insider or Yotpo names)')
    .option('--force', 're-send events the ledger says were already delivered')
    .option('--allow-unknown-events', 'send unknown events as the snake_case of their name')
    .addOption(new Option('--timestamp-fallback <when>', 'time for events without one').choices(['now']))
    .option('--birthday-placeholder-year <yyyy>', 'year for birthdays/anniversaries without one', integer(1, 9999))
    .action(async (file: string, flags: Flags) => {
      const { runReplay } = await import('./commands/replay.js');
      const summary = await runReplay(
        file,
        {
          ...commonFrom(flags),
          ...(flags.rejects !== undefined ? { rejects: String(flags.rejects) } : {}),
          ...(flags.from !== undefined ? { from: String(flags.from) } : {}),
          ...(flags.to !== undefined ? { to: String(flags.to) } : {}),
          ...(flags.only !== undefined ? { only: String(flags.only).split(',') } : {}),
          force: Boolean(flags.force),
          allowUnknownEvents: Boolean(flags.allowUnknownEvents),
          ...(flags.timestampFallback === 'now' ? { timestampFallback: 'now' as const } : {}),
          ...(flags.birthdayPlaceholderYear !== undefined ? { birthdayPlaceholderYear: flags.birthdayPlaceholderYear as number } : {}),
        },
        io,
        control,
      );
      finish(summary);
    });

  withCommonOptions(
    program
      .command('retry')
      .argument('<failed.jsonl>', 'a failed file written by backfill, replay or retry')
      .description('re-send the Insider users written to a failed file'),
  )
    .option('--force', 'also send users whose events Insider may already hold (marked delivery_uncertain)')
    .action(async (file: string, flags: Flags) => {
      const { runRetry } = await import('./commands/retry.js');
      finish(await runRetry(file, { ...commonFrom(flags), force: Boolean(flags.force) }, io, control));
    });

  program
    .command('sandbox')
    .description('run the local Yotpo + Insider emulator (for rehearsals, tests and the demo)')
    .option('--customers <n>', 'loyalty customers', integer(0, 100_000_000), 2000)
    .option('--reviews <n>', 'reviews', integer(0, 100_000_000), 3000)
    .option('--seed <n>', 'data seed', integer(0, 2 ** 31), 1)
    .option('--port <n>', 'port (0 = any free port)', integer(0, 65535), 0)
    .option('--latency <ms>', 'added to every API response', integer(0, 60_000), 0)
    .option('--fail-rate <0..1>', 'share of API requests answered 5xx', decimal(0, 1), 0)
    .option('--rate-limit <rps>', 'per-API requests per second before 429 (0 = none)', decimal(0, 100_000), 0)
    .option('--reject-rate <0..1>', 'share of users Insider rejects in fail.errors', decimal(0, 1), 0)
    .action(async (flags: Flags) => {
      const { serveSandbox } = await import('./sandbox/serve.js');
      const sandbox = await serveSandbox(
        {
          customers: flags.customers as number,
          reviews: flags.reviews as number,
          seed: flags.seed as number,
          port: flags.port as number,
          latencyMs: flags.latency as number,
          failRate: flags.failRate as number,
          rateLimitRps: flags.rateLimit as number,
          rejectRate: flags.rejectRate as number,
        },
        (line) => io.stdout.write(`${line}\n`),
      );
      await new Promise<void>((done) => control.signal?.addEventListener('abort', () => done(), { once: true }));
      await sandbox.close();
      setResult(EXIT.ok);
    });

  program
    .command('doctor')
    .description('check credentials and reachability of all three APIs (writes nothing)')
    .option('--json', 'print the results as JSON on stdout')
    .option('--verbose', 'one line per request on stderr')
    .action(async (flags: Flags) => {
      const { runDoctor } = await import('./commands/doctor.js');
      const { exitCode } = await runDoctor({ verbose: Boolean(flags.verbose), json: Boolean(flags.json) }, io);
      setResult(exitCode);
    });

  program
    .command('mapping')
    .description('print the mapping table and the custom attributes to create in Insider')
    .option('--json', 'as JSON')
    .action(async (flags: Flags) => {
      const { runMapping } = await import('./commands/mapping.js');
      setResult(runMapping({ json: Boolean(flags.json) }, io));
    });

  program
    .command('demo', { hidden: true })
    .description('start the sandbox in-process, backfill and replay into it, and check what arrived')
    .option('--customers <n>', 'loyalty customers', integer(1, 1_000_000), 2000)
    .option('--reviews <n>', 'reviews', integer(0, 1_000_000), 3000)
    .action(async (flags: Flags) => {
      const { runDemo } = await import('./commands/demo.js');
      setResult(await runDemo({ customers: flags.customers as number, reviews: flags.reviews as number }, io));
    });

  return program;
}

/** Runs the CLI; returns the exit code (SPEC §5). */
export async function main(argv: readonly string[], io: Io = processIo()): Promise<number> {
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (name: string) => {
    signals++;
    if (signals === 1) {
      io.stderr.write(`\n${name}: stopping: finishing requests in flight and saving state (again to exit at once)\n`);
      controller.abort();
    } else {
      // The state file holds the last confirmed position already: nothing is lost by leaving now.
      process.exit(EXIT.interrupted);
    }
  };
  const sigint = () => onSignal('SIGINT');
  const sigterm = () => onSignal('SIGTERM');
  process.on('SIGINT', sigint);
  process.on('SIGTERM', sigterm);

  let code: number = EXIT.ok;
  try {
    const program = buildProgram(io, { signal: controller.signal }, (result) => (code = result));
    await program.parseAsync(argv as string[]);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are exits 0; every other commander error is a usage error.
      code = error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    } else {
      code = exitCodeOf(error);
      const message = error instanceof Error ? error.message : String(error);
      io.stderr.write(`${redact(`error: ${message}`)}\n`);
      if (!(error instanceof UsageError) && code === EXIT.someFailed && error instanceof Error) {
        io.stderr.write(`${redact(error.stack ?? '')}\n`);
      }
    }
  } finally {
    process.off('SIGINT', sigint);
    process.off('SIGTERM', sigterm);
  }
  return code;
}
