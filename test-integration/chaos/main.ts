/**
 * The long chaos run: `npm run chaos -- [--minutes 10] [--backend etcd|consul|both]
 * [--seed N] [--candidates 5] [--ttl 3]`. Both backends run side by side by
 * default. Prints the faults as they happen and a summary per backend: terms,
 * faults injected by kind, writes accepted and refused, the longest leaderless
 * gap; exits 1 if the checker found a violation or the run proved nothing
 * (`unexercised`: the same guard as the short run of `npm test`), and the event
 * log is then written to a file named in the output.
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { killAllChildren } from '../harness/index.js';
import { runChaos, summary, unexercised, type Backend, type ChaosReport } from './chaos.js';

const usage = `usage: npm run chaos -- [options]

  --minutes N        how long faults go on, per backend (default 10; fractions allowed)
  --backend NAME     etcd, consul or both (default both, side by side)
  --seed N           replay the fault schedule of an earlier run (default: random, printed);
                     the machine's timing still decides who leads when a fault strikes
  --candidates N     candidate processes (default 5)
  --ttl SECONDS      the candidates' TTL (default 3)

example: npm run chaos -- --minutes 2 --backend etcd --seed 12345`;

function fail(message: string): never {
  console.error(`chaos: ${message}\n\n${usage}`);
  process.exit(2);
}

const { values } = (() => {
  try {
    return parseArgs({
      options: {
        minutes: { type: 'string', default: '10' },
        backend: { type: 'string', default: 'both' },
        seed: { type: 'string' },
        candidates: { type: 'string', default: '5' },
        ttl: { type: 'string', default: '3' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
  } catch (error) {
    return fail((error as Error).message);
  }
})();
if (values.help) {
  console.log(usage);
  process.exit(0);
}
const number = (name: string, text: string, check: (n: number) => boolean, expected: string): number => {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || !check(value)) fail(`--${name} must be ${expected} (got ${JSON.stringify(text)})`);
  return value;
};
const minutes = number('minutes', values.minutes, (n) => n > 0, 'a positive number of minutes');
const candidates = number('candidates', values.candidates, (n) => Number.isInteger(n) && n >= 2 && n <= 50, 'a whole number from 2 to 50');
const ttl = number('ttl', values.ttl, (n) => n >= 2 && n <= 60, 'a number of seconds from 2 to 60 (etcd leases last at least 2 s)');
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : number('seed', values.seed, (n) => Number.isInteger(n) && n >= 0, 'a whole number');
const backends: Backend[] = values.backend === 'both' ? ['etcd', 'consul'] : values.backend === 'etcd' || values.backend === 'consul' ? [values.backend] : fail(`--backend must be etcd, consul or both (got ${JSON.stringify(values.backend)})`);

console.log(`chaos: seed ${seed}; ${backends.join(' and ')}; ${candidates} candidates, ttl ${ttl} s, faults for ${minutes} min`);
const reports: ChaosReport[] = [];
try {
  reports.push(
    ...(await Promise.all(
      backends.map((backend) =>
        runChaos({ backend, seed, durationMs: minutes * 60_000, candidates, ttl, onProgress: (line) => console.log(`[${backend}] ${line}`) }),
      ),
    )),
  );
} finally {
  await killAllChildren();
}
console.log('');
const failed = reports.filter((report) => report.violations.length > 0 || unexercised(report).length > 0);
for (const report of reports) {
  console.log(summary(report));
  if (failed.includes(report)) {
    const file = join(tmpdir(), `vip-chaos-${report.backend}-${report.seed}.jsonl`);
    writeFileSync(file, report.log.map((line) => JSON.stringify(line)).join('\n'));
    console.log(`  event log: ${file}`);
  }
}
console.log(`\nreplay: npm run chaos -- --seed ${seed} --minutes ${minutes} --backend ${values.backend} --candidates ${candidates} --ttl ${ttl}`);
process.exit(failed.length > 0 ? 1 : 0);
