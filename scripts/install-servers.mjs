#!/usr/bin/env node
// Gets real etcd (3.5) and Consul servers for the tests, the demo and the
// benchmarks, into the git-ignored folder .servers/, and writes what it chose
// to .servers/servers.json for the test harness.
//
// Order of preference, per server:
//   1. endpoints the user gives: VIP_ETCD_ENDPOINTS (comma-separated http URLs),
//      VIP_CONSUL_ADDR (an http URL): nothing is installed for that server;
//   2. a binary the user names: VIP_ETCD_BIN (+ VIP_ETCDCTL_BIN), VIP_CONSUL_BIN;
//   3. what an earlier run put in .servers/bin (the second run costs nothing);
//   4. etcd / consul on PATH;
//   5. Debian packages (etcd-server + etcd-client from trixie: 3.5; consul from
//      bullseye: 1.8.7), fetched with apt through a private sources list, lists
//      and cache inside .servers/apt, unpacked with dpkg-deb. The machine's own
//      apt set-up is never touched. Both are static Go binaries that need only libc.
//
// `--check` reports what would be used and installs nothing.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, '.servers');
const binDir = join(dir, 'bin');
const checkOnly = process.argv.includes('--check');
const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

const say = (line) => console.log(`[servers] ${line}`);

function version(bin, args) {
  const result = spawnSync(bin, args, { encoding: 'utf8', timeout: 20_000 });
  if (result.status !== 0) return undefined;
  return `${result.stdout}${result.stderr}`;
}

function etcdVersion(bin) {
  const match = /etcd Version:\s*(\d+)\.(\d+)\.(\d+)/.exec(version(bin, ['--version']) ?? '');
  return match ? { text: `${match[1]}.${match[2]}.${match[3]}`, major: Number(match[1]), minor: Number(match[2]) } : undefined;
}

function consulVersion(bin) {
  const match = /Consul v(\d+\.\d+\.\d+)/.exec(version(bin, ['version']) ?? '');
  return match ? { text: match[1] } : undefined;
}

function onPath(name) {
  for (const folder of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(folder, name);
    if (folder && existsSync(candidate) && !candidate.startsWith(binDir)) return candidate;
  }
  return undefined;
}

/** The Debian mirror this machine already uses (deb822 .sources or one-line sources.list). */
function debianMirror() {
  const places = [];
  const partsDir = '/etc/apt/sources.list.d';
  if (existsSync(partsDir)) for (const name of readdirSync(partsDir)) places.push(join(partsDir, name));
  places.push('/etc/apt/sources.list');
  for (const file of places) {
    if (!existsSync(file) || !/\.(sources|list)$/.test(file)) continue;
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(/^(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s+)?)(\S+)/gm)) {
      const uri = match[1];
      if (/\/debian\/?$/.test(uri)) return uri.replace(/\/$/, '');
    }
  }
  return undefined;
}

function apt(aptDir, args) {
  const options = [
    '-o', `Dir::Etc::SourceList=${join(aptDir, 'sources.list')}`,
    '-o', 'Dir::Etc::SourceParts=/dev/null',
    '-o', `Dir::State::Lists=${join(aptDir, 'lists')}`,
    '-o', `Dir::Cache=${join(aptDir, 'cache')}`,
    '-o', 'Dir::State::status=/dev/null',
    '-o', 'Debug::NoLocking=1',
    '-o', 'Acquire::Retries=3',
    '-o', 'APT::Sandbox::User=root',
  ];
  const result = spawnSync('apt-get', [...options, ...args], { cwd: join(aptDir, 'debs'), encoding: 'utf8', timeout: 600_000 });
  if (result.status !== 0) {
    throw new Error(`apt-get ${args.join(' ')} failed:\n${(result.stderr || result.stdout).trim().split('\n').slice(-8).join('\n')}`);
  }
}

/** Download Debian packages and unpack the named binaries into .servers/bin. */
function installFromDebian(packages, binaries) {
  if (!onPath('apt-get') || !onPath('dpkg-deb')) {
    throw new Error('apt-get and dpkg-deb are not available on this machine');
  }
  const mirror = debianMirror();
  if (!mirror) throw new Error('no Debian mirror found in /etc/apt/sources.list.d or /etc/apt/sources.list');
  if (!existsSync(KEYRING)) throw new Error(`the Debian archive keyring ${KEYRING} is missing`);
  const aptDir = join(dir, 'apt');
  for (const sub of ['lists/partial', 'cache/archives/partial', 'debs']) mkdirSync(join(aptDir, sub), { recursive: true });
  const suites = [...new Set(packages.map((pkg) => pkg.suite))];
  writeFileSync(
    join(aptDir, 'sources.list'),
    suites.map((suite) => `deb [signed-by=${KEYRING}] ${mirror} ${suite} main\n`).join(''),
  );
  say(`downloading ${packages.map((pkg) => `${pkg.name} (${pkg.suite})`).join(', ')} from ${mirror}`);
  apt(aptDir, ['update']);
  for (const pkg of packages) apt(aptDir, ['download', `${pkg.name}/${pkg.suite}`]);
  const unpacked = join(dir, 'root');
  mkdirSync(unpacked, { recursive: true });
  for (const file of readdirSync(join(aptDir, 'debs'))) {
    if (!file.endsWith('.deb')) continue;
    const result = spawnSync('dpkg-deb', ['-x', join(aptDir, 'debs', file), unpacked], { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`dpkg-deb -x ${file} failed: ${result.stderr}`);
  }
  mkdirSync(binDir, { recursive: true });
  for (const name of binaries) {
    const found = ['usr/bin', 'usr/sbin', 'bin'].map((sub) => join(unpacked, sub, name)).find((path) => existsSync(path));
    if (!found) throw new Error(`the packages did not contain ${name}`);
    rmSync(join(binDir, name), { force: true });
    symlinkSync(found, join(binDir, name));
  }
  // The unpacked binaries are all later runs need; the package lists are large.
  rmSync(aptDir, { recursive: true, force: true });
}

function resolveEtcd() {
  if (process.env.VIP_ETCD_ENDPOINTS) {
    const endpoints = process.env.VIP_ETCD_ENDPOINTS.split(',').map((entry) => entry.trim()).filter(Boolean);
    say(`etcd: using the endpoints in VIP_ETCD_ENDPOINTS (${endpoints.join(', ')}); tests that restart or kill etcd need a binary and start their own`);
    return { endpoints, ...resolveEtcdBinary(false) };
  }
  return resolveEtcdBinary(true);
}

function resolveEtcdBinary(required) {
  const candidates = [
    process.env.VIP_ETCD_BIN && { bin: process.env.VIP_ETCD_BIN, etcdctl: process.env.VIP_ETCDCTL_BIN, from: 'VIP_ETCD_BIN' },
    { bin: join(binDir, 'etcd'), etcdctl: join(binDir, 'etcdctl'), from: '.servers/bin' },
    onPath('etcd') && { bin: onPath('etcd'), etcdctl: onPath('etcdctl'), from: 'PATH' },
  ].filter(Boolean);
  for (const candidate of candidates) {
    if (!existsSync(candidate.bin)) continue;
    const found = etcdVersion(candidate.bin);
    if (!found) continue;
    if (found.major < 3 || (found.major === 3 && found.minor < 4)) {
      say(`etcd: ignoring ${candidate.bin} (${candidate.from}): version ${found.text}, need 3.4 or newer`);
      continue;
    }
    say(`etcd ${found.text}: ${candidate.bin} (${candidate.from})`);
    return { bin: candidate.bin, etcdctl: candidate.etcdctl, version: found.text };
  }
  if (checkOnly) {
    say('etcd: none found; a run without --check installs etcd 3.5 from Debian trixie into .servers/');
    return {};
  }
  try {
    installFromDebian(
      [
        { name: 'etcd-server', suite: 'trixie' },
        { name: 'etcd-client', suite: 'trixie' },
      ],
      ['etcd', 'etcdctl'],
    );
  } catch (error) {
    if (!required) return {};
    throw new Error(
      `could not install etcd: ${error.message}\n` +
        'Install etcd 3.5 yourself (https://github.com/etcd-io/etcd/releases) and put it on PATH or set VIP_ETCD_BIN=/path/to/etcd,\n' +
        'or point the tests at a running etcd with VIP_ETCD_ENDPOINTS=http://127.0.0.1:2379.',
    );
  }
  const found = etcdVersion(join(binDir, 'etcd'));
  if (!found) throw new Error('the installed etcd does not run');
  say(`etcd ${found.text}: installed into .servers/bin`);
  return { bin: join(binDir, 'etcd'), etcdctl: join(binDir, 'etcdctl'), version: found.text };
}

function resolveConsul() {
  if (process.env.VIP_CONSUL_ADDR) {
    say(`consul: using the agent at VIP_CONSUL_ADDR (${process.env.VIP_CONSUL_ADDR}); tests that restart Consul need a binary and start their own`);
    return { addr: process.env.VIP_CONSUL_ADDR, ...resolveConsulBinary(false) };
  }
  return resolveConsulBinary(true);
}

function resolveConsulBinary(required) {
  const candidates = [
    process.env.VIP_CONSUL_BIN && { bin: process.env.VIP_CONSUL_BIN, from: 'VIP_CONSUL_BIN' },
    { bin: join(binDir, 'consul'), from: '.servers/bin' },
    onPath('consul') && { bin: onPath('consul'), from: 'PATH' },
  ].filter(Boolean);
  for (const candidate of candidates) {
    if (!existsSync(candidate.bin)) continue;
    const found = consulVersion(candidate.bin);
    if (!found) continue;
    say(`consul ${found.text}: ${candidate.bin} (${candidate.from})`);
    return { bin: candidate.bin, version: found.text };
  }
  if (checkOnly) {
    say('consul: none found; a run without --check installs consul from Debian bullseye into .servers/');
    return {};
  }
  try {
    installFromDebian([{ name: 'consul', suite: 'bullseye' }], ['consul']);
  } catch (error) {
    if (!required) return {};
    throw new Error(
      `could not install consul: ${error.message}\n` +
        'Install Consul yourself (https://developer.hashicorp.com/consul/install) and put it on PATH or set VIP_CONSUL_BIN=/path/to/consul,\n' +
        'or point the tests at a running agent with VIP_CONSUL_ADDR=http://127.0.0.1:8500.',
    );
  }
  const found = consulVersion(join(binDir, 'consul'));
  if (!found) throw new Error('the installed consul does not run');
  say(`consul ${found.text}: installed into .servers/bin`);
  return { bin: join(binDir, 'consul'), version: found.text };
}

try {
  mkdirSync(dir, { recursive: true });
  const servers = { etcd: resolveEtcd(), consul: resolveConsul() };
  if (!checkOnly) writeFileSync(join(dir, 'servers.json'), `${JSON.stringify(servers, null, 2)}\n`);
} catch (error) {
  console.error(`[servers] ${error.message}`);
  process.exit(1);
}
