// verify's samples (SPEC §9): for each live run, a uniform sample of the users Insider confirmed,
// with the attributes sent, kept in the account's folder and named by the run log.

import { closeSync, existsSync } from 'node:fs';
import { basename } from 'node:path';
import type { FlatAttributes } from '../core/transform.js';
import { openPrivate, writeDurably } from '../io/durable.js';
import { readLines } from '../io/lines.js';
import type { StateStore } from './store.js';

export interface SampledUser {
  email: string;
  attributes: FlatAttributes;
}

/** Writes a run's sample; returns its file name (relative to the account's folder). */
export function writeSample(store: StateStore, runId: string, users: readonly SampledUser[]): string {
  const name = `samples/${runId}.jsonl`;
  const fd = openPrivate(store.path(name), { what: 'the verify sample' });
  try {
    writeDurably(fd, `${users.map((user) => JSON.stringify(user)).join('\n')}\n`);
  } finally {
    closeSync(fd);
  }
  return name;
}

export async function* readSample(store: StateStore, file: string): AsyncGenerator<SampledUser> {
  const path = store.path(file);
  if (!existsSync(path)) return;
  for await (const { text } of readLines(path)) if (text) yield JSON.parse(text) as SampledUser;
}

export function sampleRunId(file: string): string {
  return basename(file, '.jsonl');
}
