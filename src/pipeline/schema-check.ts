// The panel check at the start of a run (SPEC §3): Insider drops silently whatever custom attribute,
// event or parameter its panel lacks (or has with another type), so a live run that would send
// such values stops before sending (exit 2) with the list and the fix, unless the operator allows
// it; a dry run reports it and goes on; an account whose metadata endpoint is unavailable gets a
// one-line notice.

import { checkSchema, formatSchemaReport, requiredSchemaFromTable, type RequiredSchema, type SchemaReport } from '../core/schema.js';
import { UsageError } from '../errors.js';
import { readPanelSchema } from '../insider/metadata.js';
import type { ApiClient } from '../io/http.js';
import type { Reporter } from './report.js';

/** What a run sends: a backfill only attributes; replay and listen events too. */
export type SchemaScope = 'attributes' | 'all';

export function requiredFor(scope: SchemaScope): RequiredSchema {
  const required = requiredSchemaFromTable();
  return scope === 'all' ? required : { attributes: required.attributes, events: [] };
}

export async function checkPanel(
  client: ApiClient,
  scope: SchemaScope,
  { dryRun, allowMissing, reporter }: { dryRun: boolean; allowMissing: boolean; reporter: Reporter },
): Promise<SchemaReport | undefined> {
  const schema = await readPanelSchema(client);
  if ('unavailable' in schema) {
    reporter.info(
      `the Insider panel schema cannot be checked (${schema.unavailable}); run yotpo-insider verify after this run to see what landed`,
    );
    return undefined;
  }
  const report = checkSchema(schema, requiredFor(scope));
  if (report.missing + report.mistyped === 0) return report;
  const lines = formatSchemaReport(report);
  if (dryRun || allowMissing) {
    for (const line of lines) reporter.warn(line);
    if (!dryRun) reporter.warn('--allow-missing-schema: sending anyway; Insider drops those values silently');
    return report;
  }
  throw new UsageError(
    `${lines.join('\n')}\nCreate them (yotpo-insider mapping lists each with its type), or pass --allow-missing-schema to send without them`,
  );
}
