// `yotpo-insider sandbox`: the local Yotpo + Insider emulator, served until a signal; with
// `--webhooks <file> --post-to <url>` it posts saved webhooks to a listener as Yotpo would.

import { UsageError } from '../errors.js';
import { SANDBOX_OPTIONS, withDefaults, type SandboxCliOptions } from '../options.js';
import type { Io } from '../pipeline/report.js';
import type { RunControl } from '../pipeline/run.js';

export async function runSandbox(given: Partial<SandboxCliOptions>, io: Io, control: RunControl): Promise<number> {
  const options = withDefaults(SANDBOX_OPTIONS, given);
  if (options.webhooks !== undefined || options.postTo !== undefined) return postSavedWebhooks(options, io, control);
  const { serveSandbox } = await import('../sandbox/serve.js');
  const sandbox = await serveSandbox(
    {
      customers: options.customers,
      reviews: options.reviews,
      seed: options.seed,
      port: options.port,
      latencyMs: options.latency,
      failRate: options.failRate,
      rateLimitRps: options.rateLimit,
      rejectRate: options.rejectRate,
      ...(options.missingAttributes ? { missingAttributes: options.missingAttributes } : {}),
      ...(options.mistypedAttributes ? { mistypedAttributes: options.mistypedAttributes } : {}),
      ...(options.tokenTtl ? { tokenTtl: options.tokenTtl } : {}),
      ...(options.visibilityDelay !== undefined ? { visibilityDelayMs: options.visibilityDelay * 1000 } : {}),
      ...(options.loyaltyCursorFault ? { loyaltyCursorFault: options.loyaltyCursorFault } : {}),
      ...(options.reviewsFault ? { reviewsFault: options.reviewsFault } : {}),
      ...(options.afterStore ? { afterStore: { mode: options.afterStore, count: Number.MAX_SAFE_INTEGER } } : {}),
    },
    (line) => io.stdout.write(`${line}\n`),
  ).catch((error: NodeJS.ErrnoException) => {
    throw new UsageError(
      error.code === 'EADDRINUSE'
        ? `port ${options.port} is in use; choose another with --port (0 = any free port)`
        : `the sandbox cannot start: ${error.message}`,
    );
  });
  await new Promise<void>((done) => control.signal?.addEventListener('abort', () => done(), { once: true }));
  await sandbox.close();
  return 0;
}

async function postSavedWebhooks(options: SandboxCliOptions, io: Io, control: RunControl): Promise<number> {
  if (!options.webhooks || !options.postTo) throw new UsageError('--webhooks <file> and --post-to <url> go together');
  const { postWebhooks } = await import('../sandbox/webhooks.js');
  const result = await postWebhooks({
    file: options.webhooks,
    url: options.postTo,
    ratePerSecond: options.rate,
    ...(io.env.YOTPO_WEBHOOK_TOKEN ? { token: io.env.YOTPO_WEBHOOK_TOKEN } : {}),
    ...(control.signal ? { signal: control.signal } : {}),
  });
  io.stderr.write(`posted ${result.delivered} webhook(s) in ${result.attempts} attempt(s); ${result.failed} never acknowledged\n`);
  return result.failed > 0 ? 1 : 0;
}
