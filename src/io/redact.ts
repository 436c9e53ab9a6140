// The one redaction point. Every line the CLI prints and every error text it writes to a file goes
// through redact(): credential values registered at start-up, and any `utoken=`/token value that a
// URL, a header dump or a response carries, are replaced before they can reach a terminal, a log or
// a file. The Insider partner name is an identifier, not a secret: it is never registered, and shown.

const secrets = new Set<string>();
let secretPattern: RegExp | undefined;

const escapeForRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** `"` → `\"`, `\` → `\\`, control characters escaped: the value as it sits inside a JSON string. */
const jsonEscaped = (text: string) => JSON.stringify(text).slice(1, -1);

/** The JSON form that serialisers with ASCII-only output write (`é` → `\u00e9`). */
const jsonAsciiEscaped = (text: string) =>
  jsonEscaped(text).replace(/[\u007f-\uffff]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);

function urlEncodings(text: string): string[] {
  try {
    return [
      encodeURIComponent(text),
      encodeURI(text),
      // application/x-www-form-urlencoded (URLSearchParams): spaces as `+`.
      new URLSearchParams({ v: text }).toString().slice(2),
    ];
  } catch {
    return []; // a lone surrogate has no URL form
  }
}

/**
 * Every form in which a secret can appear in a message: raw; inside a JSON string (escaped, with
 * `\/`, ASCII-only, and a JSON string inside a JSON string); URL-encoded (a query, a form body).
 */
export function secretForms(value: string): string[] {
  const json = jsonEscaped(value);
  const forms = [value, json, json.replace(/\//g, '\\/'), jsonAsciiEscaped(value), jsonEscaped(json), ...urlEncodings(value)];
  return [...new Set(forms)];
}

/**
 * Registers a credential so that its value never appears in output, in any of its forms and in
 * any letter case. Values under 4 characters are ignored: they would mask ordinary words; a value
 * under 8 characters is masked only as a whole word, a longer one (a real key) wherever it appears.
 */
export function registerSecret(value: string | undefined): void {
  if (!value || value.length < 4 || secrets.has(value)) return;
  secrets.add(value);
  const longForms = new Set<string>();
  const shortForms = new Set<string>();
  for (const secret of secrets) for (const form of secretForms(secret)) (secret.length >= 8 ? longForms : shortForms).add(form);
  const alternatives = (forms: Set<string>) =>
    [...forms]
      .sort((a, b) => b.length - a.length)
      .map(escapeForRegExp)
      .join('|');
  const parts: string[] = [];
  if (longForms.size > 0) parts.push(`(?:${alternatives(longForms)})`);
  if (shortForms.size > 0) parts.push(`(?<![A-Za-z0-9])(?:${alternatives(shortForms)})(?![A-Za-z0-9])`);
  secretPattern = new RegExp(parts.join('|'), 'giu');
}

const TOKEN_PATTERNS: readonly [RegExp, string][] = [
  [/(utoken=)[^&\s"'#]+/gi, '$1[REDACTED]'],
  [/(access_token=)[^&\s"'#]+/gi, '$1[REDACTED]'],
  [/([?&]token=)[^&\s"'#]+/gi, '$1[REDACTED]'],
  [/("access_token"\s*:\s*")[^"]*/gi, '$1[REDACTED]'],
  [/("client_secret"\s*:\s*")[^"]*/gi, '$1[REDACTED]'],
  [/((?:x-api-key|x-request-token|x-guid|x-webhook-token|x-yotpo-token)["']?\s*[:=]\s*["']?)[^"'\s,}]+/gi, '$1[REDACTED]'],
  [/(authorization["']?\s*[:=]\s*["']?(?:(?:bearer|basic|token)\s+)?)[^"'\s,}]+/gi, '$1[REDACTED]'],
];

export function redact(text: string): string {
  let result = secretPattern ? text.replace(secretPattern, '[REDACTED]') : text;
  for (const [pattern, replacement] of TOKEN_PATTERNS) result = result.replace(pattern, replacement);
  return result;
}
