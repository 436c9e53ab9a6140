// The replay ledger (SPEC §4): the keys of events Insider has confirmed, kept in the state file so
// that replaying the same file again sends no event twice. Insider itself has no event
// de-duplication, so this file is the only guard.

import { readJsonState, writeJsonState } from './checkpoint.js';

interface StateWithLedger {
  replay?: { delivered?: string[]; updated_at?: string };
  [section: string]: unknown;
}

export class Ledger {
  private readonly delivered: Set<string>;
  private dirty = false;
  private lastSave = 0;

  constructor(readonly path: string) {
    const state = readJsonState<StateWithLedger>(path);
    this.delivered = new Set(Array.isArray(state?.replay?.delivered) ? state.replay.delivered : []);
  }

  get size(): number {
    return this.delivered.size;
  }

  has(key: string): boolean {
    return this.delivered.has(key);
  }

  addAll(keys: readonly string[]): void {
    for (const key of keys) this.delivered.add(key);
    if (keys.length > 0) this.dirty = true;
    if (Date.now() - this.lastSave > 1000) this.save();
  }

  /** Writes the ledger into the state file, keeping the file's other sections. */
  save(): void {
    if (!this.dirty) return;
    const state = readJsonState<StateWithLedger>(this.path) ?? {};
    writeJsonState(this.path, { ...state, replay: { delivered: [...this.delivered], updated_at: new Date().toISOString() } });
    this.dirty = false;
    this.lastSave = Date.now();
  }
}
