/**
 * Small deterministic pseudo-random helpers for the sandbox. Never Math.random: every generated
 * record and every injected fault must be reproducible from the seed.
 */

/** A random source returning floats in [0, 1). */
export type Rng = () => number;

/** mulberry32: tiny, fast, good enough for test data. */
export function mulberry32(state: number): Rng {
  let a = state | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** murmur3's 32-bit finaliser. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Combines integers into one well-mixed unsigned 32-bit hash. */
export function mix32(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h = fmix32((h ^ Math.imul((p | 0) ^ Math.floor(p / 4294967296), 0xcc9e2d51)) + 0x6b43a9b5);
  }
  return h;
}

/** FNV-1a over the UTF-16 code units of a string, finalised. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

/** Stream identifiers, so that e.g. customer 5 and review 5 do not share random numbers. */
export const STREAM = {
  customer: 0x0c05,
  review: 0x0e71,
  reviewMeta: 0x0e72,
  faults: 0xfa17,
  cursor: 0xc0c5,
} as const;

/** The random source for one record: a pure function of (seed, stream, index). */
export function rngFor(seed: number, stream: number, index: number): Rng {
  return mulberry32(mix32(seed, stream, index));
}

/** Integer in [min, max] inclusive. */
export function int(r: Rng, min: number, max: number): number {
  return min + Math.floor(r() * (max - min + 1));
}

/** One element of a non-empty array. */
export function pick<T>(r: Rng, items: readonly T[]): T {
  return items[Math.floor(r() * items.length)] as T;
}

/** true with probability p. */
export function chance(r: Rng, p: number): boolean {
  return r() < p;
}
