// The one Insider upload contract (SPEC §3): sends one batch of users to the upsert endpoint and
// says, for each user, what became of it. The pipeline calls uploadBatch under p-limit.
//
// A batch that carries events must not reach Insider twice: it is retried only after failures
// Insider provably did not process (ApiClient, idempotent: false). After an ambiguous failure its
// users with events are `uncertain` (Insider may hold them), never sent again silently. Users
// without events are plain upserts, safe to send again: they are `failed` instead, so `retry`
// sends them.

import { AuthError, type ApiName } from '../errors.js';
import { batchBytes, requestBody, type BatchItem } from '../core/batcher.js';
import {
  AmbiguousError,
  ExhaustedError,
  RedirectError,
  RequestInterruptedError,
  UnreadableError,
  type ApiClient,
  type ApiResponse,
} from '../io/http.js';
import { redact } from '../io/redact.js';
import { ApiError, UnavailableError } from '../errors.js';
import { readUpsertResponse, UPSERT_PATH } from './upsert.js';

export type UserOutcome =
  | { status: 'succeeded' }
  | { status: 'would_send' }
  /** Insider refused it, or could not be reached: written to the failed file. */
  | { status: 'failed'; error: string; httpStatus: number | null; attempts: number }
  /** Insider may hold it (an ambiguous failure, counts that do not reconcile). */
  | { status: 'uncertain'; error: string; httpStatus: number | null; attempts: number }
  /** The run stops before this user was processed: no failed line; a resume sends it. */
  | { status: 'unsent'; error: string };

export interface UploadSettings {
  /** Absent in a dry run: nothing is posted. */
  client?: ApiClient;
  skipHook: boolean;
  maxBytes: number;
  onAmbiguous: 'hold' | 'resend';
}

export interface UploadResult {
  /** One per item, in the same order. */
  outcomes: UserOutcome[];
  /** Stops the run (exit via its exitCode). */
  fatal?: Error;
}

const INSIDER: ApiName = 'insider';

/** A 400 whose message is about the partner name, the token or access: the credentials are wrong. */
const CREDENTIAL_MESSAGE = /access denied|partner|token|access|authenticat|unauthori[sz]ed|permission/i;
const TOO_BIG_MESSAGE = /bigger than maximum allowed size/i;
const REQUEST_LEVEL_MESSAGE = /users must be defined|content type must be application\/json|not in valid json format/i;

/** A 400 from Insider that means its credentials were refused: names what to check, quotes Insider. */
export class InsiderCredentialError extends AuthError {
  constructor(status: number, said: string) {
    super(INSIDER, status);
    this.message = `Insider API rejected the credentials (HTTP ${status}: "${redact(said)}"); check INSIDER_PARTNER_NAME and INSIDER_API_KEY`;
  }
}

function hasEvents(item: BatchItem<unknown>): boolean {
  return (item.user.events?.length ?? 0) > 0;
}

/** Insider's message in a 400 body: `{"success":false,"message":…}` or `{"error":…}`. */
function messageOf(body: unknown): string | undefined {
  if (typeof body === 'string') return body;
  if (!body || typeof body !== 'object') return undefined;
  const { message, error } = body as { message?: unknown; error?: unknown };
  if (typeof message === 'string') return message;
  if (typeof error === 'string') return error;
  return undefined;
}

function isReadableUpsert(body: unknown): boolean {
  const data = body && typeof body === 'object' ? (body as { data?: unknown }).data : undefined;
  return !!data && typeof data === 'object' && !Array.isArray(data);
}

function errorText(error: unknown): string {
  return redact(error instanceof Error ? error.message : String(error));
}

class BatchUpload {
  readonly outcomes: UserOutcome[];
  fatal: Error | undefined;

  constructor(
    private readonly items: readonly BatchItem<unknown>[],
    private readonly settings: UploadSettings,
  ) {
    this.outcomes = new Array<UserOutcome>(items.length);
  }

  private set(indices: readonly number[], outcome: UserOutcome | ((index: number) => UserOutcome)): void {
    for (const index of indices) this.outcomes[index] = typeof outcome === 'function' ? outcome(index) : outcome;
  }

  /** Users Insider may hold: uncertain when they carry events, else failed (a second upsert is harmless). */
  private mayHold(indices: readonly number[], error: string, httpStatus: number | null, attempts: number): void {
    this.set(indices, (index) =>
      hasEvents(this.items[index]!)
        ? { status: 'uncertain', error, httpStatus, attempts }
        : { status: 'failed', error, httpStatus, attempts },
    );
  }

  private stop(indices: readonly number[], fatal: Error): void {
    this.fatal ??= fatal;
    this.set(indices, { status: 'unsent', error: errorText(fatal) });
  }

  async send(indices: readonly number[]): Promise<void> {
    if (indices.length === 0) return;
    if (this.fatal) return this.set(indices, { status: 'unsent', error: errorText(this.fatal) });
    const { client, maxBytes } = this.settings;
    const items = indices.map((index) => this.items[index]!);
    if (indices.length === 1 && batchBytes(items) > maxBytes) {
      const error = `user is ${items[0]!.bytes} bytes, over Insider's ${maxBytes}-byte request limit`;
      return this.set(indices, { status: 'failed', error, httpStatus: null, attempts: 0 });
    }
    if (batchBytes(items) > maxBytes) return this.halves(indices, 'bytes');
    if (!client) return this.set(indices, { status: 'would_send' });

    const carriesEvents = items.some(hasEvents);
    let response: ApiResponse;
    try {
      response = await client.request({
        method: 'POST',
        path: UPSERT_PATH,
        body: requestBody(items, this.settings.skipHook),
        passStatuses: [400, 413],
        idempotent: !carriesEvents,
        onAmbiguous: this.settings.onAmbiguous,
        readable: isReadableUpsert,
      });
    } catch (error) {
      return this.failedRequest(indices, error);
    }

    if (response.status === 400 || response.status === 413) return this.badRequest(indices, response);
    if (response.status < 200 || response.status >= 300) return this.stop(indices, client.unexpected(response, 'upsert'));
    this.answered(indices, response);
  }

  /** The request failed as a whole: what each user's fate is follows from how it failed. */
  private failedRequest(indices: readonly number[], error: unknown): void {
    if (error instanceof AmbiguousError) {
      // The run goes on: the next batches are not affected by this one's lost answer.
      return this.mayHold(indices, errorText(error), error.status, error.attempts);
    }
    if (error instanceof UnreadableError) {
      this.fatal ??= error;
      return this.mayHold(indices, errorText(error), 200, error.attempts);
    }
    if (error instanceof UnavailableError) {
      this.fatal ??= error;
      const ambiguous = error instanceof ExhaustedError ? error.ambiguousAttempts > 0 : true;
      const outcome = { error: errorText(error), httpStatus: error.status, attempts: error.attempts };
      if (ambiguous) return this.mayHold(indices, outcome.error, outcome.httpStatus, outcome.attempts);
      return this.set(indices, { status: 'failed', ...outcome });
    }
    if (error instanceof RequestInterruptedError) {
      this.fatal ??= error;
      if (!error.requestInFlight) return this.set(indices, { status: 'unsent', error: 'interrupted before it was sent' });
      const text = 'interrupted while Insider was answering: it may hold this user';
      return this.set(indices, (index) =>
        hasEvents(this.items[index]!)
          ? { status: 'uncertain', error: text, httpStatus: null, attempts: 1 }
          : { status: 'unsent', error: text },
      );
    }
    if (error instanceof AuthError || error instanceof RedirectError) return this.stop(indices, error);
    // Anything else (an unusual network error, a bug): the request may have gone out.
    const fatal = error instanceof Error ? error : new Error(String(error));
    this.fatal ??= fatal;
    this.mayHold(indices, errorText(fatal), error instanceof ApiError ? error.status : null, 1);
  }

  /** Insider's 400s are mostly about the whole request: its message decides (SPEC §3). */
  private async badRequest(indices: readonly number[], response: ApiResponse): Promise<void> {
    const said = messageOf(response.body) ?? '';
    if (response.status === 413 || TOO_BIG_MESSAGE.test(said)) {
      if (indices.length === 1) {
        const error = redact(`Insider refused this user as too big: HTTP ${response.status} ${said}`);
        return this.set(indices, { status: 'failed', error, httpStatus: response.status, attempts: response.attempts });
      }
      return this.halves(indices, 'bytes');
    }
    if (REQUEST_LEVEL_MESSAGE.test(said)) {
      return this.stop(indices, new ApiError(INSIDER, `the request itself was refused (HTTP 400): "${redact(said)}"`, 400));
    }
    if (CREDENTIAL_MESSAGE.test(said)) return this.stop(indices, new InsiderCredentialError(400, said));
    if (indices.length === 1) {
      const error = redact(`Insider refused this user: HTTP 400 ${said || JSON.stringify(response.body)}`);
      return this.set(indices, { status: 'failed', error, httpStatus: 400, attempts: response.attempts });
    }
    return this.halves(indices, 'count');
  }

  /** Two requests in place of one: halves by count, or by bytes (two bodies of about equal size). */
  private async halves(indices: readonly number[], by: 'count' | 'bytes'): Promise<void> {
    let cut = Math.ceil(indices.length / 2);
    if (by === 'bytes') {
      const total = indices.reduce((sum, index) => sum + this.items[index]!.bytes, 0);
      let running = 0;
      cut = 0;
      while (cut < indices.length - 1 && running + this.items[indices[cut]!]!.bytes <= total / 2)
        running += this.items[indices[cut++]!]!.bytes;
      cut = Math.max(1, cut);
    }
    await this.send(indices.slice(0, cut));
    await this.send(indices.slice(cut));
  }

  /** A readable 200: named users failed, the rest succeeded when the counts add up. */
  private answered(indices: readonly number[], response: ApiResponse): void {
    const reading = readUpsertResponse(response.body, indices.length);
    const named = reading.errorsByIndex;
    const reconciled = reading.succeeded + named.size === indices.length;
    const unreconciled = `Insider's answer does not account for every user (successful ${reading.succeeded} + named failures ${named.size} ≠ ${indices.length} sent): this one may be stored, or not`;
    indices.forEach((index, position) => {
      const messages = named.get(position);
      if (messages) {
        this.outcomes[index] = { status: 'failed', error: redact(messages.join('; ')), httpStatus: 200, attempts: response.attempts };
      } else if (reconciled) {
        this.outcomes[index] = { status: 'succeeded' };
      } else {
        this.mayHold([index], unreconciled, 200, response.attempts);
      }
    });
  }
}

/** Sends one batch; never throws (a run-stopping error comes back as `fatal`). */
export async function uploadBatch(items: readonly BatchItem<unknown>[], settings: UploadSettings): Promise<UploadResult> {
  const upload = new BatchUpload(items, settings);
  const all = items.map((_, index) => index);
  // A user who alone is over the limit can never be sent: failed without a request.
  const fitting = all.filter((index) => {
    if (batchBytes([items[index]!]) <= settings.maxBytes) return true;
    upload.outcomes[index] = {
      status: 'failed',
      error: `user is ${items[index]!.bytes} bytes, over Insider's ${settings.maxBytes}-byte request limit`,
      httpStatus: null,
      attempts: 0,
    };
    return false;
  });
  try {
    await upload.send(fitting);
  } catch (error) {
    // A bug in this file: the users not yet settled are unsent, and the run stops.
    const fatal = error instanceof Error ? error : new Error(String(error));
    upload.fatal ??= fatal;
    for (const index of all) upload.outcomes[index] ??= { status: 'unsent', error: errorText(fatal) };
  }
  return upload.fatal ? { outcomes: upload.outcomes, fatal: upload.fatal } : { outcomes: upload.outcomes };
}
