#!/usr/bin/env node
// The README's two commands, `npm run demo` and `npm test`, land here. On a fresh
// clone with only Node.js and npm they install what the project needs (the pinned
// pnpm, the workspace's dependencies, the etcd and Consul servers), build with
// `tsc -b`, and then run the demo or every test. Each step is skipped when it is
// already done, so the second run costs only the build check and the work itself.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const pnpmVersion = pkg.packageManager.replace(/^pnpm@/, '');
const localPnpm = join(root, 'node_modules', '.bin', 'pnpm');

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', ...options });
  if (result.error) throw result.error;
  if (result.status !== 0) {
    process.exitCode = result.status ?? 1;
    const how = result.signal ? `signal ${result.signal}` : `exit code ${result.status}`;
    throw new Error(`\`${command} ${args.join(' ')}\` failed with ${how}`);
  }
}

function installDependencies() {
  const marker = join(root, 'node_modules', '.modules.yaml');
  const lock = join(root, 'pnpm-lock.yaml');
  if (existsSync(marker) && existsSync(localPnpm) && statSync(marker).mtimeMs >= statSync(lock).mtimeMs) return;
  console.log(`[vip] installing dependencies with pnpm ${pnpmVersion}`);
  const pnpmArgs = ['install', '--frozen-lockfile'];
  if (existsSync(localPnpm)) run(localPnpm, pnpmArgs);
  else run('npx', ['-y', `pnpm@${pnpmVersion}`, ...pnpmArgs]);
}

function pnpm(...args) {
  run(localPnpm, args);
}

const step = process.argv[2];
try {
  installDependencies();
  pnpm('exec', 'tsc', '-b');
  if (existsSync(join(root, 'scripts', 'install-servers.mjs'))) {
    run(process.execPath, [join(root, 'scripts', 'install-servers.mjs')]);
  }
  if (step === 'test') {
    // The tests' own types: vitest only strips them.
    pnpm('exec', 'tsc', '-p', 'tsconfig.tests.json');
    pnpm('exec', 'vitest', 'run', ...process.argv.slice(3));
    // The packages as npm would ship them: exports, types, files.
    if (process.argv.length === 3) run(process.execPath, [join(root, 'scripts', 'check-packages.mjs')]);
  } else if (step === 'chaos') {
    // The long chaos run (test-integration/chaos/main.ts, built by tsc -b above).
    run(process.execPath, [join(root, 'test-integration', 'dist', 'chaos', 'main.js'), ...process.argv.slice(3)]);
  } else if (step === 'bench') {
    pnpm('--filter', './bench', 'start', ...process.argv.slice(3));
  } else if (step === 'demo') {
    const demo = existsSync(join(root, 'examples', 'demo', 'package.json')) ? 'demo' : 'in-memory';
    pnpm('--filter', `./examples/${demo}`, 'start', ...process.argv.slice(3));
  } else {
    throw new Error(`usage: node scripts/quickstart.mjs demo|test|bench|chaos [args...] (got ${JSON.stringify(step)})`);
  }
} catch (error) {
  console.error(`[vip] ${error.message}`);
  if (!process.exitCode) process.exitCode = 1;
}
