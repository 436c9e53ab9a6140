// The one redaction point. Every line the CLI prints and every error text it writes to a file goes
// through redact(): credential values registered at start-up, and any `utoken=`/token value that a
// URL or response carries, are replaced before they can reach a terminal, a log or a file.

const secrets = new Set<string>();

/** Registers a credential so that its value never appears in output. Short values are ignored. */
export function registerSecret(value: string | undefined): void {
  // A 1–3 character "secret" would mask ordinary words; such a value is not a real credential.
  if (value && value.length >= 4) secrets.add(value);
}

const TOKEN_PATTERNS: readonly [RegExp, string][] = [
  [/(utoken=)[^&\s"'#]+/gi, '$1[REDACTED]'],
  [/(access_token=)[^&\s"'#]+/gi, '$1[REDACTED]'],
  [/("access_token"\s*:\s*")[^"]*/gi, '$1[REDACTED]'],
  [/("client_secret"\s*:\s*")[^"]*/gi, '$1[REDACTED]'],
  [/((?:x-api-key|x-request-token|x-guid)["']?\s*[:=]\s*["']?)[^"'\s,}]+/gi, '$1[REDACTED]'],
];

export function redact(text: string): string {
  let result = text;
  for (const secret of secrets) {
    if (result.includes(secret)) result = result.split(secret).join('[REDACTED]');
  }
  for (const [pattern, replacement] of TOKEN_PATTERNS) result = result.replace(pattern, replacement);
  return result;
}

