// A uniform sample of a stream of unknown length in fixed memory (Vitter's Algorithm R): after n
// offers, every item offered has had the same chance, size/n, of being in the sample. `verify`
// checks such a sample of each live run's confirmed users, and draws its --sample n from it.

/** A source of floats in [0, 1); injectable so that a sample can be reproduced from a seed. */
export type Random = () => number;

export interface ReservoirState<T> {
  /** How many items were offered so far. */
  seen: number;
  items: T[];
}

export class Reservoir<T> {
  private readonly kept: T[] = [];
  private offered = 0;

  constructor(
    readonly size: number,
    private readonly random: Random = Math.random,
  ) {
    if (!Number.isInteger(size) || size < 0) throw new RangeError(`reservoir size must be a whole number ≥ 0, not ${size}`);
  }

  /** Continues a sample saved with state(), e.g. by a resumed run. */
  static restore<T>(size: number, state: ReservoirState<T>, random: Random = Math.random): Reservoir<T> {
    if (state.items.length > size || state.items.length > state.seen) {
      throw new RangeError(`a saved sample of ${state.items.length} items cannot come from ${state.seen} offers into ${size} places`);
    }
    const reservoir = new Reservoir<T>(size, random);
    reservoir.kept.push(...state.items);
    reservoir.offered = state.seen;
    return reservoir;
  }

  offer(item: T): void {
    this.offered++;
    if (this.kept.length < this.size) {
      this.kept.push(item);
      return;
    }
    const slot = Math.floor(this.random() * this.offered);
    if (slot < this.size) this.kept[slot] = item;
  }

  get seen(): number {
    return this.offered;
  }

  /** The sample, in no particular order (a copy). */
  items(): T[] {
    return [...this.kept];
  }

  state(): ReservoirState<T> {
    return { seen: this.offered, items: this.items() };
  }
}
