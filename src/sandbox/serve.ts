import { startSandbox } from './server.js';
import type { Sandbox, SandboxOptions } from './types.js';

/** Quotes a value for a POSIX shell only when it needs it. */
function shellQuote(v: string): string {
  return /^[A-Za-z0-9_.,:/@%+=-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`;
}

/**
 * Starts the sandbox and writes the `export NAME=value` lines that point a backfill at it, then a
 * one-line `# sandbox listening on URL (Ctrl-C to stop)` comment. So `eval "$(yotpo-insider sandbox …)"`
 * in another shell would work too. The caller keeps the process alive and calls `close()`.
 */
export async function serveSandbox(opts: SandboxOptions, write: (line: string) => void): Promise<Sandbox> {
  const sandbox = await startSandbox(opts);
  for (const [name, value] of Object.entries(sandbox.env)) write(`export ${name}=${shellQuote(value)}`);
  write(`# sandbox listening on ${sandbox.url} (Ctrl-C to stop)`);
  return sandbox;
}
