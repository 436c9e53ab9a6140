// `yotpo-insider mapping [--json]`: the mapping table, the event names, and the custom attributes
// an operator must create in Insider's panel before the first run. All derived from the table.

import { EVENT_NAMES, EVENT_PARAMS, USER_ATTRIBUTES, type AttributeRow, type ValueType } from '../core/table.js';
import type { Io } from '../pipeline/report.js';

/** Insider allows this many custom attributes per account by default. */
export const INSIDER_CUSTOM_ATTRIBUTE_LIMIT = 80;

export function describeSource(row: AttributeRow): string {
  const { source } = row;
  if (source.kind === 'reviews') return 'Yotpo Reviews aggregate';
  if (source.kind === 'dateParts') {
    return `${source.year.join(' ?? ')}, ${source.month.join(' ?? ')}, ${source.day.join(' ?? ')}`;
  }
  return source.paths.join(' ?? ');
}

/** The Insider panel's name for each of our value types. */
const PANEL_TYPE: Record<ValueType, string> = {
  string: 'String',
  number: 'Number',
  boolean: 'Boolean',
  date: 'Date',
  'string[]': 'Strings array',
};

export function mappingDocument() {
  const attributes = USER_ATTRIBUTES.map((row) => ({
    insider: row.name,
    where: row.where,
    type: row.type,
    yotpo: describeSource(row),
    ...(row.note ? { note: row.note } : {}),
  }));
  const customAttributes = USER_ATTRIBUTES.filter((row) => row.where === 'custom').map((row) => ({
    name: row.name,
    type: PANEL_TYPE[row.type],
  }));
  return {
    attributes,
    event_params: EVENT_PARAMS.map((row) => ({
      insider: row.name,
      type: row.type,
      yotpo: row.paths.join(' ?? ') + (row.shareEventPaths ? ` (referral-share events: ${row.shareEventPaths.join(' ?? ')})` : ''),
    })),
    events: EVENT_NAMES.map((row) => ({
      yotpo_name: row.yotpoName ?? null,
      yotpo_topics: row.topics,
      insider: row.insiderName,
      ...(row.skipReason ? { skipped: row.skipReason } : {}),
    })),
    custom_attributes_to_create: customAttributes,
    custom_event_params_to_create: EVENT_PARAMS.map((row) => ({ name: row.name, type: PANEL_TYPE[row.type] })),
    custom_attribute_limit: INSIDER_CUSTOM_ATTRIBUTE_LIMIT,
    custom_attributes_used: customAttributes.length,
  };
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) => row.map((text, column) => text.padEnd(widths[column]!)).join('  ').trimEnd());
}

export function runMapping(options: { json: boolean }, io: Io): number {
  const doc = mappingDocument();
  if (options.json) {
    io.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
    return 0;
  }
  const lines: string[] = ['User attributes (defaults at the root of attributes, custom ones under attributes.custom):', ''];
  lines.push(...table([['INSIDER', 'WHERE', 'TYPE', 'YOTPO SOURCE'], ...doc.attributes.map((a) => [a.insider, a.where, a.type, a.yotpo])]));
  lines.push('', 'Event parameters (under event_params.custom):', '');
  lines.push(...table([['INSIDER', 'TYPE', 'YOTPO SOURCE'], ...doc.event_params.map((p) => [p.insider, p.type, p.yotpo])]));
  lines.push('', 'Events:', '');
  lines.push(
    ...table([
      ['YOTPO NAME', 'YOTPO TOPIC', 'INSIDER EVENT'],
      ...doc.events.map((e) => [e.yotpo_name ?? '—', e.yotpo_topics.join(', ') || '—', e.insider ?? `(skipped: ${e.skipped})`]),
    ]),
  );
  lines.push('', 'Create these custom attributes in Insider (InOne > Settings > Attributes & Events) before the first run:', '');
  lines.push(...table([['NAME', 'TYPE'], ...doc.custom_attributes_to_create.map((a) => [a.name, a.type])]));
  lines.push(
    '',
    `This mapping uses ${doc.custom_attributes_used} custom attributes; Insider allows ${doc.custom_attribute_limit} per account by default (shared with every other source), so check how many your account already uses.`,
    'Values of custom attributes that do not exist in the panel may be dropped by Insider without an error.',
  );
  io.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}
