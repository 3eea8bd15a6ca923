import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Candidate } from './candidate.js';
import { VipOptionError } from './errors.js';
import { MemoryStore } from './memory-store.js';

// Whatever a user passes, the constructor either accepts it or throws a
// VipOptionError naming the option: never another error, never a candidate
// with a nonsensical timing.
describe('candidate options, property-based', () => {
  const store = new MemoryStore();
  const anything = fc.oneof(fc.anything(), fc.double(), fc.integer(), fc.constant(undefined));

  it('arbitrary option values are accepted or refused with an error naming the option', () => {
    fc.assert(
      fc.property(
        fc.record({ path: anything, ttl: anything, refreshInterval: anything, safetyMargin: anything, value: anything, id: anything }, { requiredKeys: [] }),
        (options) => {
          try {
            const candidate = new Candidate(store, options as never);
            expect(typeof candidate.localid()).toBe('string');
            expect(candidate.ttl()).toBeGreaterThan(0);
          } catch (error) {
            expect(error).toBeInstanceOf(VipOptionError);
            expect(['path', 'ttl', 'refreshInterval', 'safetyMargin', 'value', 'id']).toContain((error as VipOptionError).option);
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('valid timings are always accepted', () => {
    fc.assert(
      fc.property(fc.double({ min: 0.01, max: 1e6, noNaN: true }), fc.double({ min: 0, max: 0.9, noNaN: true }), (ttl, marginShare) => {
        const safetyMargin = ttl * marginShare;
        const refreshInterval = (ttl - safetyMargin) / 2;
        fc.pre(refreshInterval > 0);
        expect(() => new Candidate(store, { path: '/p', ttl, safetyMargin, refreshInterval })).not.toThrow();
      }),
    );
  });
});
