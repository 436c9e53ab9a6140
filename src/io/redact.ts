// The one redaction point. Every line the CLI prints and every error text it writes to a file goes
// through redact(): credential values registered at start-up, and any `utoken=`/token value that a
// URL or response carries, are replaced before they can reach a terminal, a log or a file.

const secrets = new Set<string>();
let secretPattern: RegExp | undefined;

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Registers a credential so that its value never appears in output, in any letter case. Short
 * values are ignored: a 1–3 character "secret" would mask ordinary words.
 */
export function registerSecret(value: string | undefined): void {
  if (!value || value.length < 4 || secrets.has(value)) return;
  secrets.add(value);
  // Whole values only (not inside a longer word), so that a partner name that is an ordinary word
  // ("partner") does not garble "x-partner-name".
  const alternatives = [...secrets].sort((a, b) => b.length - a.length).map(escape).join('|');
  secretPattern = new RegExp(`(?<![A-Za-z0-9])(?:${alternatives})(?![A-Za-z0-9])`, 'gi');
}

const TOKEN_PATTERNS: readonly [RegExp, string][] = [
  [/(utoken=)[^&\s"'#]+/gi, '$1[REDACTED]'],
  [/(access_token=)[^&\s"'#]+/gi, '$1[REDACTED]'],
  [/("access_token"\s*:\s*")[^"]*/gi, '$1[REDACTED]'],
  [/("client_secret"\s*:\s*")[^"]*/gi, '$1[REDACTED]'],
  [/((?:x-api-key|x-request-token|x-guid|x-partner-name)["']?\s*[:=]\s*["']?)[^"'\s,}]+/gi, '$1[REDACTED]'],
];

export function redact(text: string): string {
  let result = secretPattern ? text.replace(secretPattern, '[REDACTED]') : text;
  for (const [pattern, replacement] of TOKEN_PATTERNS) result = result.replace(pattern, replacement);
  return result;
}

