/**
 * The `vip` command: run a command only while this node leads (like
 * `consul lock` and `etcdctl lock`), and look at an election from a shell.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { Candidate, sameHolder, VipOptionError, VipStoreError, VipTimeoutError, type Holder, type LockStore } from '@vip/core';
import { openStore, redactConnectionString } from './connection.js';
import { parseListenAddress, serveHttp, VipHttpError, type HttpServer } from './http.js';
import { CliUsageError as UsageError, didYouMean, parseCommandLine, type OptionsSpec } from './cli-args.js';
import { isWrongServer, OutageReporter, plainCause } from './outage.js';
import { Supervisor } from './supervisor.js';

const STORE_HELP = `--store URL      the store: etcd://h:2379[,h:2379], etcds://..., consul://h:8500,
                   consuls://..., memory:// (default: $VIP_STORE). For Consul, an ACL
                   token is taken from $CONSUL_HTTP_TOKEN, as the consul command does`;

const HELP: Record<string, string> = {
  main: `vip: leader election over etcd and Consul from the shell

Usage:
  vip run    --store URL --path P [options] -- COMMAND [ARGS...]
  vip status --store URL --path P [--json] [--timeout SECONDS]
  vip watch  --store URL --path P [--json]
  vip COMMAND --help

Commands:
  run      campaign for P and run COMMAND only while this node leads
  status   print the current leader of P (exit 0), or that there is none (exit 3)
  watch    print a line each time the leader of P changes, until interrupted

Example:
  vip run --store etcd://127.0.0.1:2379 --path /jobs/report -- node report.js`,
  run: `vip run: run a command only while this node leads

Usage: vip run --store URL --path P [options] -- COMMAND [ARGS...]

  ${STORE_HELP}
  --path P         the election key every node of this job shares (required)
  --id ID          this node's id (default: hostname-pid-random)
  --value V        a string every node sees while this node leads (default: '')
  --ttl SECONDS    how long the store keeps a leader that stopped refreshing (default 10;
                   Consul needs 10 to 86400)
  --grace SECONDS  on stop (SIGINT or SIGTERM to vip): how long COMMAND may take to exit
                   after SIGTERM before SIGKILL (default 10; 0: SIGKILL right after SIGTERM).
                   On loss of leadership the time between SIGTERM and SIGKILL is
                   min(--grace, ttl/5), and both come before the local deadline (see below)
  --http HOST:PORT serve /metrics (Prometheus text; needs prom-client installed), /healthz
                   (200 or 503 with a reason) and /leader (JSON) on HOST:PORT, e.g. 127.0.0.1:9464
                   or :9464 for every interface. Started before COMMAND: an address that
                   cannot be served stops vip at once (exit 1; exit 2 when malformed)
  --restart        start COMMAND again when it exits while this node still leads, after a
                   backoff (250 ms doubling to 10 s, with jitter; reset once COMMAND ran
                   10 s). Default: resign and exit with COMMAND's exit code, as consul lock does
  -h, --help       this help

COMMAND runs in a process group of its own with VIP_TOKEN (the fencing token of this term),
VIP_PATH, VIP_ID and VIP_VALUE in its environment; signals go to the whole group.
SIGINT or SIGTERM to vip go to COMMAND; once it has exited, vip resigns so another node
takes over at once, and exits. When COMMAND exits, whatever it left running in its group is
killed. When the store stops confirming leadership, COMMAND gets SIGTERM early enough that
its SIGKILL (min(--grace, ttl/5) later) still comes before vip's local deadline
(ttl - ttl/5 after the last confirmed refresh): by then another node may start its copy.
If vip itself dies, even by SIGKILL, COMMAND and everything it started are killed too: a
watchdog (sh) that outlives vip kills the group (Linux, macOS and other POSIX systems); on
Linux the kernel's parent-death signal (setpriv from util-linux) backs it up.

Example:
  vip run --store etcd://127.0.0.1:2379 --path /jobs/report --ttl 10 --grace 30 -- node report.js`,
  status: `vip status: who leads P now

Usage: vip status --store URL --path P [--json] [--timeout SECONDS]

  ${STORE_HELP}
  --path P         the election key (required)
  --json           print {"leader": {"id", "value", "token"}} or {"leader": null}
  --timeout SECONDS  give up when the store has not answered within SECONDS (default 5)
  -h, --help       this help

Exit code: 0 when P has a leader, 3 when it has none, 2 on bad usage, 1 on store errors
(including no answer within --timeout).

Example:
  vip status --store consul://127.0.0.1:8500 --path jobs/report --json`,
  watch: `vip watch: follow the leader of P

Usage: vip watch --store URL --path P [--json]

  ${STORE_HELP}
  --path P         the election key (required)
  --json           one JSON object per line: {"leader": {"id", "value", "token"} | null,
                   "seen": when this watch saw the change (ISO 8601)}
  -h, --help       this help

Prints the current leader, then one line per change (a new term has a new token), until
SIGINT or SIGTERM. The time on each line is when vip watch saw the change: the stores keep
no start time of a term. When the store is unreachable, a line on stderr says so (and one
when it is back); vip watch keeps trying until interrupted.

Example:
  vip watch --store etcd://127.0.0.1:2379 --path /jobs/report`,
};

// -h/--help is every command's (cli-args.ts).
const common = {
  store: { type: 'string', value: 'URL', example: 'etcd://127.0.0.1:2379' },
  path: { type: 'string', value: 'P', example: '/jobs/report' },
  json: { type: 'boolean' },
} as const satisfies OptionsSpec;

const statusOptions = {
  ...common,
  timeout: { type: 'string', value: 'SECONDS', example: '5' },
} as const satisfies OptionsSpec;

const runOptions = {
  store: common.store,
  path: common.path,
  id: { type: 'string', value: 'ID', example: 'node-1' },
  value: { type: 'string', value: 'V', example: 'http://10.0.0.7:8080' },
  ttl: { type: 'string', value: 'SECONDS', example: '10' },
  grace: { type: 'string', value: 'SECONDS', example: '10' },
  http: { type: 'string', value: 'HOST:PORT', example: '127.0.0.1:9464' },
  restart: { type: 'boolean' },
} as const satisfies OptionsSpec;

function number(command: string, flag: string, text: string | undefined, fallback: number, zero = false): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < 0 || (value === 0 && !zero)) {
    throw new UsageError(`--${flag} must be a number of seconds ${zero ? '>= 0' : 'greater than 0'} (got ${JSON.stringify(text)})`, command);
  }
  return value;
}

/** The adapter options the environment gives, as the stores' own tools read them. */
const storeOptions = (): { consulToken?: string } =>
  process.env.CONSUL_HTTP_TOKEN ? { consulToken: process.env.CONSUL_HTTP_TOKEN } : {};

function required(command: string, values: { store?: string | undefined; path?: string | undefined }): { store: string; path: string } {
  const store = values.store ?? process.env.VIP_STORE;
  if (!store) throw new UsageError('--store is required (or set VIP_STORE), e.g. --store etcd://127.0.0.1:2379', command);
  if (!values.path) throw new UsageError('--path is required, e.g. --path /jobs/report', command);
  return { store, path: values.path };
}

/** `seen`: when this process saw the term (vip watch); the stores keep no start time of a term. */
function show(holder: Holder | null, json: boolean, seen?: Date): string {
  if (json) {
    const leader = holder && { id: holder.id, value: holder.value, token: holder.token.toString() };
    return JSON.stringify(seen ? { leader, seen: seen.toISOString() } : { leader });
  }
  return holder ? `leader: ${holder.id} (token ${holder.token}, value ${JSON.stringify(holder.value)})` : 'no leader';
}

/** Reads the first state of the key, then each change, until `signal` aborts. */
async function follow(
  store: LockStore,
  path: string,
  signal: AbortSignal,
  onHolder: (holder: Holder | null) => boolean | void,
  trouble?: (error: Error | null) => void,
) {
  for await (const holder of store.watch(path, signal, trouble)) {
    if (onHolder(holder) === false) return;
  }
}

class StoreTimeout extends Error {}

async function status(argv: string[]): Promise<number> {
  const { values } = parseCommandLine('status', argv, statusOptions);
  if (values.help) return help('status');
  const { store: url, path } = required('status', values);
  const seconds = number('status', 'timeout', values.timeout, 5);
  const store = await openStore(url, storeOptions());
  const controller = new AbortController();
  let found: Holder | null = null;
  // A store's watch retries an unreachable server on its own; the last error it
  // reports (if it does) is the cause we give.
  let trouble: Error | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreTimeout()), seconds * 1000);
  });
  try {
    await Promise.race([
      follow(
        store,
        path,
        controller.signal,
        (holder) => {
          found = holder;
          return false;
        },
        (error) => (trouble = error),
      ),
      late,
    ]);
  } catch (error) {
    const where = redactConnectionString(url);
    const why =
      error instanceof StoreTimeout ? `no answer within ${seconds} s (--timeout)${trouble ? `; last error: ${plainCause(trouble)}` : ''}` : plainCause(error);
    throw new Error(`could not read ${JSON.stringify(path)} from the store ${where}: ${why}`, { cause: error });
  } finally {
    clearTimeout(timer);
    controller.abort();
    // Bounded: closing a client that never connected may wait on the server too.
    await Promise.race([store.close().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
  }
  console.log(show(found, values.json));
  return found ? 0 : 3;
}

async function watch(argv: string[]): Promise<number> {
  const { values } = parseCommandLine('watch', argv, common);
  if (values.help) return help('watch');
  const { store: url, path } = required('watch', values);
  const store = await openStore(url, storeOptions());
  const controller = new AbortController();
  const { signal } = controller;
  const stop = (): void => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const where = redactConnectionString(url);
  // Data on stdout; what happens to the store on stderr, once per outage.
  const outage = new OutageReporter({ store: where, log: (line) => process.stderr.write(`vip watch: ${line}\n`) });
  let shown: Holder | null | undefined;
  try {
    // A watch that cannot go on (the store unreachable before its first answer)
    // is started again: vip watch follows until interrupted, as vip run does.
    for (let attempt = 0; !signal.aborted; attempt++) {
      try {
        await follow(
          store,
          path,
          signal,
          (holder) => {
            outage.answered();
            attempt = 0;
            if (shown !== undefined && sameHolder(shown, holder)) return; // the same state, read again after a restart
            shown = holder;
            const now = new Date();
            console.log(values.json ? show(holder, true, now) : `${now.toISOString()}  ${show(holder, false)}`);
          },
          (error) => (error ? outage.failed(error) : outage.answered()),
        );
      } catch (error) {
        if (signal.aborted) break;
        if (isWrongServer(error)) throw new Error(`the store ${where}: ${plainCause(error)}`, { cause: error });
        outage.failed(error);
      }
      // Resolves early (rejecting) once interrupted: the loop then ends.
      await delay(Math.min(5000, 250 * 2 ** Math.min(attempt, 5)), undefined, { signal }).catch(() => {});
    }
  } finally {
    outage.close();
    await store.close();
  }
  return 0;
}

async function run(argv: string[]): Promise<number> {
  // The command is everything after "--", and only that (cli-args.ts): a stray
  // word before it (a typo, a flag's value without its flag) is never run.
  const { values, command: positionals } = parseCommandLine('run', argv, runOptions, { command: true });
  if (values.help) return help('run');
  const { store: url, path } = required('run', values);
  const ttl = number('run', 'ttl', values.ttl, 10);
  const grace = number('run', 'grace', values.grace, 10, true);
  if (values.http !== undefined) listenAddress(values.http);
  const store = await openStore(url, storeOptions());
  let candidate: Candidate;
  try {
    candidate = new Candidate(store, {
      path,
      ttl,
      ...(values.id !== undefined ? { id: values.id } : {}),
      ...(values.value !== undefined ? { value: values.value } : {}),
    });
  } catch (error) {
    await store.close();
    // In the CLI's words: the flag, not the class and option behind it.
    if (error instanceof VipOptionError && ['path', 'id', 'value', 'ttl'].includes(error.option)) {
      throw asFlag(error, `--${error.option}`);
    }
    throw error;
  }
  let server: HttpServer | undefined;
  if (values.http !== undefined) {
    try {
      server = await serve(candidate, values.http);
    } catch (error) {
      await store.close();
      throw error;
    }
    log(`serving /metrics, /healthz and /leader on ${server.url}`);
  }
  const where = redactConnectionString(url);
  // Store errors: one line when the store becomes unreachable, a summary while
  // it stays so, one line when it answers again (outage.ts); the store's
  // answers are seen through health(), which every answer, a watch's included, clears.
  const outage = new OutageReporter({ store: where, log });
  let wrongServer: ((code: number) => void) | undefined;
  const wrong = new Promise<number>((resolve) => (wrongServer = resolve));
  const onStoreError = (error: Error): void => {
    // A listener's failure or another non-store error: said as it is.
    if (!(error instanceof VipStoreError || error instanceof VipTimeoutError)) return log(`error: ${error.message}`);
    if (!isWrongServer(error)) return outage.failed(error);
    if (!wrongServer) return;
    log(`the store ${where}: ${plainCause(error)}`);
    wrongServer(1);
    wrongServer = undefined;
  };
  // Events the store's answers bring say at once that it answers (the poll below could be late
  // for an outage that starts right after the first read: it would be taken for "never reached").
  for (const event of ['change', 'select', 'refresh'] as const) candidate.on(event, () => outage.answered());
  const poll = setInterval(() => {
    const health = candidate.health();
    if (health.state !== 'starting' && health.state !== 'stopped' && health.unreachableFor === null) outage.answered();
  }, 250);
  poll.unref();
  const supervisor = new Supervisor(candidate, {
    command: positionals[0]!,
    args: positionals.slice(1),
    grace,
    restart: values.restart,
    log,
    onStoreError,
  });
  try {
    const running = supervisor.run();
    const code = await Promise.race([running, wrong]);
    if (wrongServer !== undefined) return code;
    // The address is not the store's (only said of one that never answered as
    // the store, so this node cannot lead): stop as on SIGTERM, whatever runs ends first.
    await supervisor.stop('not the store');
    await running;
    return 1;
  } finally {
    clearInterval(poll);
    outage.close();
    await server?.close();
    await store.close();
  }
}

function log(line: string): void {
  process.stderr.write(`vip run: ${line}\n`);
}

/** A library option error (`X: option "ttl" must be …`) in the CLI's words: `--ttl must be …`. */
function asFlag(error: VipOptionError, flag: string): UsageError {
  return new UsageError(`${flag} ${error.message.slice(error.message.indexOf('must be'))}`, 'run');
}

/** Checks an --http address before anything starts; a malformed one is a usage error. */
function listenAddress(text: string): void {
  try {
    parseListenAddress(text, 'vip run', '--http');
  } catch (error) {
    if (!(error instanceof VipOptionError)) throw error;
    throw asFlag(error, '--http');
  }
}

/**
 * The --http server. Without prom-client installed it still serves /healthz
 * and /leader (what probes need), and says how to get /metrics.
 */
async function serve(candidate: Candidate, listen: string): Promise<HttpServer> {
  try {
    return await serveHttp(candidate, { listen, where: '--http' });
  } catch (error) {
    if (!(error instanceof VipHttpError) || error.code !== undefined || !/prom-client/.test(error.message)) throw error;
    log('--http: prom-client is not installed, so /metrics is not served (npm install prom-client); /healthz and /leader are');
    return serveHttp(candidate, { listen, where: '--http', metrics: false });
  }
}

function help(command: string): number {
  console.log(HELP[command] ?? HELP.main);
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'run':
        return await run(rest);
      case 'status':
        return await status(rest);
      case 'watch':
        return await watch(rest);
      case undefined:
        // A script that forgot its command must not carry on as if vip had done something.
        console.error(`${HELP.main}\n`);
        throw new UsageError('a command is required: run, status or watch', 'main');
      case '-h':
      case '--help':
      case 'help':
        return help(rest[0] ?? 'main');
      default: {
        const guess = didYouMean(command, ['run', 'status', 'watch']);
        throw new UsageError(`unknown command ${JSON.stringify(command)}${guess ? ` (did you mean ${guess}?)` : '; expected run, status or watch'}`, 'main');
      }
    }
  } catch (error) {
    const usage = error instanceof UsageError;
    const message = (error as Error).message.replace(/^vip: /, '');
    if (usage || (error as { name?: string }).name === 'VipConnectionError') {
      const where = error instanceof UsageError ? error.command : (command ?? 'main');
      const prefix = where === 'main' ? 'vip' : `vip ${where}`;
      console.error(`${prefix}: ${message}\nRun "${prefix} --help" for usage.`);
      return 2;
    }
    console.error(`${command === 'run' || command === 'status' || command === 'watch' ? `vip ${command}` : 'vip'}: ${message}`);
    return 1;
  }
}
