// Insider's upsert contract (SPEC §3): the request, and what its 200 body says about each user.
// Insider answers 200 even when some users fail; the failures sit in `fail.errors`, keyed
// `users.<index>.<path>.<rule>`, and must be mapped back to the users sent.

export const UPSERT_PATH = '/api/user/v1/upsert';

export interface UpsertReading {
  /** False when the body has no `data` object: nothing can be said of any user. */
  readable: boolean;
  succeeded: number;
  failed: number;
  /** Messages per failed user, by index in the request's `users` array. */
  errorsByIndex: Map<number, string[]>;
}

function countOf(part: unknown): number {
  const count = part && typeof part === 'object' ? (part as { count?: unknown }).count : undefined;
  return typeof count === 'number' && Number.isFinite(count) ? count : 0;
}

/** Reads a 200 body; `successful` / `fail` may be `{}` (count 0). */
export function readUpsertResponse(body: unknown, userCount: number): UpsertReading {
  const data = body && typeof body === 'object' ? (body as { data?: unknown }).data : undefined;
  const { successful, fail } = (data && typeof data === 'object' ? data : {}) as { successful?: unknown; fail?: unknown };
  const errors = fail && typeof fail === 'object' ? (fail as { errors?: unknown }).errors : undefined;
  const errorsByIndex = new Map<number, string[]>();
  if (errors && typeof errors === 'object') {
    for (const [key, value] of Object.entries(errors as Record<string, unknown>)) {
      const match = /^users\.(\d+)(?:\.(.*))?$/.exec(key);
      const messages = Array.isArray(value) ? value.map(String) : [String(value)];
      const index = match ? Number(match[1]) : NaN;
      if (!(index >= 0 && index < userCount)) continue;
      const list = errorsByIndex.get(index) ?? [];
      list.push(...messages.map((m) => (match?.[2] ? `${match[2]}: ${m}` : m)));
      errorsByIndex.set(index, list);
    }
  }
  return { readable: !!data && typeof data === 'object', succeeded: countOf(successful), failed: countOf(fail), errorsByIndex };
}
