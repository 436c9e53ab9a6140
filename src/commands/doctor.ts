// `yotpo-insider doctor`: one harmless request per configured API, telling "unreachable",
// "credentials rejected" and "ok" apart. Writes nothing anywhere.

import { loadConfig, type Config } from '../config.js';
import { API_LABEL, API_VARIABLES, ApiError, AuthError, UnavailableError, type ApiName } from '../errors.js';
import { UPSERT_PATH } from '../insider/upsert.js';
import { redact } from '../io/redact.js';
import { newRequestCounters } from '../io/http.js';
import { Reporter, type Io } from '../pipeline/report.js';
import { COMMON_DEFAULTS, makeClients } from '../pipeline/run.js';
import { ReviewsApi } from '../yotpo/reviews.js';

export type CheckStatus = 'ok' | 'unreachable' | 'credentials rejected' | 'not configured' | 'unexpected answer';

export interface CheckResult {
  api: ApiName;
  status: CheckStatus;
  detail: string;
}

const FIX: Record<Exclude<CheckStatus, 'ok'>, (api: ApiName) => string> = {
  unreachable: (api) => `check ${API_VARIABLES[api].at(-1)} and the network (proxy, firewall, VPN)`,
  'credentials rejected': (api) => `check ${API_VARIABLES[api].slice(0, 2).join(' and ')} (copy them again from the admin)`,
  'not configured': (api) => `set ${API_VARIABLES[api].slice(0, 2).join(' and ')} in the environment or .env`,
  'unexpected answer': (api) => `the ${API_LABEL[api]} answered in a way this tool does not know; run with --verbose`,
};

function classify(api: ApiName, error: unknown): CheckResult {
  if (error instanceof AuthError) return { api, status: 'credentials rejected', detail: `HTTP ${error.status}` };
  if (error instanceof UnavailableError) {
    return { api, status: error.status === null ? 'unreachable' : 'unexpected answer', detail: redact(error.message) };
  }
  if (error instanceof ApiError && error.status === null) return { api, status: 'unreachable', detail: redact(error.message) };
  return { api, status: 'unexpected answer', detail: redact(error instanceof Error ? error.message : String(error)) };
}

export async function runDoctor(options: { verbose?: boolean; json?: boolean; timeoutMs?: number }, io: Io): Promise<{ results: CheckResult[]; exitCode: number }> {
  const reporter = new Reporter(io, { verbose: Boolean(options.verbose) });
  const config: Config = loadConfig([], io);
  const counters = newRequestCounters();
  const clients = makeClients(
    config,
    { ...COMMON_DEFAULTS, maxAttempts: 1, timeoutMs: options.timeoutMs ?? 10_000, insiderRps: 0 },
    { loyalty: 0, reviews: 0 },
    reporter,
    { counters },
  );

  const check = async (api: ApiName, probe: () => Promise<string>): Promise<CheckResult> => {
    try {
      return { api, status: 'ok', detail: await probe() };
    } catch (error) {
      return classify(api, error);
    }
  };

  const results: CheckResult[] = [];
  results.push(
    clients.loyalty
      ? await check('loyalty', async () => {
          const client = clients.loyalty!;
          const recent = await client.request({ path: '/api/v2/customers/recent', searchParams: { per_page: 1 } });
          const all = await client.request({ path: '/api/v2/customers/all', searchParams: { page: 1, per_page: 1 } });
          const answers = [recent.status === 200 ? 'customers/recent' : '', all.status === 200 ? 'customers/all' : ''].filter(Boolean);
          if (answers.length === 0) throw client.unexpected(recent, 'customer list');
          return `answers ${answers.join(' and ')}${recent.status === 200 ? '' : ' (use --loyalty-endpoint all)'}`;
        })
      : { api: 'loyalty', status: 'not configured', detail: 'missing YOTPO_LOYALTY_API_KEY or YOTPO_LOYALTY_GUID' },
  );
  results.push(
    clients.reviews && config.reviews
      ? await check('reviews', async () => {
          await new ReviewsApi(clients.reviews!, config.reviews!).authenticate();
          return 'token obtained';
        })
      : { api: 'reviews', status: 'not configured', detail: 'missing YOTPO_APP_KEY or YOTPO_API_SECRET' },
  );
  results.push(
    clients.insider
      ? await check('insider', async () => {
          // An empty upsert authenticates and writes nothing: Insider answers 400 "users must be defined".
          const response = await clients.insider!.request({ method: 'POST', path: UPSERT_PATH, json: { users: [] } });
          if (response.status === 400 || (response.status >= 200 && response.status < 300)) return 'credentials accepted (nothing written)';
          throw clients.insider!.unexpected(response, 'empty upsert');
        })
      : { api: 'insider', status: 'not configured', detail: 'missing INSIDER_PARTNER_NAME or INSIDER_API_KEY' },
  );

  const configured = results.filter((r) => r.status !== 'not configured');
  const exitCode = configured.length > 0 && configured.every((r) => r.status === 'ok') ? 0 : configured.length === 0 ? 2 : 3;
  if (options.json) {
    io.stdout.write(`${JSON.stringify({ results, exit_code: exitCode })}\n`);
  } else {
    for (const result of results) {
      const mark = result.status === 'ok' ? '✔' : result.status === 'not configured' ? '–' : '✘';
      const fix = result.status === 'ok' ? '' : ` → ${FIX[result.status](result.api)}`;
      reporter.result(`${mark} ${API_LABEL[result.api]}: ${result.status} (${result.detail})${fix}`);
    }
  }
  return { results, exitCode };
}
