/**
 * The seed module's example: an HTTP router that only the elected node runs.
 * Start it on several machines (or several terminals) with the same store:
 *
 *   VIP_STORE=etcd://127.0.0.1:2379 PORT=8081 node dist/main.js
 *   VIP_STORE=etcd://127.0.0.1:2379 PORT=8082 node dist/main.js
 *
 * Exactly one serves; stop it (Ctrl-C) and another takes over at once.
 * Without VIP_STORE it uses memory:// (one process only).
 */
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { vip } from '@vip/vip';

const store = process.env.VIP_STORE ?? 'memory://';
const port = Number(process.env.PORT ?? 8080);
const id = process.env.NODE_ID ?? `router-${port}`;

const controller = vip(store);
const router = controller({ path: '/http_router', id, value: `http://127.0.0.1:${port}`, ttl: 10 }, async ({ signal, token }) => {
  // Only one copy of this runs across the cluster. It runs until `signal` aborts.
  const server: Server = createServer((request, response) => {
    response.setHeader('x-fencing-token', token.toString());
    response.end(`routed by ${id} (term ${token}): ${request.method} ${request.url}\n`);
  });
  server.listen(port);
  await once(server, 'listening');
  console.log(`${id}: routing on port ${port} (term ${token})`);
  await once(signal, 'abort');
  server.close();
  server.closeAllConnections();
  console.log(`${id}: router stopped`);
});

router.on('select', (value) => console.log(`${id}: elected; advertising ${value}`));
router.on('change', (value, leaderId) => console.log(`${id}: the router is ${leaderId ?? 'nobody'}${value ? ` at ${value}` : ''}`));
router.on('deselect', (reason) => console.log(`${id}: no longer the router (${reason})`));
router.on('error', (error) => console.warn(`${id}: ${error.message}`));

await router.start();
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void router.stop().then(() => process.exit(0)));
}
if (process.env.EXAMPLE_SECONDS) {
  // For a quick look: run this long, then stop gracefully.
  setTimeout(() => void router.stop().then(() => process.exit(0)), Number(process.env.EXAMPLE_SECONDS) * 1000);
}
