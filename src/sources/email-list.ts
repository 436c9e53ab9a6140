// `--emails <file>`: one email per line, or a CSV whose header has an `email` column.

import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { parse } from 'csv-parse';
import { UsageError } from '../errors.js';
import { normaliseEmail } from '../core/transform.js';
import { readLines } from '../io/lines.js';

export interface EmailList {
  emails: string[];
  /** Lines that held no valid email. */
  invalid: number;
}

async function firstLine(path: string): Promise<string> {
  const handle = await open(path).catch((error: NodeJS.ErrnoException) => {
    throw new UsageError(`cannot read --emails file ${path}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`);
  });
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(4096), 0, 4096, 0);
    return buffer.subarray(0, bytesRead).toString('utf8').split(/\r?\n/)[0] ?? '';
  } finally {
    await handle.close();
  }
}

/** Reads the list, normalised and de-duplicated, in file order. */
export async function readEmailList(path: string): Promise<EmailList> {
  const header = (await firstLine(path)).replace(/^\uFEFF/, '');
  const isCsv = header.split(',').some((cell) => cell.trim().replace(/^"|"$/g, '').toLowerCase() === 'email') && header.includes(',');
  if (!isCsv && header.includes(',') && !normaliseEmail(header.split(',')[0])) {
    throw new UsageError(
      `--emails ${path} looks like a CSV (its first line has commas) but has no email column: name that column "email", or give one email per line`,
    );
  }
  const seen = new Set<string>();
  const emails: string[] = [];
  let invalid = 0;
  const add = (raw: unknown) => {
    const email = normaliseEmail(raw);
    if (!email) invalid++;
    else if (!seen.has(email)) {
      seen.add(email);
      emails.push(email);
    }
  };
  if (isCsv) {
    const records = createReadStream(path).pipe(
      parse({
        columns: (names: string[]) => names.map((n) => n.trim().toLowerCase()),
        bom: true,
        skip_empty_lines: true,
        relax_column_count: true,
      }),
    );
    for await (const record of records) add((record as Record<string, unknown>).email);
  } else {
    for await (const { text } of readLines(path)) {
      const trimmed = text.trim();
      if (trimmed === '' || trimmed.toLowerCase() === 'email') continue;
      add(trimmed);
    }
  }
  return { emails, invalid };
}
