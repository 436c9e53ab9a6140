/**
 * Insider upsert emulation: per-user validation the way Insider reports it
 * (research/insider.md §1.6, §2.1): errors keyed `users.<i>.<path>.<rule>` → [messages].
 */
import { hashString } from './prng.js';

export const EMAIL_RULE = '^.+@.+\\..+$';
const EMAIL_RE = /^.+@.+\..+$/;
export const EVENT_NAME_RULE = '^[a-z0-9][a-z0-9._-]*$';
const EVENT_NAME_RE = /^[a-z0-9][a-z0-9._-]*$/;
const RFC3339_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const IDENTIFIER_KEYS = new Set(['email', 'phone_number', 'uuid', 'custom']);
const DEFAULT_ATTR_TYPES: Record<string, 'string' | 'boolean' | 'number'> = {
  email: 'string',
  phone_number: 'string',
  uuid: 'string',
  name: 'string',
  surname: 'string',
  gender: 'string',
  language: 'string',
  country: 'string',
  city: 'string',
  lo: 'string',
  locale: 'string',
  age: 'number',
  email_optin: 'boolean',
  sms_optin: 'boolean',
  whatsapp_optin: 'boolean',
  gdpr_optin: 'boolean',
};

export const REJECTED_MESSAGE = 'sandbox rejected this user';

export function normaliseEmail(s: string): string {
  return s.trim().toLowerCase();
}

/**
 * Whether `rejectRate` rejects the user with this email. Depends only on the normalised email and
 * the rate, so the same users are rejected on every run (and a larger rate rejects a superset).
 */
export function isRejectedEmail(email: string, rejectRate: number): boolean {
  if (!(rejectRate > 0)) return false;
  return hashString(`reject:${normaliseEmail(email)}`) / 4294967296 < rejectRate;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

type Errors = Record<string, string[]>;

function add(errors: Errors, key: string, msg: string): void {
  (errors[key] ??= []).push(msg);
}

/** Flags nulls (and nested objects where Insider takes only scalars and arrays) under `prefix`. */
function checkValues(errors: Errors, prefix: string, obj: Record<string, unknown>, allowObjects: Set<string>): void {
  for (const [k, v] of Object.entries(obj)) {
    if (v === null || v === undefined) {
      add(errors, `${prefix}.${k}.not_null`, `${k} must not be null`);
    } else if (Array.isArray(v)) {
      if (v.some((x) => x === null || typeof x === 'object')) add(errors, `${prefix}.${k}.*.type`, `${k} must be an array of scalars`);
    } else if (typeof v === 'object' && !allowObjects.has(k)) {
      add(errors, `${prefix}.${k}.type`, `${k} must be a string, number, boolean or array`);
    }
  }
}

/**
 * Validates user number `i` of a request; adds its errors to `errors`. Returns true when the user
 * is accepted.
 */
export function validateUser(u: unknown, i: number, errors: Errors, rejectRate: number): boolean {
  const before = Object.keys(errors).length;
  const p = `users.${i}`;
  if (!isPlainObject(u)) {
    add(errors, `${p}.type(object)`, 'user must be an object');
    return false;
  }

  // identifiers
  const ids = u.identifiers;
  if (ids === undefined && u.insider_id === undefined) {
    add(errors, `${p}.identifiers.required`, 'either insider_id or idenifiers must be specified');
  } else if (ids !== undefined) {
    if (!isPlainObject(ids) || Object.keys(ids).length === 0) {
      add(errors, `${p}.identifiers.required`, 'either insider_id or idenifiers must be specified');
    } else {
      for (const k of Object.keys(ids)) {
        if (!IDENTIFIER_KEYS.has(k))
          add(errors, `${p}.identifiers.*.in(defaults_column)`, 'key must be one of phone_number(pn), email(em) or uuid');
      }
      if (ids.email !== undefined) {
        if (typeof ids.email !== 'string')
          add(errors, `${p}.identifiers.*.type(string)`, `email must be string: ${JSON.stringify(ids.email)}`);
        else if (!EMAIL_RE.test(ids.email))
          add(errors, `${p}.identifiers.*.regexp(${EMAIL_RULE})`, `not a valid email address: ${ids.email}`);
      }
      if (ids.uuid !== undefined && typeof ids.uuid !== 'string')
        add(errors, `${p}.identifiers.*.type(string)`, `uuid must be string: ${JSON.stringify(ids.uuid)}`);
    }
  }

  if (u.attributes === undefined && u.events === undefined) {
    add(errors, `${p}.attributes.required`, 'either attributes or events must be specified');
  }

  // attributes
  if (u.attributes !== undefined) {
    const a = u.attributes;
    if (!isPlainObject(a) || Object.keys(a).length === 0) {
      add(errors, `${p}.attributes.min(1)`, 'attributes must be a non-empty object');
    } else {
      checkValues(errors, `${p}.attributes`, a, new Set(['custom']));
      for (const [k, t] of Object.entries(DEFAULT_ATTR_TYPES)) {
        const v = a[k];
        if (v !== undefined && v !== null && typeof v !== t)
          add(errors, `${p}.attributes.${k}.type(${t})`, `${k} must be ${t}: ${JSON.stringify(v)}`);
      }
      if (a.birthday !== undefined && a.birthday !== null) {
        const b = a.birthday;
        if (typeof b !== 'string' || !b.endsWith('Z') || !RFC3339_RE.test(b) || Number.isNaN(Date.parse(b))) {
          add(errors, `${p}.attributes.birthday.type(date)`, `birthday must be an RFC 3339 date-time ending with Z: ${JSON.stringify(b)}`);
        }
      }
      if (a.custom !== undefined && a.custom !== null) {
        if (!isPlainObject(a.custom)) add(errors, `${p}.attributes.custom.type(object)`, 'custom must be an object');
        else checkValues(errors, `${p}.attributes.custom`, a.custom, new Set());
      }
    }
  }

  // events
  if (u.events !== undefined) {
    if (!Array.isArray(u.events)) {
      add(errors, `${p}.events.type(array)`, 'events must be an array');
    } else {
      u.events.forEach((ev: unknown, j: number) => {
        const q = `${p}.events.${j}`;
        if (!isPlainObject(ev)) {
          add(errors, `${q}.type(object)`, 'event must be an object');
          return;
        }
        if (ev.event_name === undefined || ev.event_name === null || ev.event_name === '') {
          add(errors, `${q}.event_name.required`, 'event_name is required');
        } else if (typeof ev.event_name !== 'string' || !EVENT_NAME_RE.test(ev.event_name)) {
          add(errors, `${q}.event_name.*.regexp(${EVENT_NAME_RULE})`, `invalid event name: ${String(ev.event_name)}`);
        }
        if (ev.timestamp === undefined || ev.timestamp === null || ev.timestamp === '') {
          add(errors, `${q}.timestamp.required`, 'timestamp is required');
        } else if (typeof ev.timestamp !== 'string' || !RFC3339_RE.test(ev.timestamp) || Number.isNaN(Date.parse(ev.timestamp))) {
          add(errors, `${q}.timestamp.type(date)`, `timestamp must be an RFC 3339 date-time: ${JSON.stringify(ev.timestamp)}`);
        }
        if (ev.event_params !== undefined) {
          if (!isPlainObject(ev.event_params)) {
            add(errors, `${q}.event_params.type(object)`, 'event_params must be an object');
          } else {
            checkValues(errors, `${q}.event_params`, ev.event_params, new Set(['custom']));
            const custom = ev.event_params.custom;
            if (custom !== undefined && custom !== null) {
              if (!isPlainObject(custom)) add(errors, `${q}.event_params.custom.type(object)`, 'custom must be an object');
              else checkValues(errors, `${q}.event_params.custom`, custom, new Set());
            }
          }
        }
      });
    }
  }

  if (Object.keys(errors).length > before) return false;

  const email = isPlainObject(ids) && typeof ids.email === 'string' ? ids.email : undefined;
  if (email !== undefined && isRejectedEmail(email, rejectRate)) {
    add(errors, `${p}.attributes.custom.*.type`, REJECTED_MESSAGE);
    return false;
  }
  return true;
}
