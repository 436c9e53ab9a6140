// The README's option tables against src/options.ts, where every command's options are declared
// once: each `### <command> options` table lists the same flags, in the same order (hidden ones
// left out), each with the option's shown default, or its default rendered as text. And every
// `yotpo-insider <command> …` example in the README uses only flags that command has.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import {
  BACKFILL_OPTIONS,
  DOCTOR_OPTIONS,
  LISTEN_OPTIONS,
  REPLAY_OPTIONS,
  RETRY_OPTIONS,
  SANDBOX_OPTIONS,
  STATUS_OPTIONS,
  VERIFY_OPTIONS,
  type OptionSpec,
} from '../src/options.js';

type OptionTable = Record<string, OptionSpec<unknown>>;

const README = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');

const TABLES: Record<string, OptionTable> = {
  backfill: BACKFILL_OPTIONS,
  replay: REPLAY_OPTIONS,
  retry: RETRY_OPTIONS,
  listen: LISTEN_OPTIONS,
  verify: VERIFY_OPTIONS,
  status: STATUS_OPTIONS,
  doctor: DOCTOR_OPTIONS,
  sandbox: SANDBOX_OPTIONS,
};

/** Commands whose options are declared in the CLI wiring itself, not in a table. */
const OTHER_COMMANDS: Record<string, readonly string[]> = { mapping: ['--json'], completion: [], demo: ['--customers', '--reviews'] };

interface Row {
  flag: string;
  meaning: string;
  default: string;
}

/** The default as the README shows it: the shown default, else the value; switches read off, or on for `--no-…`. */
export function shownDefault(option: OptionSpec<unknown>): string {
  if (option.shownDefault !== undefined) return option.shownDefault;
  if (option.default === undefined) return '';
  if (typeof option.default === 'boolean') return option.default ? 'on' : 'off';
  return String(option.default);
}

/** The rows the README must show for a table: what `node … gen` would print, and what a failure prints. */
export function expectedRows(table: OptionTable): Row[] {
  return Object.values(table)
    .filter((option) => !option.hidden)
    .map((option) => ({ flag: option.flags, meaning: option.help, default: shownDefault(option) }));
}

const escapeCell = (text: string) => text.replace(/\|/g, '\\|');

export function renderTable(command: string, rows: readonly Row[]): string {
  return [
    `### ${command} options`,
    '',
    '| flag | meaning | default |',
    '|---|---|---|',
    ...rows.map((row) => `| \`${escapeCell(row.flag)}\` | ${escapeCell(row.meaning)} | ${escapeCell(row.default)} |`),
  ].join('\n');
}

/** A table row's cells; `\|` is a pipe inside a cell (also inside a code span, as GitHub reads it). */
function cellsOf(line: string): string[] {
  const cells: string[] = [];
  let current = '';
  for (let i = 0; i < line.length; i++) {
    const char = line[i]!;
    if (char === '\\' && line[i + 1] === '|') {
      current += '|';
      i++;
    } else if (char === '|') {
      cells.push(current.trim());
      current = '';
    } else {
      current += char;
    }
  }
  cells.push(current.trim());
  return cells.slice(1, -1);
}

/** The rows of the first table under `### <command> options`, or undefined when there is no such heading. */
export function readmeTable(markdown: string, command: string): Row[] | undefined {
  const lines = markdown.split('\n');
  const start = lines.findIndex((line) => line.trim() === `### ${command} options`);
  if (start < 0) return undefined;
  const rows: Row[] = [];
  let inTable = false;
  for (const line of lines.slice(start + 1)) {
    if (/^#{1,3} /.test(line)) break;
    if (!line.startsWith('|')) {
      if (inTable) break;
      continue;
    }
    const cells = cellsOf(line);
    if (!inTable) {
      assert.deepEqual(cells, ['flag', 'meaning', 'default'], `### ${command} options: the table's columns`);
      inTable = true;
      continue;
    }
    if (cells.every((cell) => /^:?-+:?$/.test(cell))) continue;
    const code = /^`([^`]+)`$/.exec(cells[0] ?? '');
    rows.push({ flag: code ? code[1]! : (cells[0] ?? ''), meaning: cells[1] ?? '', default: cells[2] ?? '' });
  }
  return rows;
}

/** What differs between the README's table and the code's; empty when they agree. */
export function tableProblems(command: string, readme: readonly Row[] | undefined, table: OptionTable): string[] {
  const expected = expectedRows(table);
  if (!readme) return [`the README has no "### ${command} options" table`];
  const problems: string[] = [];
  const documented = new Set(readme.map((row) => row.flag));
  const declared = new Set(expected.map((row) => row.flag));
  for (const row of expected) if (!documented.has(row.flag)) problems.push(`${row.flag} is an option of ${command} but not in the README`);
  for (const row of readme) if (!declared.has(row.flag)) problems.push(`${row.flag} is in the README but not an option of ${command}`);
  for (const row of readme) {
    const option = expected.find((candidate) => candidate.flag === row.flag);
    if (option && option.default !== row.default)
      problems.push(`${row.flag}: the README's default is "${row.default}", the code's "${option.default}"`);
    if (option && row.meaning === '') problems.push(`${row.flag}: no meaning in the README`);
  }
  const common = (rows: readonly Row[], keep: Set<string>) => rows.map((row) => row.flag).filter((flag) => keep.has(flag));
  if (problems.length === 0 && common(readme, declared).join() !== common(expected, documented).join()) {
    problems.push(`the flags are not in the order of src/options.ts`);
  }
  return problems;
}

describe('the README option tables are the option tables of src/options.ts', () => {
  for (const [command, table] of Object.entries(TABLES)) {
    test(`### ${command} options`, () => {
      const problems = tableProblems(command, readmeTable(README, command), table);
      assert.deepEqual(
        problems,
        [],
        `${problems.join('\n')}\n\nThe table, as the code declares it:\n\n${renderTable(command, expectedRows(table))}\n`,
      );
    });
  }
});

describe('the checker itself', () => {
  const table: OptionTable = {
    dryRun: { flags: '--dry-run', help: 'send nothing', default: false },
    reviews: { flags: '--no-reviews', help: 'skip reviews', default: true },
    mode: { flags: '--mode <a|b>', help: 'which', default: 'a' },
    out: { flags: '--out <file>', help: 'where', shownDefault: '`out.csv`' },
    limit: { flags: '--limit <n>', help: 'how many' },
    secret: { flags: '--retry-base-ms <ms>', help: 'internal', default: 1000, hidden: true },
  };
  const markdown = (body: string) => `## Commands\n\n### demo options\n\n${body}\n\n### next\n`;

  test('a table rendered from the code passes, pipes and all', () => {
    const rendered = renderTable('demo', expectedRows(table));
    assert.match(rendered, /`--mode <a\\\|b>`/);
    assert.match(rendered, /\| `--no-reviews` \| skip reviews \| on \|/);
    assert.match(rendered, /\| `--dry-run` \| send nothing \| off \|/);
    assert.doesNotMatch(rendered, /retry-base-ms/, 'hidden options are left out');
    assert.deepEqual(tableProblems('demo', readmeTable(`## x\n\n${rendered}\n`, 'demo'), table), []);
  });

  test('a flag added to the code but not to the README fails', () => {
    const rows = expectedRows(table).filter((row) => row.flag !== '--limit <n>');
    const problems = tableProblems('demo', readmeTable(markdown(renderTable('demo', rows).split('\n').slice(2).join('\n')), 'demo'), table);
    assert.deepEqual(problems, ['--limit <n> is an option of demo but not in the README']);
  });

  test('a flag in the README that the code lacks fails', () => {
    const rows = [...expectedRows(table), { flag: '--skip-hook', meaning: 'gone', default: 'off' }];
    const problems = tableProblems('demo', readmeTable(markdown(renderTable('demo', rows).split('\n').slice(2).join('\n')), 'demo'), table);
    assert.deepEqual(problems, ['--skip-hook is in the README but not an option of demo']);
  });

  test('a wrong default, an empty meaning, another order and a missing table fail', () => {
    const rows = expectedRows(table).map((row) => (row.flag === '--mode <a|b>' ? { ...row, default: 'b' } : row));
    const wrongDefault = tableProblems('demo', readmeTable(`## x\n\n${renderTable('demo', rows)}\n`, 'demo'), table);
    assert.deepEqual(wrongDefault, ['--mode <a|b>: the README\'s default is "b", the code\'s "a"']);

    const noMeaning = expectedRows(table).map((row) => (row.flag === '--limit <n>' ? { ...row, meaning: '' } : row));
    assert.deepEqual(tableProblems('demo', readmeTable(`## x\n\n${renderTable('demo', noMeaning)}\n`, 'demo'), table), [
      '--limit <n>: no meaning in the README',
    ]);

    const reversed = [...expectedRows(table)].reverse();
    assert.deepEqual(tableProblems('demo', readmeTable(`## x\n\n${renderTable('demo', reversed)}\n`, 'demo'), table), [
      'the flags are not in the order of src/options.ts',
    ]);

    assert.deepEqual(tableProblems('demo', readmeTable('## nothing here\n', 'demo'), table), [
      'the README has no "### demo options" table',
    ]);
  });
});

/** `yotpo-insider <command> …` in the README (code blocks and inline code), with the flags used, up to the end of the command. */
export function exampleInvocations(markdown: string): { command: string; flags: string[]; text: string }[] {
  const found: { command: string; flags: string[]; text: string }[] = [];
  for (const match of markdown.matchAll(/yotpo-insider(?:\.js)? ([a-z]+)([^\n`]*)/g)) {
    const command = match[1]!;
    // The command ends at a shell operator, a comment, or the end of a code span or line.
    const rest = (match[2] ?? '').split(/\s(?:\||&&|;|#|>)\s?|\)/)[0] ?? '';
    const flags = [...rest.matchAll(/(?:^|\s)(--[a-z][a-z-]*)/g)].map((flag) => flag[1]!);
    found.push({ command, flags, text: `yotpo-insider ${command}${rest}` });
  }
  return found;
}

describe('the README examples use only flags their command has', () => {
  const known = (command: string): Set<string> | undefined => {
    const table = TABLES[command];
    const flags = table ? Object.values(table).map((option) => option.flags.split(/[ ,]/)[0]!) : OTHER_COMMANDS[command];
    return flags ? new Set([...flags, '--help', '--version']) : undefined;
  };

  test('every example', () => {
    const examples = exampleInvocations(README);
    assert.ok(examples.length > 30, `only ${examples.length} examples found`);
    const problems: string[] = [];
    for (const example of examples) {
      const flags = known(example.command);
      if (!flags) {
        // Prose ("yotpo-insider writes …") names no command; flags after an unknown word are a typo.
        if (example.flags.length > 0) problems.push(`${example.text}: no command ${example.command}`);
        continue;
      }
      for (const flag of example.flags) if (!flags.has(flag)) problems.push(`${example.text}: ${example.command} has no ${flag}`);
    }
    assert.deepEqual(problems, []);
  });

  test('the example check can fail', () => {
    const examples = exampleInvocations(
      '```sh\nyotpo-insider backfill --dry-run --skip-hook | less\n```\n`yotpo-insider verify --wait 30`',
    );
    assert.deepEqual(
      examples.map((example) => [example.command, example.flags]),
      [
        ['backfill', ['--dry-run', '--skip-hook']],
        ['verify', ['--wait']],
      ],
    );
    assert.equal(known('backfill')?.has('--skip-hook'), false);
    assert.equal(known('verify')?.has('--wait'), true);
  });
});
