/**
 * The local Yotpo Loyalty + Yotpo Reviews + Insider emulator (SPEC.md §7).
 *
 * - `startSandbox(opts)` serves the three APIs of SPEC.md §3 on 127.0.0.1 with generated data.
 * - `customerAt(seed, i)` / `reviewAt(seed, j, customers)` are the generators it serves from, so a
 *   test can compute the expected records on its own.
 * - Control endpoints (no auth, no faults): GET /__sandbox/insider/users, GET /__sandbox/stats,
 *   GET /__sandbox/requests, POST /__sandbox/faults (JSON body like setFaults),
 *   POST /__sandbox/expire-tokens, POST /__sandbox/reset, POST /__sandbox/release (a held answer),
 *   GET /__sandbox/wait-stored?batches=n, POST /__sandbox/insider/profile {email, attributes}.
 * - `postWebhooks` posts saved webhooks to a listener as Yotpo would.
 */
export type {
  ReceivedUser,
  RecordedRequest,
  Sandbox,
  SandboxApi,
  SandboxApiStats,
  SandboxFaults,
  SandboxOptions,
  SandboxStats,
  InsiderAfterStoreMode,
  InsiderSandboxOptions,
  InsiderSandboxFaults,
  YotpoSandboxOptions,
  LoyaltyCursorFault,
  ReviewsListFault,
} from './types.js';
export { postWebhooks, type PostWebhooksOptions, type PostWebhooksResult } from './webhooks.js';
export { startSandbox, redactPath, INSIDER_MAX_BODY_BYTES, INSIDER_MAX_USERS, REVIEWS_MAX_COUNT, SANDBOX_APIS } from './server.js';
export { serveSandbox } from './serve.js';
export {
  customerAt,
  reviewAt,
  reviewMeta,
  customerEmail,
  customerEmailKind,
  formatDate,
  SANDBOX_CREDENTIALS,
  SANDBOX_NOW_MS,
  SITE_REVIEW_SKU,
  REVIEW_TOPICS,
  type CustomerEmailKind,
  type ReviewMeta,
} from './data.js';
export { isRejectedEmail, normaliseEmail, validateUser, REJECTED_MESSAGE } from './insider.js';
