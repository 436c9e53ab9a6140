// The replay ledger (SPEC §4): the keys of events Insider has confirmed, so that replaying the same
// file again sends no event twice. Insider itself has no event de-duplication, so this is the only
// guard. The keys are appended to a text file beside the state file as batches are confirmed (one
// short write per batch, whatever the ledger's size); the state file names it and counts its keys.

import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { readLines } from '../io/lines.js';
import { readJsonState, writeJsonState } from './checkpoint.js';
import { assertWritable } from '../io/files.js';
import type { Outcome } from './uploader.js';

interface StateWithLedger {
  replay?: {
    ledger_file?: string;
    events_delivered?: number;
    uncertain_file?: string;
    events_uncertain?: number;
    updated_at?: string;
    /** Earlier versions kept the keys in the state file itself; read, and moved to the key file. */
    delivered?: unknown;
  };
  [section: string]: unknown;
}

export class Ledger {
  private dirty = false;

  private constructor(
    /** The state file. */
    readonly path: string,
    /** The key file beside it: one delivered event key per line. */
    readonly keysPath: string,
    private readonly delivered: Set<string>,
    /** Keys of events Insider may or may not hold (it counted a failure without naming the user). */
    readonly uncertainPath: string,
    private readonly uncertain: Set<string>,
  ) {}

  /** `forWriting`: a live run, which records keys (a dry run only reads them). */
  static async open(statePath: string, { forWriting }: { forWriting: boolean }): Promise<Ledger> {
    // A state file that cannot be read stops here, not at the end.
    const state = readJsonState<StateWithLedger>(statePath);
    const keysPath = `${statePath}.ledger.txt`;
    if (forWriting) {
      assertWritable(statePath, 'the state file');
      assertWritable(keysPath, 'the replay ledger');
    }
    const uncertainPath = `${statePath}.uncertain.txt`;
    if (forWriting) assertWritable(uncertainPath, 'the list of uncertain events');
    const delivered = await readKeys(keysPath, forWriting);
    const uncertain = await readKeys(uncertainPath, forWriting);
    const ledger = new Ledger(statePath, keysPath, delivered, uncertainPath, uncertain);
    const legacy = state?.replay?.delivered;
    if (Array.isArray(legacy)) {
      const keys = legacy.filter((key): key is string => typeof key === 'string');
      if (forWriting) {
        ledger.addAll(keys);
        ledger.dirty = true; // rewrites the section without the old array
        ledger.save();
      } else {
        for (const key of keys) delivered.add(key);
      }
    }
    return ledger;
  }

  get size(): number {
    return this.delivered.size;
  }

  has(key: string): boolean {
    return this.delivered.has(key);
  }

  /** Not known delivered, but perhaps in Insider: sent again only when the operator forces it. */
  isUncertain(key: string): boolean {
    return this.uncertain.has(key) && !this.delivered.has(key);
  }

  /** Records keys whose delivery Insider left uncertain; written before returning. */
  addUncertain(keys: readonly string[]): void {
    const added = keys.filter((key) => !this.uncertain.has(key) && !this.delivered.has(key));
    if (added.length === 0) return;
    mkdirSync(dirname(this.uncertainPath), { recursive: true });
    appendFileSync(this.uncertainPath, `${added.join('\n')}\n`, { mode: 0o600 });
    for (const key of added) this.uncertain.add(key);
    this.dirty = true;
  }

  /** Records keys Insider confirmed; written before returning, so an interrupt cannot lose them. */
  addAll(keys: readonly string[]): void {
    const added = keys.filter((key) => !this.delivered.has(key));
    if (added.length === 0) return;
    mkdirSync(dirname(this.keysPath), { recursive: true });
    appendFileSync(this.keysPath, `${added.join('\n')}\n`, { mode: 0o600 });
    for (const key of added) this.delivered.add(key); // only once on disk
    this.dirty = true;
  }

  /** Records what Insider's answer says of these events: delivered, or perhaps delivered. */
  record(keys: readonly string[], outcome: Outcome): void {
    if (outcome.status === 'succeeded') this.addAll(keys);
    else if (outcome.status === 'failed' && outcome.uncertain) this.addUncertain(keys);
  }

  /** The end of a run: the state file names and counts the key files (see `save`). */
  async close(): Promise<void> {
    this.save();
  }

  /** Names the key file in the state file, keeping the file's other sections. */
  save(): void {
    if (!this.dirty) return;
    const state = readJsonState<StateWithLedger>(this.path) ?? {};
    const uncertain = [...this.uncertain].filter((key) => !this.delivered.has(key)).length;
    const replay = {
      ledger_file: basename(this.keysPath),
      events_delivered: this.delivered.size,
      ...(uncertain > 0 ? { uncertain_file: basename(this.uncertainPath), events_uncertain: uncertain } : {}),
      updated_at: new Date().toISOString(),
    };
    writeJsonState(this.path, { ...state, replay });
    this.dirty = false;
  }
}

/** One key per line; on a live run a partial last line (a crash mid-write) is ended first. */
async function readKeys(path: string, forWriting: boolean): Promise<Set<string>> {
  const keys = new Set<string>();
  if (!existsSync(path)) return keys;
  for await (const { text } of readLines(path)) if (text) keys.add(text);
  if (forWriting && !endsWithNewline(path)) appendFileSync(path, '\n');
  return keys;
}

function endsWithNewline(path: string): boolean {
  const size = statSync(path).size;
  if (size === 0) return true;
  const fd = openSync(path, 'r');
  try {
    const last = Buffer.alloc(1);
    readSync(fd, last, 0, 1, size - 1);
    return last[0] === 0x0a;
  } finally {
    closeSync(fd);
  }
}
