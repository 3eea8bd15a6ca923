import { MemoryBackend, MemoryStore } from './memory-store.js';
import { describeLockStore, FaultyStore } from './testing/index.js';

// MemoryStore runs the same conformance kit as the real adapters. Clients share
// one backend, each playing a separate process; a FaultyStore in front of a
// client plays the cut connection.
const backend = new MemoryBackend();

describeLockStore('MemoryStore', () => new MemoryStore({ backend }), {
  ttl: 5,
  expiry: { ttl: 0.3, within: 2 },
  partitionable: async () => {
    const store = new FaultyStore(new MemoryStore({ backend }));
    return { store, partition: () => void store.partition(), heal: () => void store.heal() };
  },
});
