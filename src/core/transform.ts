// The transform, compiled once from the mapping table: a Yotpo record (REST customer or webhook
// member + payload) becomes Insider attributes. No per-record table walking beyond a closure call.

import { EMAIL_PATTERN, EVENT_PARAMS, USER_ATTRIBUTES, type AttributeRow, type EventParamRow } from './table.js';
import { COERCE, getPath, isAbsent, toDateFromParts, type Coerced, type Scalar } from './values.js';

/** Attribute values keyed by Insider name, before they are split into root and `custom`. */
export type FlatAttributes = Record<string, Scalar>;

export interface InsiderEvent {
  event_name: string;
  timestamp: string;
  event_params?: { custom: Record<string, Scalar> };
}

export interface InsiderUser {
  identifiers: { email: string };
  attributes: { email: string; custom?: Record<string, Scalar>; [name: string]: unknown };
  /**
   * SPEC §3: Insider appends to an array attribute unless told not to, so without it
   * `yotpo_top_topics` would grow with every run. Every user built here carries it.
   */
  not_append: true;
  events?: InsiderEvent[];
}

/** Counts of omitted fields, keyed `<attribute>: <why>`; reported in the summary. */
export type FieldWarnings = Map<string, number>;

export function countWarning(warnings: FieldWarnings, key: string): void {
  warnings.set(key, (warnings.get(key) ?? 0) + 1);
}

export interface TransformOptions {
  /** `--birthday-placeholder-year`: the year used for birthdays and anniversaries without one. */
  placeholderYear?: number;
}

/** MAPPING §1: trimmed, lower-cased, and shaped like an email; else undefined. */
export function normaliseEmail(raw: unknown): string | undefined {
  if (typeof raw !== 'string') return undefined;
  const email = raw.trim().toLowerCase();
  return EMAIL_PATTERN.test(email) ? email : undefined;
}

type Reader = (sources: readonly unknown[], options: TransformOptions) => Coerced;

const splitPaths = (paths: readonly string[]) => paths.map((p) => p.split('.'));

/** First present value of the paths, looking in each source object in turn (member first). */
function firstPresent(sources: readonly unknown[], paths: readonly string[][]): unknown {
  for (let s = 0; s < sources.length; s++) {
    const source = sources[s];
    for (let p = 0; p < paths.length; p++) {
      const value = getPath(source, paths[p]!);
      if (!isAbsent(value)) return value;
    }
  }
  return undefined;
}

/** `<attribute>: <why>` keys, built once per pair: warnings are frequent (a birthday without year). */
const warningKeys = new Map<string, Map<string, string>>();
function warningKey(name: string, reason: string): string {
  let byReason = warningKeys.get(name);
  if (!byReason) warningKeys.set(name, (byReason = new Map()));
  let key = byReason.get(reason);
  if (!key) byReason.set(reason, (key = `${name}: ${reason}`));
  return key;
}

function compileAttribute(row: AttributeRow): Reader | undefined {
  const { source } = row;
  if (source.kind === 'reviews') return undefined;
  if (source.kind === 'dateParts') {
    const [year, month, day] = [splitPaths(source.year), splitPaths(source.month), splitPaths(source.day)];
    return (sources, options) =>
      toDateFromParts(firstPresent(sources, year), firstPresent(sources, month), firstPresent(sources, day), options.placeholderYear);
  }
  const paths = splitPaths(source.paths);
  const coerce = COERCE[row.type];
  return (sources) => coerce(firstPresent(sources, paths));
}

const COMPILED_ATTRIBUTES = USER_ATTRIBUTES.flatMap((row) => {
  const read = compileAttribute(row);
  return read ? [{ name: row.name, custom: row.where === 'custom', read }] : [];
});

/** The attributes computed from reviews rather than read from a Yotpo record. */
export const REVIEW_ATTRIBUTE_NAMES: readonly string[] = USER_ATTRIBUTES.filter((row) => row.source.kind === 'reviews').map(
  (row) => row.name,
);

const CUSTOM_ATTRIBUTE = new Set(USER_ATTRIBUTES.filter((row) => row.where === 'custom').map((row) => row.name));

/**
 * Maps a record to flat attributes. `sources` are searched in order (a webhook passes its member
 * object, then the payload); `reviewAttributes` are the aggregates from the Reviews API, if any.
 */
export function mapAttributes(
  sources: readonly unknown[],
  reviewAttributes: FlatAttributes | undefined,
  options: TransformOptions,
  warnings: FieldWarnings,
): FlatAttributes {
  const attributes: FlatAttributes = {};
  for (const { name, read } of COMPILED_ATTRIBUTES) {
    const result = read(sources, options);
    if ('ok' in result) attributes[name] = result.ok;
    else if ('warning' in result) countWarning(warnings, warningKey(name, result.warning));
  }
  if (reviewAttributes) Object.assign(attributes, reviewAttributes);
  return attributes;
}

/**
 * The hot path of a backfill: a record straight to an Insider user (defaults at the root of
 * `attributes`, the rest under `custom`), without an intermediate flat object.
 */
export function mapUser(
  email: string,
  sources: readonly unknown[],
  reviewAttributes: FlatAttributes | undefined,
  options: TransformOptions,
  warnings: FieldWarnings,
): InsiderUser {
  const custom: Record<string, Scalar> = {};
  const attributes: InsiderUser['attributes'] = { email };
  let customCount = 0;
  for (const { name, custom: isCustom, read } of COMPILED_ATTRIBUTES) {
    const result = read(sources, options);
    if ('ok' in result) {
      if (isCustom) {
        custom[name] = result.ok;
        customCount++;
      } else attributes[name] = result.ok;
    } else if ('warning' in result) countWarning(warnings, warningKey(name, result.warning));
  }
  if (reviewAttributes) {
    for (const name in reviewAttributes) {
      custom[name] = reviewAttributes[name]!;
      customCount++;
    }
  }
  if (customCount > 0) attributes.custom = custom;
  return { identifiers: { email }, attributes, not_append: true };
}

/** Splits flat attributes into Insider's shape: defaults at the root, the rest under `custom`. */
export function toInsiderUser(email: string, flat: FlatAttributes): InsiderUser {
  const custom: Record<string, Scalar> = {};
  const attributes: InsiderUser['attributes'] = { email };
  let customCount = 0;
  for (const name in flat) {
    if (CUSTOM_ATTRIBUTE.has(name)) {
      custom[name] = flat[name]!;
      customCount++;
    } else attributes[name] = flat[name];
  }
  if (customCount > 0) attributes.custom = custom;
  return { identifiers: { email }, attributes, not_append: true };
}

/** The inverse of toInsiderUser, for the audit CSV of a user read back from a failed file. */
export function flattenAttributes(user: InsiderUser): FlatAttributes {
  const flat: FlatAttributes = {};
  for (const [name, value] of Object.entries(user.attributes)) {
    if (name === 'custom' || name === 'email') continue;
    flat[name] = value as Scalar;
  }
  Object.assign(flat, user.attributes.custom ?? {});
  return flat;
}

const COMPILED_PARAMS = EVENT_PARAMS.map((row: EventParamRow) => ({
  name: row.name,
  paths: splitPaths(row.paths),
  sharePaths: row.shareEventPaths ? splitPaths(row.shareEventPaths) : undefined,
  coerce: COERCE[row.type],
}));

/** MAPPING §5 event params, read from the payload's top level. */
export function mapEventParams(payload: unknown, isShareEvent: boolean, warnings: FieldWarnings): FlatAttributes {
  const params: FlatAttributes = {};
  for (const { name, paths, sharePaths, coerce } of COMPILED_PARAMS) {
    const result = coerce(firstPresent([payload], isShareEvent && sharePaths ? sharePaths : paths));
    if ('ok' in result) params[name] = result.ok;
    else if ('warning' in result) countWarning(warnings, warningKey(`event.${name}`, result.warning));
  }
  return params;
}
