#!/usr/bin/env node
// Checks that every published package is consumable as it would be from npm:
// publint (exports, files, types) and @arethetypeswrong/cli (types resolve
// under NodeNext and bundlers; ESM-only by design, so CJS and node10 are ignored),
// plus what the npm page and a user's tools need: LICENSE and README in the tarball,
// repository/homepage/bugs/engines set, and no README link that leaves the package
// directory (npm resolves relative links against the repository, but only inside it).
import { spawnSync } from 'node:child_process';
import { readdirSync, existsSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);
const REPOSITORY = 'git+https://github.com/vip-js/vip.git';
const ENGINES = '^20.19.0 || >=22.12.0';
let failed = 0;

/** What npm would publish from `dir`, and the package.json and README facts around it; a list of problems. */
function metadataProblems(name, dir) {
  const problems = [];
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  if (pkg.license !== 'MIT') problems.push(`license is ${JSON.stringify(pkg.license)}, expected "MIT"`);
  const repo = pkg.repository;
  if (repo?.type !== 'git' || repo?.url !== REPOSITORY || repo?.directory !== `packages/${name}`) {
    problems.push(`repository should be { type: "git", url: "${REPOSITORY}", directory: "packages/${name}" }`);
  }
  if (pkg.homepage !== `https://github.com/vip-js/vip/tree/main/packages/${name}#readme`) problems.push('homepage missing or wrong');
  if (pkg.bugs !== 'https://github.com/vip-js/vip/issues') problems.push('bugs missing or wrong');
  if (pkg.engines?.node !== ENGINES) problems.push(`engines.node should be "${ENGINES}" (require(esm) needs 20.19 / 22.12)`);
  const pack = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: dir, encoding: 'utf8' });
  if (pack.status !== 0) problems.push(`npm pack --dry-run failed: ${pack.stderr}`);
  else {
    const files = new Set(JSON.parse(pack.stdout)[0].files.map((file) => file.path));
    for (const wanted of ['LICENSE', 'README.md', 'package.json']) if (!files.has(wanted)) problems.push(`${wanted} is not in the tarball`);
  }
  const readme = existsSync(join(dir, 'README.md')) ? readFileSync(join(dir, 'README.md'), 'utf8') : '';
  for (const match of readme.matchAll(/\]\((\.\.\/[^)\s]*)\)/g)) {
    problems.push(`README.md links to ${match[1]}, outside the package: the npm page cannot resolve it; use https://github.com/vip-js/vip/blob/main/…`);
  }
  return problems;
}
for (const name of readdirSync(join(root, 'packages'))) {
  const dir = join(root, 'packages', name);
  if (!existsSync(join(dir, 'package.json'))) continue;
  const problems = metadataProblems(name, dir);
  console.log(`${problems.length ? 'FAIL' : 'ok  '} metadata packages/${name}`);
  if (problems.length) {
    failed += 1;
    for (const problem of problems) console.log(`  ${problem}`);
  }
  for (const [tool, args] of [
    ['publint', [dir, '--strict']],
    ['attw', ['--pack', dir, '--profile', 'esm-only', '--format', 'table-flipped']],
  ]) {
    const result = spawnSync(bin(tool), args, { cwd: root, encoding: 'utf8' });
    const ok = result.status === 0;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${tool} packages/${name}`);
    if (!ok) {
      failed += 1;
      console.log(result.stdout, result.stderr);
    }
  }
}
if (failed) {
  console.error(`${failed} package check(s) failed`);
  process.exit(1);
}
