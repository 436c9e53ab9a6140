// The error taxonomy: every failure the CLI reports is one of these, and each maps to an exit code
// of SPEC §5. Anything else that escapes is a bug and exits 1 with its stack under --verbose.

export const EXIT = {
  ok: 0,
  someFailed: 1,
  usage: 2,
  stopped: 3,
  interrupted: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** Bad flag, missing credential, unreadable input: the operator must change the command. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly exitCode = EXIT.usage;
}

export type ApiName = 'loyalty' | 'reviews' | 'insider';

export const API_LABEL: Record<ApiName, string> = {
  loyalty: 'Yotpo Loyalty API',
  reviews: 'Yotpo Reviews API',
  insider: 'Insider API',
};

export const API_VARIABLES: Record<ApiName, readonly string[]> = {
  loyalty: ['YOTPO_LOYALTY_API_KEY', 'YOTPO_LOYALTY_GUID', 'YOTPO_LOYALTY_URL'],
  reviews: ['YOTPO_APP_KEY', 'YOTPO_API_SECRET', 'YOTPO_API_URL'],
  insider: ['INSIDER_PARTNER_NAME', 'INSIDER_API_KEY', 'INSIDER_API_URL'],
};

/** 401/403: retrying cannot help, the run stops (state saved) and names what to check. */
export class AuthError extends Error {
  override readonly name = 'AuthError';
  readonly exitCode = EXIT.stopped;
  constructor(
    readonly api: ApiName,
    readonly status: number,
  ) {
    super(`${API_LABEL[api]} rejected the credentials (HTTP ${status}); check ${API_VARIABLES[api].join(', ')}`);
  }
}

/** An API still failing after every retry: the run stops with its state saved, a re-run resumes. */
export class UnavailableError extends Error {
  override readonly name = 'UnavailableError';
  readonly exitCode = EXIT.stopped;
  constructor(
    readonly api: ApiName,
    message: string,
    readonly status: number | null,
    readonly attempts: number,
  ) {
    super(`${API_LABEL[api]} unavailable after ${attempts} attempt(s): ${message}`);
  }
}

/** A response the client cannot use (a 4xx other than auth, a body of the wrong shape). */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly exitCode = EXIT.stopped;
  constructor(
    readonly api: ApiName,
    message: string,
    readonly status: number | null,
  ) {
    super(`${API_LABEL[api]}: ${message}`);
  }
}

/**
 * A local file that cannot be written. A path the operator chose that cannot work (a symbolic
 * link, a folder) is a usage error; a file that stops accepting writes mid-run (disk full) stops the
 * run with its state saved, and a re-run resumes once it is fixed (SPEC §5).
 */
export class LocalFileError extends Error {
  override readonly name = 'LocalFileError';
  readonly exitCode: 2 | 3;
  constructor(message: string, kind: 'usage' | 'stopped' = 'stopped') {
    super(kind === 'stopped' ? `${message} (fix it and run again: it resumes)` : message);
    this.exitCode = kind === 'usage' ? EXIT.usage : EXIT.stopped;
  }
}

/** The state store contradicts itself or belongs to another account: nothing safe can be done. */
export class StoreError extends Error {
  override readonly name = 'StoreError';
  readonly exitCode = EXIT.usage;
}

/** The run was stopped by a signal before it finished. */
export class InterruptedError extends Error {
  override readonly name = 'InterruptedError';
  readonly exitCode = EXIT.interrupted;
  constructor() {
    super('interrupted');
  }
}

export function exitCodeOf(error: unknown): ExitCode {
  if (error && typeof error === 'object' && 'exitCode' in error) {
    const code = (error as { exitCode: unknown }).exitCode;
    if (code === 2 || code === 3 || code === 130) return code;
  }
  return EXIT.someFailed;
}
