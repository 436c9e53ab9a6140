export type SandboxApi = 'loyalty' | 'reviews' | 'insider';

export interface SandboxOptions {
  /** number of loyalty customers */
  customers: number;
  /** number of reviews */
  reviews: number;
  /** default 1 */
  seed?: number;
  /** default 0 (ephemeral) */
  port?: number;
  /** added to every API response (not /__sandbox) */
  latencyMs?: number;
  /** 0..1 probability of a 5xx (500/502/503 mixed) per API request */
  failRate?: number;
  /** per API (loyalty, reviews, insider each); over the limit → 429 with `Retry-After: 1` (Insider) or `ratelimit-reset: 1` (Yotpo); 0/undefined = no limit */
  rateLimitRps?: number;
  /** 0..1 share of users (chosen from the email, so the same users every time) that Insider rejects in fail.errors */
  rejectRate?: number;
  /** a batch containing any of these emails (compared trimmed, lower-cased) gets a whole-batch 400 */
  badRequestEmails?: string[];
  /** default true; when false keep only counts: received() and requests() stay empty */
  recordUsers?: boolean;
  /** default 100; per_page above it is clamped */
  loyaltyPageSizeMax?: number;
}

export type SandboxFaults = Partial<Pick<SandboxOptions, 'latencyMs' | 'failRate' | 'rateLimitRps' | 'rejectRate' | 'badRequestEmails'>> &
  InsiderSandboxFaults &
  YotpoSandboxFaults;

/** A user Insider accepted: the user object as received, plus the `skip_hook` of its request (null when absent). */
export interface ReceivedUser {
  identifiers?: { email?: string; [key: string]: unknown };
  attributes?: { custom?: Record<string, unknown>; [key: string]: unknown };
  events?: Array<Record<string, unknown>>;
  skip_hook: boolean | null;
  [key: string]: unknown;
}

export interface RecordedRequest {
  api: SandboxApi;
  method: string;
  /** path with query; the utoken value replaced by "REDACTED" */
  path: string;
  status: number;
  /** Insider: number of users in the request (when it could be parsed) */
  users?: number;
  /** request body size in bytes (POST requests) */
  bytes?: number;
  /** Insider: the request's skip_hook (when present) */
  skipHook?: boolean;
  /** the fault injected, if any */
  fault?: 'rate_limit' | 'fail';
  /** lower-cased request headers, minus secrets (x-api-key, x-guid, x-request-token, authorization, cookie) */
  headers: Record<string, string>;
}

export interface SandboxApiStats {
  requests: number;
  byStatus: Record<string, number>;
}

export interface SandboxStats {
  requests: number;
  byStatus: Record<string, number>;
  byApi: Record<SandboxApi, SandboxApiStats>;
  faults: { rateLimited: number; failed: number };
  users: { accepted: number; rejected: number };
  events: { accepted: number };
  /** reviews access tokens issued by POST /oauth/token */
  tokensIssued: number;
}

export interface Sandbox {
  /** http://127.0.0.1:PORT */
  url: string;
  /** the env vars pointing a backfill at the sandbox */
  env: Record<string, string>;
  setFaults(f: SandboxFaults): void;
  /** invalidates issued utokens, so the next data call gets 401 */
  expireReviewTokens(): void;
  /** every user Insider accepted, in arrival order (duplicates kept) */
  received(): ReceivedUser[];
  /** every API request */
  requests(): RecordedRequest[];
  stats(): SandboxStats;
  /** forgets recorded users, requests and counters (data and faults stay) */
  reset(): void;
  close(): Promise<void>;
}

// ---- Insider side (src/sandbox/insider-api.ts) ----------------------------------------------

/** What Insider does with the next upserts AFTER storing them (SPEC §7 store-then-fault). */
export type InsiderAfterStoreMode = 'slow' | 'reset' | '502' | '500' | 'bad-counts' | 'unreadable' | 'hold';

export interface InsiderSandboxOptions {
  /** Custom attributes (names without `c_`) left out of the panel schema: their values are dropped silently. */
  missingAttributes?: string[];
  /** Custom attributes the panel holds with another type: their values are dropped silently. */
  mistypedAttributes?: string[];
  /** default true; false: the metadata endpoint answers 404 */
  metadataEndpoint?: boolean;
  /** A stored user is visible to the profile endpoint only this long after its upsert (404 until then). */
  visibilityDelayMs?: number;
  /** Applies to the next `count` upserts that are stored; `count` counts down. */
  afterStore?: { mode: InsiderAfterStoreMode; count: number } | null;
  /** mode 'slow': the answer leaves this long after the batch was stored (default 5000). */
  afterStoreDelayMs?: number;
  /** Every API request (not /__sandbox) answers this redirect while set; null clears it. */
  redirect?: { status: 302 | 307; to: string } | null;
  /** Profile API quota units per rolling minute (default 1000; one call costs 2.5). */
  profileQuotaPerMinute?: number;
}

export interface SandboxOptions extends InsiderSandboxOptions {}

export type InsiderSandboxFaults = Pick<
  InsiderSandboxOptions,
  'afterStore' | 'afterStoreDelayMs' | 'redirect' | 'visibilityDelayMs' | 'metadataEndpoint'
>;

export interface Sandbox {
  /** Upserts Insider stored so far (counted before any after-store fault is applied). */
  readonly storedBatches: number;
  /** Resolves once at least `n` upserts were stored. */
  waitForStored(n: number): Promise<void>;
  /** Answers every upsert held by the 'hold' fault. */
  releaseHeld(): void;
  /** Overwrites stored values of a user's profile (for verify tests): `attributes` as in an upsert. */
  setProfile(email: string, attributes: Record<string, unknown>): void;
}

// ---- Yotpo side (src/sandbox/yotpo-api.ts) --------------------------------------------------

/** Loyalty `recent` cursors misbehaving: see yotpo-api.ts. */
export type LoyaltyCursorFault = 'repeat' | 'cycle' | 'empty-with-cursor' | 'numeric';
/** The reviews list misbehaving: see yotpo-api.ts. */
export type ReviewsListFault = 'hole' | 'never-empty';

export interface YotpoSandboxOptions {
  /** `--token-ttl`: a Reviews utoken stops being honoured after this many data requests (401); 0/undefined = never */
  tokenTtl?: number;
  /** null/undefined = well-behaved cursors */
  loyaltyCursorFault?: LoyaltyCursorFault | null;
  /** null/undefined = a well-behaved list */
  reviewsFault?: ReviewsListFault | null;
  /** 'hole': the page that answers empty (default 2) */
  reviewsHolePage?: number;
  /** 'hole': how many asks it stays empty (default, or null: every ask) */
  reviewsHoleAsks?: number | null;
}

export interface SandboxOptions extends YotpoSandboxOptions {}

/** Every Yotpo option is also a fault, changeable while the sandbox runs. */
export type YotpoSandboxFaults = YotpoSandboxOptions;
