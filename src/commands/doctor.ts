// `yotpo-insider doctor` (SPEC §3): per configured API, do the credentials work and does it answer;
// and does the Insider panel hold every custom attribute, event and parameter the mapping sends,
// with its type. Read-only everywhere: it never calls the upsert endpoint and writes no file.

import { loadConfig, type Config } from '../config.js';
import { checkSchema, formatSchemaReport, requiredSchemaFromTable, type SchemaItem, type SchemaReport } from '../core/schema.js';
import { API_LABEL, API_VARIABLES, ApiError, AuthError, EXIT, UnavailableError, type ApiName } from '../errors.js';
import { readPanelSchema } from '../insider/metadata.js';
import { readProfile } from '../insider/profile.js';
import type { ApiClient } from '../io/http.js';
import { redact } from '../io/redact.js';
import { DELIVERY_OPTIONS } from '../options.js';
import { Reporter, type Io } from '../pipeline/report.js';
import { makeClients } from '../pipeline/run.js';
import { VERSION } from '../pipeline/summary.js';
import { probeLoyalty, probeReviews, type ProbeResult } from '../yotpo/probes.js';

export type CheckStatus = 'ok' | 'credentials rejected' | 'unreachable' | 'unexpected answer' | 'not configured';

export interface ApiCheck {
  api: ApiName;
  status: CheckStatus;
  detail: string;
  /** What to do about it; absent when ok. */
  fix?: string;
  /** Loyalty: which customer listings the account answers (SPEC §3 `--loyalty-endpoint`). */
  listings?: { recent: boolean; all: boolean };
}

export type SchemaStatus = 'complete' | 'incomplete' | 'unavailable' | 'not checked';

export interface SchemaCheck {
  status: SchemaStatus;
  detail: string;
  missing: number;
  mistyped: number;
  /** The missing and mistyped items (not the ones that are fine). */
  problems: SchemaItem[];
  budget?: SchemaReport['budget'];
  /** What an operator reads: formatSchemaReport's lines. */
  report: string[];
}

export interface DoctorReport {
  command: 'doctor';
  version: string;
  apis: ApiCheck[];
  /** The APIs whose variables are not set. */
  not_configured: ApiName[];
  schema: SchemaCheck;
  exit_code: number;
}

/** An address no store has: the profile API answers 404 for it when the credentials work. */
export const PROBE_EMAIL = 'doctor.probe@yotpo-insider.invalid';

const CREDENTIAL_VARIABLES = (api: ApiName) => API_VARIABLES[api].slice(0, 2);
const URL_VARIABLE = (api: ApiName) => API_VARIABLES[api].at(-1)!;

const FIX: Record<Exclude<CheckStatus, 'ok'>, (api: ApiName) => string> = {
  'credentials rejected': (api) => `check ${CREDENTIAL_VARIABLES(api).join(' and ')} (copy them again from the admin)`,
  unreachable: (api) => `check ${URL_VARIABLE(api)} and the network (proxy, firewall, VPN), then run doctor again`,
  'unexpected answer': (api) => `check that ${URL_VARIABLE(api)} points at the ${API_LABEL[api]}; run doctor --verbose to see the answer`,
  'not configured': (api) => `set ${CREDENTIAL_VARIABLES(api).join(' and ')} in the environment or .env to use the ${API_LABEL[api]}`,
};

function check(api: ApiName, status: CheckStatus, detail: string, extra: Partial<ApiCheck> = {}): ApiCheck {
  return { api, status, detail: redact(detail), ...(status === 'ok' ? {} : { fix: FIX[status](api) }), ...extra };
}

/** An exception of a probe, in the words of the report. */
function classify(api: ApiName, error: unknown): ApiCheck {
  if (error instanceof AuthError) return check(api, 'credentials rejected', error.message);
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof UnavailableError) return check(api, error.status === null ? 'unreachable' : 'unexpected answer', message);
  if (error instanceof ApiError && error.status === null) return check(api, 'unreachable', message);
  return check(api, 'unexpected answer', message);
}

const PROBE_STATUS: Record<ProbeResult['status'], CheckStatus> = {
  ok: 'ok',
  rejected: 'credentials rejected',
  unreachable: 'unreachable',
  unexpected: 'unexpected answer',
};

function fromProbe(api: ApiName, result: ProbeResult): ApiCheck {
  const listings = result.listings ? { listings: { recent: result.listings.recent === 'ok', all: result.listings.all === 'ok' } } : {};
  return check(api, PROBE_STATUS[result.status], result.detail, listings);
}

function listingsNote(listings: ApiCheck['listings']): string {
  if (!listings) return '';
  if (listings.recent && listings.all) return '; answers customers/recent and customers/all';
  if (listings.recent) return '; answers customers/recent only (the default --loyalty-endpoint recent)';
  if (listings.all) return '; answers customers/all only: run backfill with --loyalty-endpoint all';
  return '; answers neither customer listing';
}

async function probe(api: ApiName, run: () => Promise<ApiCheck>): Promise<ApiCheck> {
  try {
    return await run();
  } catch (error) {
    return classify(api, error);
  }
}

const notChecked = (detail: string): SchemaCheck => ({ status: 'not checked', detail, missing: 0, mistyped: 0, problems: [], report: [] });

/**
 * Insider: the metadata endpoint is both the credential test and the schema. Where it is not
 * there (it is undocumented), a profile lookup of an address nobody has tests the credentials.
 */
async function checkInsider(client: ApiClient): Promise<{ api: ApiCheck; schema: SchemaCheck }> {
  let panel: Awaited<ReturnType<typeof readPanelSchema>>;
  try {
    panel = await readPanelSchema(client);
  } catch (error) {
    return { api: classify('insider', error), schema: notChecked('the Insider API did not let the schema be read') };
  }
  if ('unavailable' in panel) {
    const schema: SchemaCheck = {
      status: 'unavailable',
      detail: `the schema cannot be checked: ${panel.unavailable}; check the panel by hand against yotpo-insider mapping`,
      missing: 0,
      mistyped: 0,
      problems: [],
      report: [],
    };
    const api = await probe('insider', async () => {
      const profile = await readProfile(client, PROBE_EMAIL, { attributes: ['email'] });
      return check(
        'insider',
        'ok',
        `credentials accepted: a profile lookup of an unknown address answered ${profile.found ? 'a user' : '404 no such user'}; nothing written`,
      );
    });
    return { api, schema: api.status === 'ok' ? schema : notChecked('the Insider API did not answer') };
  }
  const report = checkSchema(panel, requiredSchemaFromTable());
  const complete = report.missing === 0 && report.mistyped === 0;
  return {
    api: check('insider', 'ok', 'credentials accepted: the metadata endpoint answered; nothing written'),
    schema: {
      status: complete ? 'complete' : 'incomplete',
      detail: complete
        ? 'every custom attribute, event and event parameter of the mapping exists with its type'
        : `${report.missing} missing, ${report.mistyped} mistyped: Insider drops their values silently`,
      missing: report.missing,
      mistyped: report.mistyped,
      problems: report.items.filter((item) => item.state !== 'ok'),
      budget: report.budget,
      report: formatSchemaReport(report),
    },
  };
}

function exitCodeOf(apis: readonly ApiCheck[], schema: SchemaCheck): number {
  const configured = apis.filter((api) => api.status !== 'not configured');
  if (configured.length === 0) return EXIT.usage;
  if (configured.some((api) => api.status !== 'ok')) return EXIT.stopped;
  return schema.status === 'incomplete' ? EXIT.someFailed : EXIT.ok;
}

export async function runDoctor(
  options: { verbose?: boolean; json?: boolean; timeoutMs?: number },
  io: Io,
): Promise<{ report: DoctorReport; exitCode: number }> {
  const reporter = new Reporter(io, { verbose: Boolean(options.verbose) });
  const config: Config = loadConfig([], io);
  // One attempt per request: doctor reports what each API answers now, it does not wait for it to recover.
  const clients = makeClients(
    config,
    {
      maxAttempts: 1,
      retryBaseMs: DELIVERY_OPTIONS.retryBaseMs.default,
      maxRetryAfter: DELIVERY_OPTIONS.maxRetryAfter.default,
      timeout: options.timeoutMs ?? 10_000,
      insiderRps: 0,
      dryRun: false,
    },
    { loyalty: 0, reviews: 0 },
    reporter,
  );

  const notConfigured = (api: ApiName) => check(api, 'not configured', `${CREDENTIAL_VARIABLES(api).join(' and ')} not set`);
  const [loyalty, reviews, insider] = await Promise.all([
    clients.loyalty ? probe('loyalty', async () => fromProbe('loyalty', await probeLoyalty(clients.loyalty!))) : notConfigured('loyalty'),
    clients.reviews && config.reviews
      ? probe('reviews', async () => fromProbe('reviews', await probeReviews(clients.reviews!, config.reviews!)))
      : notConfigured('reviews'),
    clients.insider
      ? checkInsider(clients.insider)
      : { api: notConfigured('insider'), schema: notChecked('the Insider API is not configured') },
  ]);
  const apis = [loyalty, reviews, insider.api];
  const exitCode = exitCodeOf(apis, insider.schema);
  const report: DoctorReport = {
    command: 'doctor',
    version: VERSION,
    apis,
    not_configured: apis.filter((api) => api.status === 'not configured').map((api) => api.api),
    schema: insider.schema,
    exit_code: exitCode,
  };

  if (options.json) {
    io.stdout.write(`${JSON.stringify(report)}\n`);
    return { report, exitCode };
  }
  for (const api of apis) {
    const mark = api.status === 'ok' ? '✔' : api.status === 'not configured' ? '–' : '✘';
    const fix = api.fix ? ` → ${api.fix}` : '';
    reporter.result(`${mark} ${API_LABEL[api.api]}: ${api.status} — ${api.detail}${listingsNote(api.listings)}${fix}`);
  }
  if (insider.schema.report.length > 0) for (const line of insider.schema.report) reporter.result(line);
  else reporter.result(`Insider panel schema: ${insider.schema.status} — ${insider.schema.detail}`);
  if (report.not_configured.length === apis.length) {
    reporter.result('Nothing is configured: set the variables of at least one API (see yotpo-insider --help or the README).');
  } else if (report.not_configured.length > 0) {
    reporter.result(`Not checked, variables not set: ${report.not_configured.map((api) => API_LABEL[api]).join(', ')}.`);
  }
  return { report, exitCode };
}
