// Commander wiring only: the option tables → commander → run*(options) → exit code. No logic lives
// here; every run command returns its summary, and this file only turns it into the exit code.

import { Command, CommanderError, Option } from 'commander';
import { EXIT, exitCodeOf, type ExitCode } from './errors.js';
import { closeIdleConnections } from './io/http.js';
import { redact } from './io/redact.js';
import {
  BACKFILL_OPTIONS,
  LISTEN_OPTIONS,
  REPLAY_OPTIONS,
  RETRY_OPTIONS,
  SANDBOX_OPTIONS,
  STATUS_OPTIONS,
  VERIFY_OPTIONS,
  DOCTOR_OPTIONS,
  type OptionSpec,
} from './options.js';
import { printAboveProgress, processIo, type Io } from './pipeline/report.js';
import type { RunControl } from './pipeline/run.js';
import { VERSION } from './pipeline/summary.js';

type Table = Record<string, OptionSpec<unknown>>;
type Flags = Record<string, unknown>;

/** Adds a table's options to a command; returns how to read them back, typed by the caller. */
function withOptions(command: Command, table: Table): Command {
  for (const spec of Object.values(table)) {
    const option = new Option(spec.flags, spec.help);
    if (spec.parse) option.argParser(spec.parse as (value: string) => unknown);
    if (spec.choices) option.choices(spec.choices);
    if (spec.default !== undefined && !(spec.default === false)) option.default(spec.default);
    if (spec.hidden) option.hideHelp();
    command.addOption(option);
  }
  return command;
}

function picked<T>(table: Table, flags: Flags): Partial<T> {
  const values: Flags = {};
  for (const key of Object.keys(table)) if (flags[key] !== undefined) values[key] = flags[key];
  return values as Partial<T>;
}

const EXAMPLES: Record<string, string> = {
  backfill: [
    'yotpo-insider backfill --dry-run --limit 1000',
    'yotpo-insider backfill',
    'yotpo-insider backfill --since last --json > summary.json',
  ].join('\n  '),
  replay: [
    'yotpo-insider replay events.jsonl --dry-run',
    'yotpo-insider replay events.jsonl.gz --from 2026-11-01',
    'cat events.jsonl | yotpo-insider replay -',
  ].join('\n  '),
  retry: ['yotpo-insider retry yotpo-insider-failed-20261201T120000Z.jsonl', 'yotpo-insider retry failed.jsonl --force'].join('\n  '),
  verify: ['yotpo-insider verify', 'yotpo-insider verify --wait 30', 'yotpo-insider verify --uncertain'].join('\n  '),
  listen: ['yotpo-insider listen --port 8787', 'YOTPO_WEBHOOK_TOKEN=… yotpo-insider listen --host 0.0.0.0'].join('\n  '),
  status: ['yotpo-insider status', 'yotpo-insider status --json'].join('\n  '),
};

function described(command: Command, name: string): Command {
  const examples = EXAMPLES[name];
  return examples ? command.addHelpText('after', `\nDates are UTC unless they carry an offset.\n\nExamples:\n  ${examples}\n`) : command;
}

export function buildProgram(io: Io, control: RunControl, setResult: (code: number) => void): Command {
  const program = new Command('yotpo-insider')
    .description("Move a brand's Yotpo loyalty customers, review aggregates and loyalty webhooks into Insider.")
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeOut: (text) => io.stdout.write(text), writeErr: (text) => io.stderr.write(text) });
  const exitWith = (summary: { exit_code: number }) => setResult(summary.exit_code);

  const command = (name: string, description: string, table: Table) => {
    const built = described(withOptions(program.command(name).description(description), table), name);
    return built.exitOverride();
  };

  command('backfill', 'page through Yotpo (loyalty customers and reviews), transform, upsert to Insider', BACKFILL_OPTIONS).action(
    async (flags: Flags) => {
      const { runBackfill } = await import('./commands/backfill.js');
      exitWith(await runBackfill(picked(BACKFILL_OPTIONS, flags), io, control));
    },
  );
  command('replay', 'replay saved Yotpo loyalty webhook payloads into Insider as events, exactly once', REPLAY_OPTIONS)
    .argument('<file>', 'JSONL of saved webhook payloads (.gz accepted; - for stdin)')
    .action(async (file: string, flags: Flags) => {
      const { runReplay } = await import('./commands/replay.js');
      exitWith(await runReplay(file, picked(REPLAY_OPTIONS, flags), io, control));
    });
  command('retry', 're-send the Insider users written to a failed file', RETRY_OPTIONS)
    .argument('<failed.jsonl>', 'a failed file written by backfill, replay, retry or listen')
    .action(async (file: string, flags: Flags) => {
      const { runRetry } = await import('./commands/retry.js');
      exitWith(await runRetry(file, picked(RETRY_OPTIONS, flags), io, control));
    });
  command('listen', 'receive Yotpo loyalty webhooks: archive each one durably, forward to Insider exactly once', LISTEN_OPTIONS).action(
    async (flags: Flags) => {
      const { runListen } = await import('./commands/listen.js');
      exitWith(await runListen(picked(LISTEN_OPTIONS, flags), io, control));
    },
  );
  command('verify', 'read a sample of delivered users back from Insider and compare them with what was sent', VERIFY_OPTIONS).action(
    async (flags: Flags) => {
      const { runVerifyCommand } = await import('./commands/verify-run.js');
      setResult(await runVerifyCommand(picked(VERIFY_OPTIONS, flags), io, control));
    },
  );
  command('status', 'what the state store holds for the configured account: runs, checkpoints, ledger', STATUS_OPTIONS).action(
    async (flags: Flags) => {
      const { runStatus } = await import('./commands/status.js');
      setResult(await runStatus(picked(STATUS_OPTIONS, flags), io));
    },
  );
  command('doctor', "check credentials, reachability and the Insider account's schema (writes nothing)", DOCTOR_OPTIONS).action(
    async (flags: Flags) => {
      const { runDoctor } = await import('./commands/doctor.js');
      setResult((await runDoctor({ verbose: flags.verbose === true, json: flags.json === true }, io)).exitCode);
    },
  );
  command('mapping', 'print the mapping table and the custom attributes to create in Insider', {
    json: { flags: '--json', help: 'as JSON', default: false },
  }).action(async (flags: Flags) => {
    const { runMapping } = await import('./commands/mapping.js');
    setResult(runMapping({ json: flags.json === true }, io));
  });
  command('sandbox', 'run the local Yotpo + Insider emulator (for rehearsals, tests and the demo)', SANDBOX_OPTIONS).action(
    async (flags: Flags) => {
      const { runSandbox } = await import('./commands/sandbox.js');
      setResult(await runSandbox(picked(SANDBOX_OPTIONS, flags), io, control));
    },
  );
  program
    .command('completion')
    .description('print a shell completion script (bash or zsh)')
    .argument('<shell>', 'bash or zsh')
    .action(async (shell: string) => {
      const { completionScript } = await import('./commands/completion.js');
      setResult(completionScript(shell, program, io));
    });
  program
    .command('demo', { hidden: true })
    .option('--customers <n>', 'loyalty customers', (value) => Number(value), 2000)
    .option('--reviews <n>', 'reviews', (value) => Number(value), 3000)
    .action(async (flags: Flags) => {
      const { runDemo } = await import('./commands/demo.js');
      setResult(await runDemo({ customers: flags.customers as number, reviews: flags.reviews as number }, io));
    });
  return program;
}

const RUN_COMMANDS = new Set(['backfill', 'replay', 'retry']);

/** Runs the CLI; returns the exit code (SPEC §5). */
export async function main(argv: readonly string[], io: Io = processIo()): Promise<number> {
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (name: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      printAboveProgress(io, `${name}: stopping: finishing requests in flight and saving state (again to exit at once)`);
      controller.abort();
    } else {
      // Everything confirmed is in the store already: leaving now loses nothing.
      process.exit(EXIT.interrupted);
    }
  };
  const signalNames: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const name of signalNames) process.on(name, onSignal);

  // A reader that goes away (`| head`) is not a crash: what is written after is dropped (SPEC §5).
  for (const stream of [io.stdout, io.stderr]) if (stream.listenerCount('error') === 0) stream.on('error', () => undefined);
  let code: number = EXIT.ok;
  const commandName = argv[2];
  try {
    const program = buildProgram(io, { signal: controller.signal }, (result) => (code = result));
    program.configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      // One line of error, one of usage, a pointer to --help: never 50 lines of help.
      outputError: (text, write) => write(`${text.split('\n')[0]}\n`),
    });
    await program.parseAsync(argv as string[]);
  } catch (error) {
    if (error instanceof CommanderError) {
      code = error.exitCode === 0 ? EXIT.ok : EXIT.usage;
      if (code === EXIT.usage) {
        const name = commandName && !commandName.startsWith('-') ? ` ${commandName}` : '';
        io.stderr.write(`usage: yotpo-insider${name} [options]${name ? '' : ' <command>'}\nsee yotpo-insider${name} --help\n`);
        if (commandName && RUN_COMMANDS.has(commandName) && argv.includes('--json')) {
          io.stdout.write(
            `${JSON.stringify({ command: commandName, version: VERSION, exit_code: EXIT.usage, error: error.message.replace(/^error: /, '') })}\n`,
          );
        }
      }
    } else {
      code = exitCodeOf(error) as ExitCode;
      const message = error instanceof Error ? error.message : String(error);
      io.stderr.write(`${redact(`error: ${message}`)}\n`);
      if (argv.includes('--verbose') && error instanceof Error) io.stderr.write(`${redact(error.stack ?? '')}\n`);
    }
  } finally {
    for (const name of signalNames) process.off(name, onSignal);
    closeIdleConnections();
  }
  return code;
}
