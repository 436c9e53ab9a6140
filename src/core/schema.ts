// The Insider panel schema check (SPEC §3): every custom attribute, event and event parameter the
// mapping sends must exist in the account's panel with the right type, or Insider drops its
// values silently while counting the user successful. Pure: the panel is read in insider/metadata.ts.

import { EVENT_NAMES, EVENT_PARAMS, USER_ATTRIBUTES, type ValueType } from './table.js';

/** The types an Insider panel attribute or parameter can have (fixed once created). */
export type PanelType = 'string' | 'number' | 'boolean' | 'date' | 'array';

export interface RequiredSchema {
  /** Custom attributes, names without the `c_` prefix. */
  attributes: { name: string; type: PanelType }[];
  events: { name: string; params: { name: string; type: PanelType }[] }[];
}

/** What the account's panel holds: names without `c_`, types as Insider reports them (normalised when known). */
export interface PanelSchema {
  /** Custom attributes only. */
  attributes: Record<string, string>;
  /** Events and their custom parameters. */
  events: Record<string, Record<string, string>>;
}

/** Insider's default budgets (SPEC §3). */
export const CUSTOM_ATTRIBUTE_BUDGET = 80;
export const CUSTOM_EVENT_PARAM_BUDGET = 80;

export function panelTypeOf(type: ValueType): PanelType {
  return type === 'string[]' ? 'array' : type;
}

/** A panel's type name in the words this check uses ('text' → string, 'datetime' → date …). */
export function normalisePanelType(raw: string): string {
  const type = raw.trim().toLowerCase();
  if (['string', 'text', 'str', 'varchar'].includes(type)) return 'string';
  if (['number', 'integer', 'int', 'float', 'double', 'long', 'decimal', 'numeric'].includes(type)) return 'number';
  if (['boolean', 'bool'].includes(type)) return 'boolean';
  if (['date', 'datetime', 'date-time', 'date_time', 'timestamp'].includes(type)) return 'date';
  if (type === 'array' || type.endsWith('[]') || type.includes('array')) return 'array';
  return type;
}

/** What the mapping needs in the panel (MAPPING §2 custom rows, §5 events and params). */
export function requiredSchemaFromTable(): RequiredSchema {
  const params = EVENT_PARAMS.map((row) => ({ name: row.name, type: panelTypeOf(row.type) }));
  const eventNames = [...new Set(EVENT_NAMES.flatMap((row) => (row.insiderName ? [row.insiderName] : [])))];
  return {
    attributes: USER_ATTRIBUTES.filter((row) => row.where === 'custom').map((row) => ({ name: row.name, type: panelTypeOf(row.type) })),
    // Any parameter may come with any event (the transform reads every path), so each event needs all.
    events: eventNames.map((name) => ({ name, params: params.map((param) => ({ ...param })) })),
  };
}

export type SchemaItemState = 'ok' | 'missing' | 'mistyped';

export interface SchemaItem {
  kind: 'attribute' | 'event' | 'event parameter';
  name: string;
  /** For an event parameter: its event. */
  event?: string;
  state: SchemaItemState;
  expected?: PanelType;
  /** The type the panel has (mistyped only). */
  found?: string;
}

export interface SchemaReport {
  items: SchemaItem[];
  missing: number;
  mistyped: number;
  /** The account's custom attributes / distinct custom event parameters, against the budget. */
  budget: {
    attributes: { used: number; total: number; needed: number };
    eventParams: { used: number; total: number; needed: number };
  };
}

export function checkSchema(schema: PanelSchema, required: RequiredSchema): SchemaReport {
  const items: SchemaItem[] = [];
  const typed = (kind: SchemaItem['kind'], name: string, expected: PanelType, found: string | undefined, event?: string): SchemaItem => {
    const base = event === undefined ? { kind, name, expected } : { kind, name, event, expected };
    if (found === undefined) return { ...base, state: 'missing' };
    const normalised = normalisePanelType(found);
    return normalised === expected ? { ...base, state: 'ok' } : { ...base, state: 'mistyped', found: normalised };
  };
  for (const { name, type } of required.attributes) items.push(typed('attribute', name, type, schema.attributes[name]));
  for (const event of required.events) {
    const params = schema.events[event.name];
    if (!params) {
      items.push({ kind: 'event', name: event.name, state: 'missing' });
      continue;
    }
    items.push({ kind: 'event', name: event.name, state: 'ok' });
    for (const { name, type } of event.params) items.push(typed('event parameter', name, type, params[name], event.name));
  }
  const panelParams = new Set(Object.values(schema.events).flatMap((params) => Object.keys(params)));
  const neededParams = new Set(required.events.flatMap((event) => event.params.map((param) => param.name)));
  const neededAttributes = new Set(required.attributes.map((attribute) => attribute.name));
  return {
    items,
    missing: items.filter((item) => item.state === 'missing').length,
    mistyped: items.filter((item) => item.state === 'mistyped').length,
    budget: {
      attributes: {
        used: Object.keys(schema.attributes).length,
        total: CUSTOM_ATTRIBUTE_BUDGET,
        needed: [...neededAttributes].filter((name) => !(name in schema.attributes)).length,
      },
      eventParams: {
        used: panelParams.size,
        total: CUSTOM_EVENT_PARAM_BUDGET,
        needed: [...neededParams].filter((name) => !panelParams.has(name)).length,
      },
    },
  };
}

function eventList(events: readonly string[]): string {
  return events.length > 3 ? `${events.slice(0, 3).join(', ')} and ${events.length - 3} more event(s)` : events.join(', ');
}

/** The lines an operator reads: what is wrong, and the fix. Event parameters are grouped by name. */
export function formatSchemaReport(report: SchemaReport): string[] {
  const lines: string[] = [];
  const { attributes, eventParams } = report.budget;
  if (report.missing === 0 && report.mistyped === 0) {
    lines.push('Insider panel schema: every custom attribute, event and event parameter of the mapping exists with its type');
  } else {
    lines.push(`Insider panel schema: ${report.missing} missing, ${report.mistyped} mistyped (Insider drops their values silently)`);
  }
  for (const item of report.items) {
    if (item.kind === 'event parameter' || item.state === 'ok') continue;
    if (item.kind === 'event') {
      lines.push(
        `  event ${item.name}: missing; create the custom event "${item.name}" in InOne (Attributes & Events) with its parameters`,
      );
    } else if (item.state === 'missing') {
      lines.push(`  attribute ${item.name}: missing; create it in InOne with type ${item.expected}`);
    } else {
      lines.push(
        `  attribute ${item.name}: type ${item.found}, the mapping sends ${item.expected}; it needs a new attribute, since types cannot be changed once created: delete it in InOne and create it again with type ${item.expected}`,
      );
    }
  }
  const params = new Map<string, { expected: PanelType; missing: string[]; mistyped: Map<string, string[]> }>();
  for (const item of report.items) {
    if (item.kind !== 'event parameter' || item.state === 'ok') continue;
    const entry = params.get(item.name) ?? { expected: item.expected!, missing: [], mistyped: new Map<string, string[]>() };
    if (item.state === 'missing') entry.missing.push(item.event!);
    else entry.mistyped.set(item.found!, [...(entry.mistyped.get(item.found!) ?? []), item.event!]);
    params.set(item.name, entry);
  }
  for (const [name, entry] of params) {
    if (entry.missing.length > 0) {
      lines.push(`  event parameter ${name}: missing on ${eventList(entry.missing)}; create it in InOne with type ${entry.expected}`);
    }
    for (const [found, events] of entry.mistyped) {
      lines.push(
        `  event parameter ${name}: type ${found} on ${eventList(events)}, the mapping sends ${entry.expected}; it needs a new parameter, since types cannot be changed once created: create it again with type ${entry.expected}`,
      );
    }
  }
  lines.push(
    `  budget: ${attributes.used}/${attributes.total} custom attributes used${attributes.needed > 0 ? ` (${attributes.needed} more needed)` : ''}, ` +
      `${eventParams.used}/${eventParams.total} custom event parameters used${eventParams.needed > 0 ? ` (${eventParams.needed} more needed)` : ''}`,
  );
  if (attributes.used + attributes.needed > attributes.total || eventParams.used + eventParams.needed > eventParams.total) {
    lines.push('  the budget is too small for the mapping: ask Insider to raise it, or remove unused custom fields');
  }
  return lines;
}
