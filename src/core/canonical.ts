// Lossless, bounded JSON for replay lines (MAPPING §5 "Event identity", "Numbers"): integers beyond
// 2^53 kept digit for digit, number literals too large for a double kept as written, text the line
// reader could not decode marked, nesting bounded; and the canonical text an event key hashes.
//
// Most lines hold none of these: a scan of the text finds out, and JSON.parse (native, fast) does
// the work. Only a line with a hazard is parsed again by the parser below, after JSON.parse has
// validated it, so that parser only ever sees valid JSON at most MAX_DEPTH levels deep.

/** SPEC §4: a line nested more than this many levels is rejected `too deeply nested`. */
export const MAX_DEPTH = 64;

/** A number literal a double cannot hold (`1e400`): never a number, never null. */
export class NonFiniteNumber {
  constructor(readonly literal: string) {}
}

/**
 * A string holding U+FFFD that was not written as an escape: the line reader replaced bytes that
 * were not UTF-8, so the text is not what Yotpo sent.
 */
export class InvalidUtf8Text {
  constructor(readonly text: string) {}
}

export type JsonValue =
  | null
  | boolean
  | number
  /** An integer literal beyond Number.MAX_SAFE_INTEGER. */
  | bigint
  | string
  | NonFiniteNumber
  | InvalidUtf8Text
  | JsonValue[]
  | { [key: string]: JsonValue };

export type LosslessParse = { ok: true; value: JsonValue } | { ok: false; reason: 'invalid json' | 'too deeply nested'; detail: string };

const REPLACEMENT_CHARACTER = 0xfffd;

/** What a scan of the text found that JSON.parse would lose. */
interface Hazards {
  /** Where the nesting first went beyond the bound (0-based character offset). */
  tooDeepAt?: number;
  lossy: boolean;
}

const isNumberStart = (code: number) => code === 45 /* - */ || (code >= 48 && code <= 57);

function isNumberChar(code: number): boolean {
  // 0-9 + - . e E
  return (code >= 48 && code <= 57) || code === 43 || code === 45 || code === 46 || code === 101 || code === 69;
}

/** True when JSON.parse would not keep this number literal exactly (or at all). */
function isLossyNumber(literal: string): boolean {
  const value = Number(literal);
  if (!Number.isFinite(value)) return literal.length > 0 && /[0-9]/.test(literal);
  return /^-?\d+$/.test(literal) && !Number.isSafeInteger(value);
}

/** One pass over the text: nesting depth outside strings, lossy numbers, raw U+FFFD inside strings. */
function scan(text: string, maxDepth: number): Hazards {
  let depth = 0;
  let lossy = false;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (inString) {
      if (code === 92 /* \ */) i++;
      else if (code === 34 /* " */) inString = false;
      else if (code === REPLACEMENT_CHARACTER) lossy = true;
      continue;
    }
    if (code === 34) inString = true;
    else if (code === 123 /* { */ || code === 91 /* [ */) {
      if (++depth > maxDepth) return { tooDeepAt: i, lossy };
    } else if (code === 125 /* } */ || code === 93 /* ] */) depth--;
    else if (isNumberStart(code)) {
      let end = i + 1;
      while (end < text.length && isNumberChar(text.charCodeAt(end))) end++;
      // Only long literals can lose anything: 2^53 has 16 digits, and a double's exponent tops out near 1e308.
      if (end - i > 15 || /[eE]/.test(text.slice(i, end))) lossy ||= isLossyNumber(text.slice(i, end));
      i = end - 1;
    }
  }
  return { lossy };
}

/**
 * Parses one JSON text (a replay line, or an envelope body saved as a string) keeping what JSON.parse
 * would lose. A text nested deeper than maxDepth is refused before anything is built.
 */
export function parseJsonLossless(text: string, maxDepth: number = MAX_DEPTH): LosslessParse {
  const hazards = scan(text, maxDepth);
  if (hazards.tooDeepAt !== undefined) {
    return {
      ok: false,
      reason: 'too deeply nested',
      detail: `nested more than ${maxDepth} levels (at character ${hazards.tooDeepAt + 1})`,
    };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, reason: 'invalid json', detail: (error as Error).message };
  }
  if (!hazards.lossy) return { ok: true, value: value as JsonValue };
  return { ok: true, value: new ValidJsonReader(text).read() };
}

/** Parses text that JSON.parse has accepted and scan() has bounded, so it checks no syntax. */
class ValidJsonReader {
  private at = 0;

  constructor(private readonly text: string) {}

  read(): JsonValue {
    return this.value(0);
  }

  private skipSpace(): void {
    const { text } = this;
    while (this.at < text.length) {
      const code = text.charCodeAt(this.at);
      if (code !== 32 && code !== 9 && code !== 10 && code !== 13) return;
      this.at++;
    }
  }

  // Recursion is bounded: scan() refused anything deeper than MAX_DEPTH.
  private value(depth: number): JsonValue {
    this.skipSpace();
    const code = this.text.charCodeAt(this.at);
    if (code === 123) return this.object(depth + 1);
    if (code === 91) return this.array(depth + 1);
    if (code === 34) return this.string();
    if (code === 116) return this.literal('true', true);
    if (code === 102) return this.literal('false', false);
    if (code === 110) return this.literal('null', null);
    return this.number();
  }

  private literal<T extends JsonValue>(word: string, value: T): T {
    this.at += word.length;
    return value;
  }

  private object(depth: number): JsonValue {
    const object: { [key: string]: JsonValue } = {};
    this.at++; // {
    this.skipSpace();
    if (this.text.charCodeAt(this.at) === 125) {
      this.at++;
      return object;
    }
    for (;;) {
      this.skipSpace();
      const key = this.rawString();
      this.skipSpace();
      this.at++; // :
      const item = this.value(depth);
      // Like JSON.parse: "__proto__" is an own key, never the prototype.
      Object.defineProperty(object, key, { value: item, enumerable: true, writable: true, configurable: true });
      this.skipSpace();
      if (this.text.charCodeAt(this.at++) === 125) return object;
    }
  }

  private array(depth: number): JsonValue {
    const array: JsonValue[] = [];
    this.at++; // [
    this.skipSpace();
    if (this.text.charCodeAt(this.at) === 93) {
      this.at++;
      return array;
    }
    for (;;) {
      array.push(this.value(depth));
      this.skipSpace();
      if (this.text.charCodeAt(this.at++) === 93) return array;
    }
  }

  /** A key: its text as read (a key is never sent, so undecodable bytes in it change nothing). */
  private rawString(): string {
    return this.stringParts().text;
  }

  private string(): string | InvalidUtf8Text {
    const { text, replaced } = this.stringParts();
    return replaced ? new InvalidUtf8Text(text) : text;
  }

  private stringParts(): { text: string; replaced: boolean } {
    const { text } = this;
    const start = ++this.at; // after the opening quote
    let end = start;
    let escaped = false;
    let replaced = false;
    for (; ; end++) {
      const code = text.charCodeAt(end);
      if (code === 34) break;
      if (code === 92) {
        escaped = true;
        end++;
      } else if (code === REPLACEMENT_CHARACTER) replaced = true;
    }
    this.at = end + 1;
    const literal = text.slice(start - 1, end + 1);
    // An escape-free string is its own text; one with escapes is decoded by JSON.parse (validated already).
    return { text: escaped ? (JSON.parse(literal) as string) : literal.slice(1, -1), replaced };
  }

  private number(): JsonValue {
    const start = this.at;
    while (this.at < this.text.length && isNumberChar(this.text.charCodeAt(this.at))) this.at++;
    const literal = this.text.slice(start, this.at);
    const value = Number(literal);
    if (!Number.isFinite(value)) return new NonFiniteNumber(literal);
    if (!Number.isSafeInteger(value) && /^-?\d+$/.test(literal)) return BigInt(literal);
    return value;
  }
}

/**
 * The canonical text of a value (MAPPING §5): object keys sorted, no whitespace, integers beyond 2^53
 * with every digit, a non-finite literal as written. Values JSON.parse can hold exactly come out as
 * JSON.stringify writes them, so a key stays the same whichever path parsed the line.
 */
export function canonicalJson(value: unknown): string {
  const parts: string[] = [];
  write(value, parts, 0);
  return parts.join('');
}

function write(value: unknown, parts: string[], depth: number): void {
  if (depth > MAX_DEPTH) throw new RangeError(`a value nested more than ${MAX_DEPTH} levels has no canonical form here`);
  if (value === null || value === undefined) parts.push('null');
  else if (typeof value === 'string') parts.push(JSON.stringify(value));
  else if (typeof value === 'number') parts.push(Number.isFinite(value) ? JSON.stringify(value) : 'null');
  else if (typeof value === 'bigint') parts.push(value.toString());
  else if (typeof value === 'boolean') parts.push(value ? 'true' : 'false');
  else if (value instanceof NonFiniteNumber) parts.push(value.literal);
  else if (value instanceof InvalidUtf8Text) parts.push(JSON.stringify(value.text));
  else if (Array.isArray(value)) {
    parts.push('[');
    value.forEach((item, index) => {
      if (index > 0) parts.push(',');
      write(item, parts, depth + 1);
    });
    parts.push(']');
  } else if (typeof value === 'object') {
    const object = value as Record<string, unknown>;
    parts.push('{');
    let first = true;
    for (const key of Object.keys(object).sort()) {
      if (object[key] === undefined) continue;
      if (!first) parts.push(',');
      first = false;
      parts.push(JSON.stringify(key), ':');
      write(object[key], parts, depth + 1);
    }
    parts.push('}');
  } else parts.push('null');
}
