// Configuration from the environment and a `.env` file in the working directory, validated once
// at start (SPEC §2). Credentials never come from flags (they would leak into shell history).

import { readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import { z } from 'zod';
import { UsageError, type ApiName } from './errors.js';
import { registerSecret } from './io/redact.js';

export interface LoyaltyConfig {
  url: string;
  apiKey: string;
  guid: string;
}
export interface ReviewsConfig {
  url: string;
  appKey: string;
  secret: string;
}
export interface InsiderConfig {
  url: string;
  /** Sent lower-cased: Insider rejects a partner name in any other case. */
  partnerName: string;
  apiKey: string;
}
export interface Config {
  loyalty?: LoyaltyConfig;
  reviews?: ReviewsConfig;
  insider?: InsiderConfig;
  /** `YOTPO_WEBHOOK_TOKEN`: the shared secret `listen` accepts deliveries with. */
  webhookToken?: string;
  /** The environment with `.env` applied: where the state store lives (YOTPO_INSIDER_STATE_DIR, XDG_STATE_HOME, HOME). */
  env: Record<string, string>;
}

const DEFAULT_URLS = {
  YOTPO_LOYALTY_URL: 'https://loyalty.yotpo.com',
  YOTPO_API_URL: 'https://api.yotpo.com',
  INSIDER_API_URL: 'https://unification.useinsider.com',
} as const;

const CREDENTIALS: Record<ApiName, readonly string[]> = {
  loyalty: ['YOTPO_LOYALTY_API_KEY', 'YOTPO_LOYALTY_GUID'],
  reviews: ['YOTPO_APP_KEY', 'YOTPO_API_SECRET'],
  insider: ['INSIDER_PARTNER_NAME', 'INSIDER_API_KEY'],
};

const baseUrl = z
  .string()
  .trim()
  .url()
  .refine((u) => /^https?:/i.test(u), 'must be an http(s) URL')
  .transform((u) => u.replace(/\/+$/, ''));
const credential = z.string().trim().min(1);

const EnvSchema = z.object({
  YOTPO_LOYALTY_URL: baseUrl.default(DEFAULT_URLS.YOTPO_LOYALTY_URL),
  YOTPO_API_URL: baseUrl.default(DEFAULT_URLS.YOTPO_API_URL),
  INSIDER_API_URL: baseUrl.default(DEFAULT_URLS.INSIDER_API_URL),
  YOTPO_LOYALTY_API_KEY: credential.optional(),
  YOTPO_LOYALTY_GUID: credential.optional(),
  YOTPO_APP_KEY: credential.optional(),
  YOTPO_API_SECRET: credential.optional(),
  INSIDER_PARTNER_NAME: credential.optional(),
  INSIDER_API_KEY: credential.optional(),
  YOTPO_WEBHOOK_TOKEN: credential.optional(),
});

const ENV_LINE = /^\s*(?:#.*|(?:export\s+)?[A-Za-z_][A-Za-z0-9_]*\s*=.*|)$/;

/** Reads `.env` in `cwd` if there is one; a line that is not `NAME=value` is a usage error. */
export function readEnvFile(cwd: string): Record<string, string> {
  const file = `${cwd}/.env`;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new UsageError(`cannot read ${file}: ${(error as Error).message}`);
  }
  // An editor's byte-order mark would otherwise glue itself to the first variable's name.
  if (text.startsWith('\uFEFF')) text = text.slice(1);
  // Quoted values may span lines, so only the lines outside quotes are checked.
  let inQuote: string | undefined;
  text.split(/\r?\n/).forEach((line, index) => {
    if (inQuote) {
      if (line.includes(inQuote)) inQuote = undefined;
      return;
    }
    if (!ENV_LINE.test(line)) {
      throw new UsageError(`${file} line ${index + 1} is not NAME=value (the value is not shown)`);
    }
    const value = line.slice(line.indexOf('=') + 1).trim();
    const quote = value[0];
    if ((quote === '"' || quote === "'" || quote === '`') && value.indexOf(quote, 1) === -1) inQuote = quote;
  });
  return parseEnv(text.replace(/^\s*export\s+/gm, '')) as Record<string, string>;
}

export interface ConfigSources {
  env: NodeJS.ProcessEnv;
  cwd: string;
}

/**
 * One validated configuration. `needs` lists the APIs the command will call: a credential
 * missing for any of them is a usage error naming every missing variable.
 */
export function loadConfig(needs: readonly ApiName[], sources: ConfigSources): Config {
  // The process environment wins over .env, as with every dotenv loader operators know.
  const merged = { ...readEnvFile(sources.cwd), ...definedOnly(sources.env) };
  const parsed = EnvSchema.safeParse(merged);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new UsageError(`invalid configuration: ${problems.join('; ')}`);
  }
  const env = parsed.data;
  const missing = needs.flatMap((api) => CREDENTIALS[api].filter((name) => !env[name as keyof typeof env]));
  if (missing.length > 0) {
    throw new UsageError(
      `missing ${missing.length === 1 ? 'variable' : 'variables'} ${missing.join(', ')} (set them in the environment or in .env)`,
    );
  }
  // Every secret is kept out of output. The partner name is an identifier, shown as it is (SPEC §2).
  for (const name of SECRETS) registerSecret(env[name]);

  const config: Config = { env: merged };
  if (env.YOTPO_LOYALTY_API_KEY && env.YOTPO_LOYALTY_GUID) {
    config.loyalty = { url: env.YOTPO_LOYALTY_URL, apiKey: env.YOTPO_LOYALTY_API_KEY, guid: env.YOTPO_LOYALTY_GUID };
  }
  if (env.YOTPO_APP_KEY && env.YOTPO_API_SECRET) {
    config.reviews = { url: env.YOTPO_API_URL, appKey: env.YOTPO_APP_KEY, secret: env.YOTPO_API_SECRET };
  }
  if (env.INSIDER_PARTNER_NAME && env.INSIDER_API_KEY) {
    config.insider = {
      url: env.INSIDER_API_URL,
      partnerName: env.INSIDER_PARTNER_NAME.toLowerCase(),
      apiKey: env.INSIDER_API_KEY,
    };
  }
  if (env.YOTPO_WEBHOOK_TOKEN) config.webhookToken = env.YOTPO_WEBHOOK_TOKEN;
  return config;
}

const SECRETS = ['YOTPO_LOYALTY_API_KEY', 'YOTPO_LOYALTY_GUID', 'YOTPO_API_SECRET', 'INSIDER_API_KEY', 'YOTPO_WEBHOOK_TOKEN'] as const;

function definedOnly(env: NodeJS.ProcessEnv): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) if (value !== undefined && value !== '') result[key] = value;
  return result;
}
