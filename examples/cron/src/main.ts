/**
 * A scheduler that fires only on the leader and passes the fencing token to
 * its job, so that the resource the job writes to can refuse a stale leader.
 *
 *   VIP_STORE=etcd://127.0.0.1:2379 node dist/main.js     # on every node
 *
 * Without VIP_STORE it uses memory:// (one process only).
 */
import { vip } from '@vip/vip';

const store = process.env.VIP_STORE ?? 'memory://';
const everyMs = Number(process.env.EVERY_MS ?? 1000);

/**
 * Stands in for the database or bucket a job writes to. It remembers the
 * highest token it has seen and refuses writes that carry a lower one: that is
 * what makes a leader that was paused and woke up late harmless.
 */
const resource = {
  highest: 0n,
  write(token: bigint, what: string): void {
    if (token < this.highest) throw new Error(`refused write from stale term ${token} (current ${this.highest})`);
    this.highest = token;
    console.log(`  resource: accepted "${what}" with token ${token}`);
  },
};

const scheduler = vip(store)({ path: '/cron/nightly-report', ttl: 10 }, async ({ signal, token }) => {
  console.log(`leader (term ${token}): firing every ${everyMs} ms`);
  let run = 0;
  while (!signal.aborted) {
    run += 1;
    resource.write(token, `report #${run}`);
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, everyMs);
      signal.addEventListener('abort', () => (clearTimeout(timer), resolve(undefined)), { once: true });
    });
  }
  console.log(`term ${token} over: scheduler paused`);
});
scheduler.on('change', (_value, leaderId) => console.log(`scheduler leader: ${leaderId ?? 'none'}`));
scheduler.on('error', (error) => console.warn(error.message));

await scheduler.start();
const seconds = Number(process.env.EXAMPLE_SECONDS ?? 0);
const stop = (): void => void scheduler.stop().then(() => process.exit(0));
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
if (seconds > 0) setTimeout(stop, seconds * 1000);
