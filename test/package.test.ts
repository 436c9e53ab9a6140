// What `npm pack` ships: the CLI (bin and the built dist), the licence, and nothing a user does not
// run (tests, benchmarks, TypeScript sources, source maps). Built into a copy of the package, so the
// repository's own dist/ (which other tests run) is never touched.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

interface PackResult {
  files: { path: string }[];
}

test('npm pack ships bin, dist and the licence; no tests, benchmarks, sources or source maps', (t) => {
  const copy = mkdtempSync(join(tmpdir(), 'yotpo-insider-pack-'));
  t.after(() => rmSync(copy, { recursive: true, force: true }));
  for (const entry of [
    'package.json',
    'LICENSE',
    'README.md',
    'bin',
    'fixtures',
    'src',
    'test',
    'bench',
    'tsconfig.json',
    'tsconfig.build.json',
  ]) {
    if (existsSync(join(ROOT, entry))) cpSync(join(ROOT, entry), join(copy, entry), { recursive: true });
  }
  symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'), 'dir');
  // The build's own configuration, so a source map switched on there would show up here.
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const build = spawnSync(process.execPath, [tsc, '-p', join(copy, 'tsconfig.build.json')], { cwd: copy, encoding: 'utf8' });
  assert.ok(existsSync(join(copy, 'dist', 'cli.js')), `the build wrote dist/cli.js: ${build.stdout}${build.stderr}`);

  const output = execFileSync(NPM, ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: copy, encoding: 'utf8' });
  const [result] = JSON.parse(output) as PackResult[];
  const paths = result!.files.map((file) => file.path);

  for (const required of ['bin/yotpo-insider.js', 'dist/cli.js', 'LICENSE', 'package.json']) {
    assert.ok(paths.includes(required), `${required} is shipped`);
  }
  const unwanted = paths.filter((path) => /^(test|bench|src)\//.test(path) || path.endsWith('.map') || path.endsWith('.ts'));
  assert.deepEqual(unwanted, [], 'nothing from test/, bench/, src/, no .ts and no source map');
});
