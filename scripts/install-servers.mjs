#!/usr/bin/env node
// Gets real etcd (3.5) and Consul servers for the tests, the demo and the
// benchmarks into the git-ignored folder .servers/, and writes what it chose to
// .servers/servers.json, the one place the test harness reads.
//
// Per server, the first of these that works is used:
//   1. a running server the user names: VIP_ETCD_ENDPOINTS (comma-separated
//      http URLs), VIP_CONSUL_ADDR (an http URL). Nothing is installed for it;
//      a binary already at hand is recorded too, for the tests that kill or
//      restart a server of their own;
//   2. a binary the user names: VIP_ETCD_BIN (+ VIP_ETCDCTL_BIN), VIP_CONSUL_BIN;
//   3. what an earlier run put into .servers/bin (so the second run only asks
//      each binary for its version);
//   4. etcd / consul on PATH (etcd 3.4 or newer);
//   5. Debian packages: etcd-server + etcd-client from trixie (3.5.16) and
//      consul from bullseye (1.8.7, the only packaged Consul). apt runs with a
//      private sources list, lists dir and cache dir inside .servers/apt, so the
//      machine's own apt set-up is never touched, and dpkg-deb unpacks them.
//      Both are statically linked Go programs that need only libc.
//
// Usage: node scripts/install-servers.mjs [--check]
//   --check  only report what would be used; install and write nothing; exit 1
//            when a server is missing.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, '.servers');
const binDir = join(dir, 'bin');
const aptDir = join(dir, 'apt');
const debsDir = join(aptDir, 'debs');
const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';
// Debian moves a release to archive.debian.org some time after its LTS ends
// (bullseye LTS: until August 2026), so that is where bullseye's consul goes.
const ARCHIVE_MIRROR = 'http://archive.debian.org/debian';

const PACKAGES = {
  etcd: [
    { name: 'etcd-server', suite: 'trixie', binaries: ['etcd'] },
    { name: 'etcd-client', suite: 'trixie', binaries: ['etcdctl'] },
  ],
  consul: [{ name: 'consul', suite: 'bullseye', binaries: ['consul'], archived: true }],
};

const HOW_TO = {
  etcd:
    '  Get etcd 3.5 from https://github.com/etcd-io/etcd/releases (etcd-v3.5.*-linux-amd64.tar.gz has etcd and etcdctl)\n' +
    '  and put it on PATH or set VIP_ETCD_BIN=/path/to/etcd (and VIP_ETCDCTL_BIN=/path/to/etcdctl),\n' +
    '  or point the tests at a running etcd: VIP_ETCD_ENDPOINTS=http://127.0.0.1:2379',
  consul:
    '  Get Consul from https://developer.hashicorp.com/consul/install (one binary)\n' +
    '  and put it on PATH or set VIP_CONSUL_BIN=/path/to/consul,\n' +
    '  or point the tests at a running agent: VIP_CONSUL_ADDR=http://127.0.0.1:8500',
};

const say = (line) => console.log(`[servers] ${line}`);
const shown = (path) => (path.startsWith(`${root}/`) ? relative(root, path) : path);

class Problem extends Error {}

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 24).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
  process.exit(0);
}
const checkOnly = process.argv.includes('--check');

function executable(path) {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** `name` on PATH, leaving out .servers/bin (that is step 3, not the user's own). */
function which(name) {
  for (const folder of (process.env.PATH ?? '').split(delimiter)) {
    if (!folder || folder === binDir) continue;
    const candidate = join(folder, name);
    if (executable(candidate)) return candidate;
  }
  return undefined;
}

function output(bin, args) {
  const result = spawnSync(bin, args, { encoding: 'utf8', timeout: 20_000 });
  return result.status === 0 ? `${result.stdout}${result.stderr}` : undefined;
}

/** `etcd --version` prints "etcd Version: 3.5.16" first. */
function etcdVersion(bin) {
  const match = /etcd Version:\s*(\d+)\.(\d+)\.(\d+)/.exec(output(bin, ['--version']) ?? '');
  return match && { text: `${match[1]}.${match[2]}.${match[3]}`, ok: Number(match[1]) > 3 || (Number(match[1]) === 3 && Number(match[2]) >= 4) };
}

/** `consul version` prints "Consul v1.8.7" first. */
function consulVersion(bin) {
  const match = /Consul v(\d+)\.(\d+)\.(\d+)/.exec(output(bin, ['version']) ?? '');
  return match && { text: `${match[1]}.${match[2]}.${match[3]}`, ok: Number(match[1]) >= 1 };
}

const SERVERS = {
  etcd: {
    binEnv: 'VIP_ETCD_BIN',
    binary: 'etcd',
    version: etcdVersion,
    need: '3.4 or newer',
    extra(bin) {
      const etcdctl = process.env.VIP_ETCDCTL_BIN || [join(dirname(bin), 'etcdctl')].find(executable) || which('etcdctl');
      return { etcdctl: etcdctl ?? null };
    },
    external() {
      const raw = process.env.VIP_ETCD_ENDPOINTS;
      if (!raw) return undefined;
      const endpoints = raw.split(',').map((entry) => entry.trim()).filter(Boolean);
      for (const endpoint of endpoints) checkUrl('VIP_ETCD_ENDPOINTS', endpoint);
      if (endpoints.length === 0) throw new Problem('VIP_ETCD_ENDPOINTS is set but names no endpoint');
      return { endpoints, label: endpoints.join(', '), from: 'VIP_ETCD_ENDPOINTS' };
    },
  },
  consul: {
    binEnv: 'VIP_CONSUL_BIN',
    binary: 'consul',
    version: consulVersion,
    need: '1.0 or newer',
    extra: () => ({}),
    external() {
      const addr = process.env.VIP_CONSUL_ADDR?.trim();
      if (!addr) return undefined;
      checkUrl('VIP_CONSUL_ADDR', addr);
      return { addr: addr.replace(/\/+$/, ''), label: addr, from: 'VIP_CONSUL_ADDR' };
    },
  },
};

function checkUrl(variable, value) {
  let url;
  try {
    url = new URL(value);
  } catch {
    throw new Problem(`${variable}: ${JSON.stringify(value)} is not a URL (expected e.g. http://127.0.0.1:${variable.includes('ETCD') ? 2379 : 8500})`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Problem(`${variable}: ${value} must be an http:// or https:// URL`);
}

/** A working binary of `server` that is already on this machine, or undefined. */
function findBinary(server) {
  const spec = SERVERS[server];
  const named = process.env[spec.binEnv];
  if (named) {
    const version = executable(named) ? spec.version(named) : undefined;
    if (!version) throw new Problem(`${spec.binEnv}=${named} is not a working ${spec.binary} binary`);
    if (!version.ok) throw new Problem(`${spec.binEnv}=${named} is ${spec.binary} ${version.text}; need ${spec.need}`);
    return { bin: named, ...spec.extra(named), version: version.text, from: spec.binEnv };
  }
  for (const [bin, from] of [
    [join(binDir, spec.binary), 'installed earlier into .servers/bin'],
    [which(spec.binary), 'PATH'],
  ]) {
    if (!bin || !executable(bin)) continue;
    const version = spec.version(bin);
    if (!version) {
      say(`${server}: ignoring ${shown(bin)} (${from}): it does not run`);
    } else if (!version.ok) {
      say(`${server}: ignoring ${shown(bin)} (${from}): version ${version.text}, need ${spec.need}`);
    } else {
      return { bin, ...spec.extra(bin), version: version.text, from };
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Debian packages through a private apt set-up

/** The Debian mirror this machine already uses (deb822 *.sources, or one-line *.list / sources.list). */
function debianMirror() {
  if (process.env.VIP_DEBIAN_MIRROR) return process.env.VIP_DEBIAN_MIRROR.replace(/\/+$/, '');
  const files = [];
  const partsDir = '/etc/apt/sources.list.d';
  if (existsSync(partsDir)) for (const name of readdirSync(partsDir).sort()) files.push(join(partsDir, name));
  files.push('/etc/apt/sources.list');
  for (const file of files) {
    if (!/\.(sources|list)$/.test(file) || !existsSync(file)) continue;
    const text = readFileSync(file, 'utf8');
    const uris = file.endsWith('.sources')
      ? [...text.matchAll(/^URIs:\s*(.+)$/gim)].flatMap((match) => match[1].trim().split(/\s+/))
      : [...text.matchAll(/^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)/gm)].map((match) => match[1]);
    // The main archive, not debian-security / debian-debug / ports.
    const main = uris.find((uri) => /\/debian\/?$/.test(uri));
    if (main) return main.replace(/\/+$/, '');
  }
  return undefined;
}

function aptOptions(suite) {
  return [
    '-o', `Dir::Etc::SourceList=${join(aptDir, `${suite}.list`)}`,
    '-o', 'Dir::Etc::SourceParts=/dev/null',
    // One lists dir per suite: `apt-get update` deletes lists its sources do not name.
    '-o', `Dir::State::Lists=${join(aptDir, 'lists', suite)}`,
    '-o', `Dir::Cache=${join(aptDir, 'cache')}`,
    // Nothing of the machine's state or pinning: what is installed is irrelevant
    // to a download, and a pin could hide the suite we ask for.
    '-o', 'Dir::State::status=/dev/null',
    '-o', 'Dir::Etc::Preferences=/dev/null',
    '-o', 'Dir::Etc::PreferencesParts=/dev/null',
    '-o', 'Debug::NoLocking=1',
    // Only what `apt-get download` needs: no translations, no other
    // architectures, and the indexes kept compressed on disk.
    '-o', 'Acquire::Languages=none',
    '-o', `APT::Architectures=${nativeArchitecture()}`,
    '-o', 'Acquire::GzipIndexes=true',
    '-o', 'Acquire::Retries=2',
    '-o', 'Acquire::http::Timeout=30',
    // As root apt would download as the _apt user, who may not write into .servers.
    '-o', 'APT::Sandbox::User=root',
  ];
}

let arch;
function nativeArchitecture() {
  arch ??= spawnSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).stdout?.trim() || 'amd64';
  return arch;
}

function apt(suite, args) {
  const result = spawnSync('apt-get', [...aptOptions(suite), ...args], { cwd: debsDir, encoding: 'utf8', timeout: 600_000 });
  if (result.error) return { ok: false, problems: result.error.message, tail: '' };
  const lines = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim().split('\n');
  // "Err:1 URL" is followed by an indented line with the reason.
  let problems = lines.filter((line, i) => /^(E|Err):/.test(line) || (/^\s/.test(line) && /^Err:/.test(lines[i - 1] ?? '')));
  if (problems.length === 0) problems = lines.filter((line) => /^W:/.test(line));
  return { ok: result.status === 0, problems: problems.slice(-8).join('\n'), tail: lines.slice(-6).join('\n') };
}

const cachedDeb = (name) => readdirSync(debsDir).find((file) => file.startsWith(`${name}_`) && file.endsWith('.deb'));

/** Download `packages` of one suite into .servers/apt/debs: from the machine's mirror, else (old suites) the archive. */
function downloadSuite(suite, packages, mirror) {
  const failures = [];
  const mirrors = packages.some((pkg) => pkg.archived) ? [...new Set([mirror, ARCHIVE_MIRROR])] : [mirror];
  for (const uri of mirrors) {
    mkdirSync(join(aptDir, 'lists', suite, 'partial'), { recursive: true });
    writeFileSync(join(aptDir, `${suite}.list`), `deb [signed-by=${KEYRING}] ${uri} ${suite} main\n`);
    say(`downloading ${packages.map((pkg) => pkg.name).join(' + ')} (Debian ${suite}) from ${uri}`);
    // apt-get update exits 0 even when it could not fetch an index; its Err:/W:/E: lines tell.
    const update = apt(suite, ['update']);
    if (!update.ok || update.problems) {
      failures.push(`apt-get update for ${uri} ${suite} failed:\n${update.problems || update.tail}`);
      continue;
    }
    const failed = [];
    for (const pkg of packages) {
      const download = apt(suite, ['download', `${pkg.name}/${suite}`]);
      if (!download.ok) failed.push(`apt-get download ${pkg.name}/${suite} from ${uri} failed:\n${download.problems || download.tail}`);
    }
    if (failed.length === 0) return;
    failures.push(...failed);
  }
  throw new Problem(failures.join('\n'));
}

function aptMissing() {
  const missing = [];
  if (!which('apt-get')) missing.push('apt-get');
  if (!which('dpkg-deb')) missing.push('dpkg-deb');
  if (!existsSync(KEYRING)) missing.push(`the Debian archive keyring ${KEYRING} (package debian-archive-keyring)`);
  return missing;
}

/** Install one server from its Debian packages into .servers/bin; returns where it came from. */
function installFromDebian(server, mirror) {
  const packages = PACKAGES[server];
  const suite = packages[0].suite;
  for (const sub of ['cache/archives/partial', 'debs']) mkdirSync(join(aptDir, sub), { recursive: true });
  // Packages downloaded by an earlier run stay in .servers/apt/debs: no network needed again.
  const absent = packages.filter((pkg) => !cachedDeb(pkg.name));
  if (absent.length) downloadSuite(suite, absent, mirror);

  const unpacked = join(aptDir, 'unpacked');
  mkdirSync(binDir, { recursive: true });
  for (const pkg of packages) {
    const deb = cachedDeb(pkg.name);
    if (!deb) throw new Problem(`${pkg.name}: apt-get download left no .deb in ${shown(debsDir)}`);
    rmSync(unpacked, { recursive: true, force: true });
    const result = spawnSync('dpkg-deb', ['-x', join(debsDir, deb), unpacked], { encoding: 'utf8' });
    if (result.status !== 0) throw new Problem(`dpkg-deb -x ${deb} failed: ${result.stderr || result.error?.message}`);
    for (const name of pkg.binaries) {
      const found = ['usr/bin', 'usr/sbin', 'bin'].map((sub) => join(unpacked, sub, name)).find(executable);
      if (!found) throw new Problem(`${deb} does not contain ${name}`);
      // A plain file, not a link into the unpacked tree: .servers/bin keeps working if the checkout moves.
      rmSync(join(binDir, name), { force: true });
      renameSync(found, join(binDir, name));
    }
  }
  rmSync(unpacked, { recursive: true, force: true });
  return `Debian ${suite} package${packages.length > 1 ? 's' : ''} ${packages.map((pkg) => pkg.name).join(' + ')}`;
}

// ---------------------------------------------------------------------------

function describe(server, entry) {
  if (entry.endpoints || entry.addr) {
    const also = entry.bin ? `; ${server} ${entry.version} at ${shown(entry.bin)} for tests that start their own` : `; tests that start their own ${server} need a binary (${SERVERS[server].binEnv})`;
    return `${server}: the running server at ${(entry.endpoints ?? [entry.addr]).join(', ')} (${entry.from})${also}`;
  }
  return `${server} ${entry.version}: ${shown(entry.bin)} (${entry.from})`;
}

function main() {
  const result = {};
  const toInstall = [];
  for (const server of Object.keys(SERVERS)) {
    const external = SERVERS[server].external();
    let binary;
    try {
      binary = findBinary(server);
    } catch (error) {
      // A broken VIP_*_BIN does not matter when a running server is given.
      if (!external) throw error;
    }
    if (external) {
      const { label: _label, ...where } = external;
      const { from: _from, ...local } = binary ?? {};
      result[server] = { ...where, ...local };
      // The fault tests (restarts, a 3-member cluster, ACLs) start servers of their own: they need the binary too.
      if (!binary) toInstall.push(server);
    } else if (binary) {
      result[server] = binary;
    } else {
      toInstall.push(server);
    }
  }

  if (toInstall.length && checkOnly) {
    for (const server of Object.keys(SERVERS)) {
      if (result[server]) say(describe(server, result[server]));
      else say(`${server}: not found; \`node scripts/install-servers.mjs\` would install it from Debian packages into .servers/`);
    }
    process.exit(1);
  }
  const failures = [];
  if (toInstall.length) {
    const missing = aptMissing();
    const mirror = debianMirror() ?? 'http://deb.debian.org/debian';
    for (const server of toInstall) {
      try {
        if (missing.length) throw new Problem(`this machine has no ${missing.join(', no ')}, so it cannot be installed from Debian packages`);
        const source = installFromDebian(server, mirror);
        const binary = findBinary(server);
        if (!binary || binary.bin !== join(binDir, SERVERS[server].binary)) throw new Problem('it was unpacked into .servers/bin but does not run there');
        const { from: _from, ...local } = binary;
        result[server] = result[server] ? { ...result[server], ...local } : { ...binary, from: `installed now from ${source}` };
      } catch (error) {
        if (!(error instanceof Problem)) throw error;
        // With a running server given, only the tests that start their own are left without one (describe() says so).
        if (result[server]) say(`${server}: could not install a binary as well (${error.message})`);
        else failures.push(`${server} is missing: ${error.message}\nWhat to do:\n${HOW_TO[server]}`);
      }
    }
  }
  if (failures.length) {
    for (const server of Object.keys(SERVERS)) if (result[server]) say(describe(server, result[server]));
    throw new Problem(failures.join('\n\n'));
  }

  for (const server of Object.keys(SERVERS)) say(describe(server, result[server]));
  if (checkOnly) return;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'servers.json'), `${JSON.stringify(result, null, 2)}\n`);
}

try {
  main();
} catch (error) {
  if (!(error instanceof Problem)) throw error;
  console.error(`[servers] ${error.message}`);
  process.exit(1);
}
