// Compact, typed-array structures for the per-reviewer state of a backfill. A JS Map of a million
// email strings costs hundreds of megabytes of heap; these cost tens, outside the garbage-collected
// heap: emails live as UTF-8 bytes in one growing buffer, indexed by an open-addressing hash table.

/** FNV-1a over UTF-16 code units, 32 bits. */
function hashString(text: string, seed = 0x811c9dc5): number {
  let hash = seed;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

export function grown<T extends Uint8Array | Int32Array | Uint32Array | Float64Array>(old: T, size: number): T {
  const next = new (old.constructor as new (n: number) => T)(size);
  next.set(old.subarray(0, Math.min(old.length, size)));
  return next;
}

/** Strings → dense row numbers (0, 1, 2, … in insertion order), and back. */
export class StringIndex {
  private bytes = new Uint8Array(1 << 16);
  private used = 0;
  /** Row → start offset in `bytes`; row r ends where row r + 1 starts. */
  private starts = new Uint32Array(1 << 10);
  /** Row → a second hash, checked before any byte comparison. */
  private checks = new Uint32Array(1 << 10);
  /** Open addressing: slot → row + 1 (0 = empty). Kept at most half full. */
  private slots = new Int32Array(1 << 11);
  size = 0;

  private encode(text: string): Uint8Array {
    return Buffer.from(text, 'utf8');
  }

  private equals(row: number, encoded: Uint8Array): boolean {
    const start = this.starts[row]!;
    const end = row + 1 < this.size ? this.starts[row + 1]! : this.used;
    if (end - start !== encoded.length) return false;
    for (let i = 0; i < encoded.length; i++) if (this.bytes[start + i] !== encoded[i]) return false;
    return true;
  }

  /** The row of `text`, or -1. */
  find(text: string): number {
    return this.probe(text, hashString(text), hashString(text, 0x9747b28c), undefined);
  }

  /** The row of `text`, added if new. */
  intern(text: string): number {
    const hash = hashString(text);
    const check = hashString(text, 0x9747b28c);
    const found = this.probe(text, hash, check, undefined);
    if (found >= 0) return found;
    if ((this.size + 1) * 2 > this.slots.length) this.rehash(this.slots.length * 2);
    const encoded = this.encode(text);
    if (this.used + encoded.length > this.bytes.length) {
      this.bytes = grown(this.bytes, Math.max(Math.ceil(this.bytes.length * 1.5), this.used + encoded.length));
    }
    if (this.size >= this.starts.length) {
      this.starts = grown(this.starts, this.starts.length * 2);
      this.checks = grown(this.checks, this.checks.length * 2);
    }
    const row = this.size++;
    this.bytes.set(encoded, this.used);
    this.starts[row] = this.used;
    this.checks[row] = check;
    this.used += encoded.length;
    this.probe(text, hash, check, row);
    return row;
  }

  /** Finds `text`; with `insertRow`, claims the first empty slot for it instead. */
  private probe(text: string, hash: number, check: number, insertRow: number | undefined): number {
    const mask = this.slots.length - 1;
    let encoded: Uint8Array | undefined;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const entry = this.slots[slot]!;
      if (entry === 0) {
        if (insertRow !== undefined) this.slots[slot] = insertRow + 1;
        return -1;
      }
      const row = entry - 1;
      if (insertRow === undefined && this.checks[row] === check) {
        encoded ??= this.encode(text);
        if (this.equals(row, encoded)) return row;
      }
    }
  }

  private rehash(capacity: number): void {
    this.slots = new Int32Array(capacity);
    const mask = capacity - 1;
    for (let row = 0; row < this.size; row++) {
      let slot = hashString(this.get(row)) & mask;
      while (this.slots[slot] !== 0) slot = (slot + 1) & mask;
      this.slots[slot] = row + 1;
    }
  }

  get(row: number): string {
    const end = row + 1 < this.size ? this.starts[row + 1]! : this.used;
    return Buffer.from(this.bytes.buffer, this.bytes.byteOffset + this.starts[row]!, end - this.starts[row]!).toString('utf8');
  }
}

/**
 * A set of review ids. Ids that fit 32 bits (Yotpo's do) sit in a typed-array hash set, stored
 * as id + 1 so that 0 marks an empty slot; anything else goes to a plain Set.
 */
export class IdSet {
  private slots = new Uint32Array(1 << 12);
  private count = 0;
  private readonly others = new Set<string>();

  /** Adds `id`; false when it was already there. */
  add(id: number | string): boolean {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= 0xffffffff) {
      const key = typeof id === 'number' ? `n${id}` : `s${id}`;
      if (this.others.has(key)) return false;
      this.others.add(key);
      return true;
    }
    if ((this.count + 1) * 2 > this.slots.length) this.rehash();
    if (!IdSet.insert(this.slots, id + 1)) return false;
    this.count++;
    return true;
  }

  private static insert(slots: Uint32Array, stored: number): boolean {
    const mask = slots.length - 1;
    // Mix the bits first: ids are often sequential.
    for (let slot = (Math.imul(stored, 0x9e3779b1) >>> 0) & mask; ; slot = (slot + 1) & mask) {
      const value = slots[slot]!;
      if (value === 0) {
        slots[slot] = stored;
        return true;
      }
      if (value === stored) return false;
    }
  }

  private rehash(): void {
    const old = this.slots;
    this.slots = new Uint32Array(old.length * 2);
    for (const value of old) if (value !== 0) IdSet.insert(this.slots, value);
  }
}

/** Counts per (row, small id) pair, as linked entries in typed arrays. */
export class PairCounts {
  private heads = new Int32Array(1 << 10).fill(-1);
  /** Entry → [id, count, next entry]. */
  private entries = new Int32Array(3 << 10);
  private used = 0;

  add(row: number, id: number): void {
    if (row >= this.heads.length) {
      const old = this.heads;
      this.heads = new Int32Array(Math.max(old.length * 2, row + 1)).fill(-1);
      this.heads.set(old);
    }
    for (let entry = this.heads[row]!; entry >= 0; entry = this.entries[entry * 3 + 2]!) {
      if (this.entries[entry * 3] === id) {
        this.entries[entry * 3 + 1]!++;
        return;
      }
    }
    if ((this.used + 1) * 3 > this.entries.length) this.entries = grown(this.entries, this.entries.length * 2);
    const entry = this.used++;
    this.entries[entry * 3] = id;
    this.entries[entry * 3 + 1] = 1;
    this.entries[entry * 3 + 2] = this.heads[row]!;
    this.heads[row] = entry;
  }

  /** [id, count] pairs of a row (empty when none). */
  of(row: number): [number, number][] {
    const pairs: [number, number][] = [];
    if (row >= this.heads.length) return pairs;
    for (let entry = this.heads[row]!; entry >= 0; entry = this.entries[entry * 3 + 2]!) {
      pairs.push([this.entries[entry * 3]!, this.entries[entry * 3 + 1]!]);
    }
    return pairs;
  }
}
