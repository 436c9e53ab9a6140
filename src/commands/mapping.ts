// `yotpo-insider mapping [--json]`: the mapping table, the event names, and what an operator must
// create in Insider's panel before the first run, each with the type to choose (fixed once
// created: a value of another type is dropped silently). All derived from the table.

import { CUSTOM_ATTRIBUTE_BUDGET, CUSTOM_EVENT_PARAM_BUDGET } from '../core/schema.js';
import { EVENT_NAMES, EVENT_PARAMS, USER_ATTRIBUTES, type AttributeRow, type EventParamRow } from '../core/table.js';
import type { Io } from '../pipeline/report.js';

export const TYPES_ARE_FIXED =
  'Choose each type exactly as listed: Insider cannot change the type (or the name) of a custom attribute, event or parameter once created, and silently drops values of another type.';

export function describeSource(row: AttributeRow): string {
  const { source } = row;
  if (source.kind === 'reviews') return 'Yotpo Reviews aggregate';
  if (source.kind === 'dateParts') {
    return `${source.year.join(' ?? ')}, ${source.month.join(' ?? ')}, ${source.day.join(' ?? ')}`;
  }
  return source.paths.join(' ?? ');
}

export function describeParamSource(row: EventParamRow): string {
  return row.paths.join(' ?? ') + (row.shareEventPaths ? ` (referral-share events: ${row.shareEventPaths.join(' ?? ')})` : '');
}

export function mappingDocument() {
  const customAttributes = USER_ATTRIBUTES.filter((row) => row.where === 'custom').map((row) => ({
    name: row.name,
    type: row.insiderType,
  }));
  const insiderEvents = [...new Set(EVENT_NAMES.flatMap((row) => (row.insiderName ? [row.insiderName] : [])))];
  return {
    attributes: USER_ATTRIBUTES.map((row) => ({
      insider: row.name,
      where: row.where,
      type: row.type,
      // Default attributes exist in every account with their own type: nothing to choose.
      ...(row.where === 'custom' ? { insider_type: row.insiderType } : {}),
      yotpo: describeSource(row),
      ...(row.note ? { note: row.note } : {}),
    })),
    event_params: EVENT_PARAMS.map((row) => ({
      insider: row.name,
      type: row.type,
      insider_type: row.insiderType,
      yotpo: describeParamSource(row),
    })),
    events: EVENT_NAMES.map((row) => ({
      yotpo_name: row.yotpoName ?? null,
      yotpo_topics: row.topics,
      insider: row.insiderName,
      ...(row.skipReason ? { skipped: row.skipReason } : {}),
    })),
    custom_attributes_to_create: customAttributes,
    custom_events_to_create: insiderEvents,
    custom_event_params_to_create: EVENT_PARAMS.map((row) => ({ name: row.name, type: row.insiderType })),
    types_fixed_once_created: TYPES_ARE_FIXED,
    custom_attribute_limit: CUSTOM_ATTRIBUTE_BUDGET,
    custom_attributes_used: customAttributes.length,
    custom_event_param_limit: CUSTOM_EVENT_PARAM_BUDGET,
    custom_event_params_used: EVENT_PARAMS.length,
  };
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) =>
    row
      .map((text, column) => text.padEnd(widths[column]!))
      .join('  ')
      .trimEnd(),
  );
}

export function runMapping(options: { json: boolean }, io: Io): number {
  const doc = mappingDocument();
  if (options.json) {
    io.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
    return 0;
  }
  const lines: string[] = ['User attributes (defaults at the root of attributes, custom ones under attributes.custom):', ''];
  lines.push(
    ...table([
      ['INSIDER', 'WHERE', 'INSIDER TYPE', 'YOTPO SOURCE'],
      ...doc.attributes.map((a) => [a.insider, a.where, a.insider_type ?? '(default)', a.yotpo]),
    ]),
  );
  lines.push('', 'Event parameters (under event_params.custom):', '');
  lines.push(...table([['INSIDER', 'INSIDER TYPE', 'YOTPO SOURCE'], ...doc.event_params.map((p) => [p.insider, p.insider_type, p.yotpo])]));
  lines.push('', 'Events:', '');
  lines.push(
    ...table([
      ['YOTPO NAME', 'YOTPO TOPIC', 'INSIDER EVENT'],
      ...doc.events.map((e) => [e.yotpo_name ?? '—', e.yotpo_topics.join(', ') || '—', e.insider ?? `(skipped: ${e.skipped})`]),
    ]),
  );
  lines.push('', 'Create these in Insider (InOne > Settings > Attributes & Events) before the first run, with these types:', '');
  lines.push(...table([['CUSTOM ATTRIBUTE', 'TYPE'], ...doc.custom_attributes_to_create.map((a) => [a.name, a.type])]));
  lines.push('');
  lines.push(...table([['CUSTOM EVENT PARAMETER', 'TYPE'], ...doc.custom_event_params_to_create.map((p) => [p.name, p.type])]));
  lines.push('', `Custom events (replay and listen): ${doc.custom_events_to_create.join(', ')}.`);
  lines.push(
    '',
    `warning: ${TYPES_ARE_FIXED}`,
    `This mapping uses ${doc.custom_attributes_used} custom attributes; Insider allows ${doc.custom_attribute_limit} per account by default (shared with every other source), so check how many your account already uses.`,
    `It uses ${doc.custom_event_params_used} custom event parameters; Insider allows ${doc.custom_event_param_limit} by default.`,
    '`yotpo-insider doctor` checks the panel against this list.',
  );
  io.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}
