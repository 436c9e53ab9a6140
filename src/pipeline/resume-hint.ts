// The command an operator copies to resume or retry a run: every option that decides what is sent
// (the state folder, windows, filters, scope), so following it verbatim repeats nothing and skips
// nothing. Options that only shape output (--json, --quiet, --out) are left out.

import type { OptionSpec } from '../options.js';

const OUTPUT_ONLY = new Set(['json', 'quiet', 'verbose', 'out', 'excel', 'dryRun', 'fresh', 'failed', 'retryBaseMs', 'maxRequestBytes']);

function quote(value: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

export function resumeCommand(
  command: string,
  table: Record<string, OptionSpec<unknown>>,
  options: Record<string, unknown>,
  args: readonly string[] = [],
): string {
  const parts = ['yotpo-insider', command, ...args.map(quote)];
  for (const [key, option] of Object.entries(table)) {
    if (OUTPUT_ONLY.has(key) || option.hidden) continue;
    const value = options[key];
    if (value === undefined || value === option.default) continue;
    const flag = option.flags.split(/[ ,]/)[0]!;
    if (typeof value === 'boolean') parts.push(flag);
    else parts.push(flag, quote(Array.isArray(value) ? value.join(',') : String(value)));
  }
  return parts.join(' ');
}
