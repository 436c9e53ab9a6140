// The dry run's fill report: per attribute of the mapping, how many users carry it and how many had
// it omitted, and why, so an operator sees before a first live run what Insider will (not) get.

import type { InsiderUser } from './transform.js';
import { USER_ATTRIBUTES } from './table.js';

export interface FillLine {
  attribute: string;
  filled: number;
  omitted: Record<string, number>;
}

export class FillCounter {
  private readonly filled = new Map<string, number>();
  users = 0;

  add(user: InsiderUser): void {
    this.users++;
    const { custom, ...defaults } = user.attributes;
    for (const name of Object.keys(defaults)) this.filled.set(name, (this.filled.get(name) ?? 0) + 1);
    for (const name of Object.keys(custom ?? {})) this.filled.set(name, (this.filled.get(name) ?? 0) + 1);
  }

  /** Every attribute of the mapping in table order, with the run's field warnings (`name: why`). */
  report(fieldWarnings: Record<string, number>): FillLine[] {
    return USER_ATTRIBUTES.map(({ name }) => {
      const omitted: Record<string, number> = {};
      for (const [key, count] of Object.entries(fieldWarnings))
        if (key.startsWith(`${name}: `)) omitted[key.slice(name.length + 2)] = count;
      return { attribute: name, filled: this.filled.get(name) ?? 0, omitted };
    });
  }
}

export function formatFillReport(lines: readonly FillLine[], users: number): string[] {
  const n = (value: number) => value.toLocaleString('en-US');
  const width = Math.max(...lines.map((line) => line.attribute.length));
  const out = [`fill report: of ${n(users)} user(s) that would be sent`];
  for (const line of lines) {
    const share = users > 0 ? ` (${Math.round((line.filled / users) * 100)}%)` : '';
    const reasons = Object.entries(line.omitted).map(([why, count]) => `${n(count)} ${why}`);
    out.push(
      `  ${line.attribute.padEnd(width)}  ${n(line.filled).padStart(9)}${share}${reasons.length > 0 ? `; omitted: ${reasons.join(', ')}` : ''}`,
    );
  }
  return out;
}
