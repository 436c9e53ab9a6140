// Reads the account's panel schema from Insider's metadata endpoint (SPEC §3). The endpoint is
// undocumented: anything but the expected answer means "schema check unavailable", never a
// failure of the run. Rejected credentials and redirects still stop (they would stop the upload too).

import { UnavailableError } from '../errors.js';
import type { ApiClient, ApiResponse } from '../io/http.js';
import { redact } from '../io/redact.js';
import type { PanelSchema } from '../core/schema.js';
import { InsiderCredentialError } from './upload.js';

export const METADATA_PATH = '/api/user/v3/metadata/columns';

const CUSTOM_PREFIX = 'c_';

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The column list, bare or under one wrapping key (`data`, `columns`, …). */
function columnsOf(body: unknown): unknown[] | undefined {
  if (Array.isArray(body)) return body;
  if (isObject(body)) {
    const lists = Object.values(body).filter(Array.isArray);
    if (lists.length === 1) return lists[0];
  }
  return undefined;
}

function nameOf(entry: unknown): string | undefined {
  if (typeof entry === 'string') return entry;
  if (!isObject(entry)) return undefined;
  const key = entry.key ?? entry.name ?? entry.system_name;
  return typeof key === 'string' ? key : undefined;
}

function typeOf(entry: unknown): string {
  return isObject(entry) && typeof entry.type === 'string' ? entry.type : 'unknown';
}

const strip = (name: string) => (name.startsWith(CUSTOM_PREFIX) ? name.slice(CUSTOM_PREFIX.length) : name);

async function readTable(client: ApiClient, table: 'contacts' | 'events'): Promise<unknown[] | string> {
  let response: ApiResponse;
  try {
    response = await client.request({ method: 'POST', path: METADATA_PATH, json: { table }, passStatuses: [400, 404, 405, 410, 422] });
  } catch (error) {
    if (error instanceof UnavailableError) return `the metadata endpoint did not answer (${redact(error.message)})`;
    throw error;
  }
  if (response.status === 400) {
    const body = response.body;
    const said = isObject(body) && typeof (body.message ?? body.error) === 'string' ? String(body.message ?? body.error) : '';
    if (/access denied|partner|token/i.test(said)) throw new InsiderCredentialError(400, said);
  }
  if (response.status !== 200) return `the metadata endpoint answered HTTP ${response.status}`;
  return columnsOf(response.body) ?? 'the metadata endpoint answered something other than a column list';
}

/** The panel's custom attributes and events with their parameters, or why the check cannot run. */
export async function readPanelSchema(client: ApiClient): Promise<PanelSchema | { unavailable: string }> {
  const contacts = await readTable(client, 'contacts');
  if (typeof contacts === 'string') return { unavailable: contacts };
  const events = await readTable(client, 'events');
  if (typeof events === 'string') return { unavailable: events };

  const schema: PanelSchema = { attributes: {}, events: {} };
  for (const entry of contacts) {
    const key = nameOf(entry);
    // Only custom attributes carry the prefix; default ones (email, name …) are not the mapping's concern.
    if (key?.startsWith(CUSTOM_PREFIX)) schema.attributes[strip(key)] = typeOf(entry);
  }
  for (const entry of events) {
    const key = nameOf(entry);
    if (key === undefined) continue;
    const params: Record<string, string> = {};
    const list = isObject(entry) && Array.isArray(entry.params) ? entry.params : [];
    for (const param of list) {
      const name = nameOf(param);
      if (name !== undefined) params[strip(name)] = typeOf(param);
    }
    schema.events[key] = params;
  }
  if (contacts.length > 0 && Object.keys(schema.attributes).length === 0 && contacts.every((entry) => nameOf(entry) === undefined)) {
    return { unavailable: 'the metadata endpoint answered columns without names' };
  }
  return schema;
}
