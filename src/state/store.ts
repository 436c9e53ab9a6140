// The state store (SPEC §4): one folder per Insider account, recording its account (partner and
// URL, never a secret), holding the backfill checkpoints, the shared event ledger, the run log and
// verify's samples. Everything a run must remember belongs to the account it writes to, not to
// the folder it was started from.

import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { StoreError } from '../errors.js';
import { makePrivateDir, writeFileAtomic } from '../io/durable.js';
import { Ledger } from './ledger.js';
import { RunLog } from './runs.js';

export interface Account {
  partner: string;
  url: string;
}

export function describeAccount(account: Account): string {
  return `partner ${account.partner} at ${account.url}`;
}

/** The root of every account's folder: $YOTPO_INSIDER_STATE_DIR, else the XDG state home. */
export function stateRoot(env: NodeJS.ProcessEnv): string {
  if (env.YOTPO_INSIDER_STATE_DIR) return resolve(env.YOTPO_INSIDER_STATE_DIR);
  const xdg = env.XDG_STATE_HOME ? resolve(env.XDG_STATE_HOME) : join(env.HOME ?? homedir(), '.local', 'state');
  return join(xdg, 'yotpo-insider');
}

/** A readable, collision-free folder name: the partner, the host, and a hash of both. */
export function accountFolderName(account: Account): string {
  const normalised = normaliseAccount(account);
  const host = new URL(normalised.url).host;
  const hash = createHash('sha256').update(`${normalised.partner}\n${normalised.url}`).digest('hex').slice(0, 10);
  const safe = (text: string) => text.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 60);
  return `${safe(normalised.partner)}@${safe(host)}-${hash}`;
}

function normaliseAccount(account: Account): Account {
  return { partner: account.partner.trim().toLowerCase(), url: account.url.replace(/\/+$/, '').toLowerCase() };
}

/** The same Insider account, whatever the case of the partner or a trailing slash of the URL. */
export function sameAccount(a: Account, b: Account): boolean {
  const x = normaliseAccount(a);
  const y = normaliseAccount(b);
  return x.partner === y.partner && x.url === y.url;
}

const ACCOUNT_FILE = 'account.json';

export interface OpenStoreOptions {
  account: Account;
  /** `--state <dir>`: an explicit folder, which must record this account (or be new). */
  dir?: string;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** A live run writes; a dry run reads what is there and writes nothing. */
  writable: boolean;
}

export class StateStore {
  readonly runId: string;
  private ledgerPromise: Promise<Ledger> | undefined;

  private constructor(
    readonly dir: string,
    readonly account: Account,
    readonly writable: boolean,
    readonly runs: RunLog,
  ) {
    this.runId = `${new Date()
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d+Z$/, 'Z')}-${randomBytes(3).toString('hex')}`;
  }

  static open(options: OpenStoreOptions): StateStore {
    const dir = options.dir ? resolve(options.cwd, options.dir) : join(stateRoot(options.env), accountFolderName(options.account));
    const recorded = readAccount(dir);
    if (recorded && !sameAccount(recorded, options.account)) {
      throw new StoreError(
        `the state folder ${dir} belongs to ${describeAccount(recorded)}, but this run writes to ${describeAccount(options.account)}; ` +
          'use that account, or another --state folder (or none: each account has its own)',
      );
    }
    if (options.writable && !recorded) {
      makePrivateDir(dir);
      writeFileAtomic(
        join(dir, ACCOUNT_FILE),
        `${JSON.stringify({ format: 1, ...normaliseAccount(options.account), created_at: new Date().toISOString() }, null, 2)}\n`,
        'the state folder',
      );
    }
    return new StateStore(dir, options.account, options.writable, new RunLog(dir, options.writable));
  }

  /** The store of the configured Insider account (none without Insider variables). */
  static forConfig(
    config: { insider?: { partnerName: string; url: string } | undefined; env: NodeJS.ProcessEnv },
    { state, cwd, writable }: { state?: string | undefined; cwd: string; writable: boolean },
  ): StateStore | undefined {
    if (!config.insider) return undefined;
    return StateStore.open({
      account: { partner: config.insider.partnerName, url: config.insider.url },
      ...(state ? { dir: state } : {}),
      env: config.env,
      cwd,
      writable,
    });
  }

  /** The shared ledger, opened at first use (a backfill never needs it). */
  ledger(): Promise<Ledger> {
    this.ledgerPromise ??= Ledger.open(this.dir, { runId: this.runId, writable: this.writable });
    return this.ledgerPromise;
  }

  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  checkpointFiles(): string[] {
    const dir = this.path('checkpoints');
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .filter((name) => name.endsWith('.json'))
      .map((name) => join(dir, name));
  }

  get host(): string {
    return hostname();
  }
}

function readAccount(dir: string): Account | undefined {
  const file = join(dir, ACCOUNT_FILE);
  if (!existsSync(file)) return undefined;
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<Account>;
    if (typeof parsed.partner === 'string' && typeof parsed.url === 'string') return { partner: parsed.partner, url: parsed.url };
  } catch {
    // fall through
  }
  throw new StoreError(`${file} does not say which Insider account the folder belongs to; move the folder away or name another --state`);
}

/** The state folder a previous version kept in the working folder; found, it is mentioned once. */
export function legacyStateNotice(cwd: string, storeDir: string): string | undefined {
  const legacy = join(cwd, '.yotpo-insider', 'state.json');
  return existsSync(legacy)
    ? `${legacy} is from an earlier version and is no longer read: state now lives per Insider account in ${storeDir}`
    : undefined;
}
