/**
 * Property-based tests of what a real store does with arbitrary strings, shared
 * by test-integration/etcd/values.property.test.ts and
 * test-integration/consul/values.property.test.ts (issue #7, "Bad input, broadly").
 *
 * The contract (packages/core/src/store.ts, options.ts):
 * - `Holder.id` and `Holder.value` are "any string": every id and value a
 *   store accepts comes back exactly, code unit for code unit (lone
 *   surrogates, NUL, U+2028, emoji, the empty string), from compareAndSwap,
 *   refresh and watch, and to another store reading the key;
 * - a key the store accepts is stored under exactly that name (the store's
 *   documented mapping aside: Consul drops the leading "/"), and two keys with
 *   different names are independent;
 * - what a store or a candidate refuses is refused with a VipOptionError that
 *   names the option, and nothing is written;
 * - `limits.maxValueBytes` (id + value, UTF-8) is what a candidate may
 *   publish: up to it everything round-trips, one byte over it
 *   `new Candidate()` refuses the value.
 *
 * Each run works under its own key prefix, so runs never see each other.
 */
import { Candidate, VipOptionError, VipStoreError, type Claim, type Holder, type LockStore } from '@vip/core';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';

export interface ValuesTarget {
  /** A new store on the shared server (closed by the suite). */
  open(): LockStore;
  /** A unique prefix for this file, e.g. from uniquePrefix(). */
  readonly prefix: string;
  /** TTL in seconds for holds and candidates (Consul: at least 10). */
  readonly ttl: number;
  /** The name the server stores `key` under. */
  serverKey(key: string): string;
  /** The names of the keys under `prefix`, as the server has them, read without the store. */
  listKeys(prefix: string): Promise<string[]>;
  /**
   * Set when the server alone knows some of the keys it refuses, so that a
   * path `validateKey` accepted may still be refused at the first call (why, in words).
   * A candidate on such a path must then report that refusal on `error`, write
   * nothing, and stop cleanly.
   */
  readonly serverJudgesKeys?: string;
}

/**
 * A run that has not ended after this long is a hang (a watch that never
 * yields, a call that never answers): it fails the property instead of the
 * whole test timing out. Not a timing assertion: a run takes milliseconds.
 */
const RUN_TIMEOUT_MS = 20_000;

/** One UTF-16 code unit or code point, biased toward the characters that break things. */
const unit = fc.oneof(
  { weight: 6, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }) },
  // Lone surrogates: 'binary' never makes them.
  { weight: 1, arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }).map((code) => String.fromCharCode(code)) },
  {
    weight: 3,
    arbitrary: fc.constantFrom('', '\0', '\u2028', '\u2029', '\uFEFF', '\uFFFD', '🗳️', '👩‍👩‍👧', '"', '\\', ':::', '{', '}', '\n', '\r\n', '\t', ' ', '%', '%2F', '?', '#', '&', '+', '=', 'é', 'é'),
  },
);
/** Any string, built from `unit`. */
export const anyString = (maxLength = 40): fc.Arbitrary<string> => fc.array(unit, { maxLength }).map((parts) => parts.join(''));
/** Key segments: everything `anyString` has, plus path syntax. */
const keyPart = fc.oneof(
  { weight: 3, arbitrary: anyString(8) },
  { weight: 2, arbitrary: fc.constantFrom('/', '//', '.', '..', '/./', '/../', ' ', ' /', 'a b', 'ключ', '鍵', '🔑', '\uD800', '\uDFFF', 'x\uDC00y') },
);
/** Key segments a user would plausibly write: printable unicode, path syntax. */
const plausibleKeyPart = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: 'grapheme', maxLength: 6 }) },
  { weight: 2, arbitrary: fc.constantFrom('/', '.', '..', ' ', 'a b', 'ключ', '鍵', '🔑', '🗳️', '%2F', '?', '#', 'job-1', '_', '~') },
);
/**
 * The part of a key after the run's own prefix: unicode, "/", "..", spaces,
 * trailing slash, control characters, all of it; half of them made only of
 * what a user would plausibly write, so that enough keys are accepted.
 */
export const keySuffix: fc.Arbitrary<string> = fc.oneof(
  fc.array(keyPart, { maxLength: 5 }).map((parts) => parts.join('')),
  fc.array(plausibleKeyPart, { maxLength: 4 }).map((parts) => parts.join('')),
);

export const edgeStrings = ['', '\0', '\u2028', '🗳️', '\uD800', '\uDFFF', 'a\uDC00\uD800b', '{"id":"x","value":"y"}', 'id:::value', '\\"', ' ', 'é'];

/** What a store or candidate may throw when it refuses an argument: a VipOptionError naming one of `options`. */
function expectRefusal(error: unknown, options: string[]): void {
  expect(error, String(error)).toBeInstanceOf(VipOptionError);
  expect(options).toContain((error as VipOptionError).option);
  expect((error as Error).message).toContain(`"${(error as VipOptionError).option}"`);
}

/** The first thing a store's watch yields: the key's current state. */
async function current(store: LockStore, key: string): Promise<Holder | null> {
  const controller = new AbortController();
  try {
    for await (const holder of store.watch(key, controller.signal)) return holder;
    throw new Error(`the watch of ${JSON.stringify(key)} ended without yielding`);
  } finally {
    controller.abort();
  }
}

/** Exactly the same holder: identical id and value (code unit for code unit) and token. */
function expectHolder(actual: Holder | null, id: string, value: string, token?: bigint): Holder {
  expect(actual).not.toBeNull();
  const holder = actual!;
  expect(holder.id === id, `id ${JSON.stringify(holder.id)} should be ${JSON.stringify(id)}`).toBe(true);
  expect(holder.value === value, `value ${JSON.stringify(holder.value.slice(0, 80))} should be ${JSON.stringify(value.slice(0, 80))}`).toBe(true);
  expect(typeof holder.token).toBe('bigint');
  if (token !== undefined) expect(holder.token).toBe(token);
  return holder;
}

/** A value of exactly `bytes` UTF-8 bytes (Buffer.byteLength) made mostly of `piece`. */
function valueOfBytes(piece: string, bytes: number): string {
  const size = Buffer.byteLength(piece);
  const whole = Math.floor(bytes / size);
  const value = piece.repeat(whole) + 'x'.repeat(bytes - whole * size);
  expect(Buffer.byteLength(value)).toBe(bytes);
  return value;
}

export function describeValueProperties(name: string, target: ValuesTarget): void {
  const stores: LockStore[] = [];
  const open = (): LockStore => {
    const store = target.open();
    stores.push(store);
    return store;
  };
  afterAll(async () => {
    await Promise.all(stores.map((store) => store.close()));
  });
  let runs = 0;
  const runPrefix = (label: string): string => `${target.prefix}${label}-${++runs}/`;

  /**
   * The whole life of one term on `key` as two stores see it. Returns false when
   * the store refused the key or claim (after checking it said so clearly and wrote nothing).
   */
  async function roundTrip(a: LockStore, b: LockStore, prefix: string, key: string, claim: Claim, value2: string): Promise<boolean> {
    const { ttl } = target;
    let swapped;
    try {
      swapped = await a.compareAndSwap(key, null, claim, ttl);
    } catch (error) {
      expectRefusal(error, ['key', 'next']);
      expect(await target.listKeys(prefix)).toEqual([]);
      return false;
    }
    expect(swapped.ok).toBe(true);
    const held = expectHolder(swapped.holder, claim.id, claim.value);
    // Stored under exactly its name; read back by another store and by watch.
    expect(await target.listKeys(prefix)).toEqual([target.serverKey(key)]);
    expectHolder(await current(b, key), claim.id, claim.value, held.token);
    expectHolder(await current(a, key), claim.id, claim.value, held.token);
    expectHolder(await a.refresh(key, held, ttl), claim.id, claim.value, held.token);
    // Rewriting our own term publishes the new value, same token.
    const rewritten = await a.compareAndSwap(key, held, { id: claim.id, value: value2 }, ttl);
    expect(rewritten.ok).toBe(true);
    const held2 = expectHolder(rewritten.holder, claim.id, value2, held.token);
    expectHolder(await current(b, key), claim.id, value2, held.token);
    // Nobody else can take it meanwhile.
    const contender = await b.compareAndSwap(key, null, { id: `${claim.id}-other`, value: 'other' }, ttl);
    expect(contender.ok).toBe(false);
    // Released: free for everyone.
    expect(await a.compareAndSwap(key, held2, null, ttl)).toEqual({ ok: true, holder: null });
    expect(await current(b, key)).toBeNull();
    return true;
  }

  describe(`${name}: arbitrary strings, property-based, against a real server`, () => {
    it('every id and value the store accepts round-trips exactly (compareAndSwap, watch, refresh, another store)', async () => {
      const a = open();
      const b = open();
      let accepted = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.oneof({ weight: 4, arbitrary: anyString() }, { weight: 1, arbitrary: fc.constantFrom(...edgeStrings) }),
          fc.oneof({ weight: 4, arbitrary: anyString(200) }, { weight: 1, arbitrary: fc.constantFrom(...edgeStrings) }),
          anyString(),
          async (id, value, value2) => {
            const prefix = runPrefix('values');
            if (await roundTrip(a, b, prefix, `${prefix}key`, { id, value }, value2)) accepted++;
          },
        ),
        { numRuns: 60, timeout: RUN_TIMEOUT_MS, examples: edgeStrings.map((edge) => [edge, edge, edge] as [string, string, string]) },
      );
      expect(accepted).toBeGreaterThan(40);
    });

    it('every key the store accepts is stored under exactly its name and is independent of other keys; others are refused clearly', async () => {
      const a = open();
      const b = open();
      let accepted = 0;
      await fc.assert(
        fc.asyncProperty(keySuffix, keySuffix, anyString(), async (suffix, otherSuffix, value) => {
          const prefix = runPrefix('keys');
          const key = `${prefix}${suffix}`;
          const other = `${prefix}${otherSuffix}`;
          let taken;
          try {
            taken = await a.compareAndSwap(key, null, { id: 'keys', value }, target.ttl);
          } catch (error) {
            expectRefusal(error, ['key']);
            expect(await target.listKeys(prefix)).toEqual([]);
            // A refused key is refused by every operation, never read as some other key.
            await expect(Promise.resolve().then(() => current(b, key))).rejects.toBeInstanceOf(VipOptionError);
            return;
          }
          accepted++;
          expect(taken.ok).toBe(true);
          const held = expectHolder(taken.holder, 'keys', value);
          expect(await target.listKeys(prefix)).toEqual([target.serverKey(key)]);
          expectHolder(await current(b, key), 'keys', value, held.token);
          // Another name is another key: free while this one is held.
          if (target.serverKey(other) !== target.serverKey(key)) {
            let free;
            try {
              free = await b.compareAndSwap(other, null, null, target.ttl);
            } catch (error) {
              expectRefusal(error, ['key']);
            }
            if (free) expect(free).toEqual({ ok: true, holder: null });
          }
          expect(await a.compareAndSwap(key, held, null, target.ttl)).toEqual({ ok: true, holder: null });
          expect(await target.listKeys(prefix)).toEqual([]);
        }),
        {
          numRuns: 60,
          timeout: RUN_TIMEOUT_MS,
          examples: [
            ['', '/'],
            ['a b', 'a  b'],
            ['x/', 'x'],
            ['..', '.'],
            ['a/../b', 'b'],
            ['a//b', 'a/b'],
            ['ключ/鍵/🔑', 'ключ/鍵'],
            ['\uD800', '\uDC00'],
            ['x\uDFFF', 'x\uFFFD'],
            ['%2F', '/'],
            ['?q=1', '#frag'],
            ['\0', '\u2028'],
            ['\u00A0', '\uFEFF'],
            // Assigned in Unicode 13 and 15: printable to JavaScript, unknown to an agent built with an older Go.
            ['鍵\u{31350}', '\u{1FAF8}'],
          ].map(([k, o]) => [k!, o!, 'v'] as [string, string, string]),
        },
      );
      expect(accepted).toBeGreaterThan(10);
    });

    it('values at limits.maxValueBytes round-trip; one byte over, a candidate refuses them naming "value"', async () => {
      const a = open();
      const b = open();
      const limit = a.limits?.maxValueBytes;
      expect(limit, 'the store declares limits.maxValueBytes').toBeTypeOf('number');
      const id = 'big-é';
      // ASCII, the worst case of JSON (control characters, 6 bytes each), 2-, 3- and 4-byte UTF-8, lone surrogates (3 bytes as U+FFFD, 6 in JSON).
      for (const piece of ['x', '\u0001', 'é', '€', '😀', '\uD800', '"']) {
        const atLimit = valueOfBytes(piece, limit! - Buffer.byteLength(id));
        const prefix = runPrefix('limit');
        expect(await roundTrip(a, b, prefix, `${prefix}key`, { id, value: atLimit }, atLimit.slice(1)), `at the limit, made of ${JSON.stringify(piece)}`).toBe(true);
        // The candidate accepts it too...
        expect(() => new Candidate(a, { path: `${prefix}candidate`, id, value: atLimit, ttl: target.ttl })).not.toThrow();
        // ...and refuses one byte more, at the call.
        const over = valueOfBytes(piece, limit! + 1 - Buffer.byteLength(id));
        try {
          new Candidate(a, { path: `${prefix}candidate`, id, value: over, ttl: target.ttl });
          expect.fail(`a value of ${limit! + 1} bytes with the id was accepted`);
        } catch (error) {
          expectRefusal(error, ['value']);
          expect((error as Error).message).toContain(`at most ${limit} bytes`);
        }
      }
    });

    it('arbitrary path, id and value never crash a candidate: refused at construction naming the option, or it leads, publishes the exact value and stops cleanly', async () => {
      const store = open();
      const observer = open();
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
      process.on('unhandledRejection', onUnhandled);
      let started = 0;
      let refusedByServer = 0;
      try {
        await fc.assert(
          fc.asyncProperty(
            keySuffix,
            fc.option(fc.oneof(anyString(), fc.constantFrom(...edgeStrings)), { nil: undefined }),
            fc.option(fc.oneof(anyString(200), fc.constantFrom(...edgeStrings)), { nil: undefined }),
            async (suffix, id, value) => {
              const prefix = runPrefix('candidate');
              const path = `${prefix}${suffix}`;
              let candidate: Candidate;
              try {
                candidate = new Candidate(store, { path, id, value, ttl: target.ttl });
              } catch (error) {
                expectRefusal(error, ['path', 'id', 'value']);
                expect(await target.listKeys(prefix)).toEqual([]);
                return;
              }
              started++;
              const errors: Error[] = [];
              const changes: [string | null, string | null][] = [];
              candidate.on('error', (error) => errors.push(error));
              candidate.on('change', (changedValue, leaderId) => changes.push([changedValue, leaderId]));
              const selected = new Promise<[string, string, Holder]>((resolve, reject) => {
                candidate.once('select', (...args) => resolve([args[0], args[1], args[2]]));
                candidate.once('error', reject);
              });
              selected.catch(() => {});
              try {
                await candidate.start();
                let outcome: [string, string, Holder];
                try {
                  outcome = await selected;
                } catch (error) {
                  // Only a key the server alone refuses may get here; it is refused at the first call, clearly, and nothing is written.
                  if (target.serverJudgesKeys === undefined || !(error instanceof VipStoreError) || !(error.cause instanceof VipOptionError)) throw error;
                  expect(error.cause.option, String(error)).toBe('key');
                  expect(error.key === path).toBe(true);
                  expect(await target.listKeys(prefix)).toEqual([]);
                  refusedByServer++;
                  await candidate.stop();
                  expect(errors.every((e) => e instanceof VipStoreError && e.cause instanceof VipOptionError && e.cause.option === 'key'), String(errors)).toBe(true);
                  expect(await target.listKeys(prefix)).toEqual([]);
                  return;
                }
                const [selectedValue, leaderId, holder] = outcome;
                const localId = candidate.localid();
                const localValue = value ?? '';
                if (id !== undefined) expect(localId === id).toBe(true);
                expect(selectedValue === localValue).toBe(true);
                expect(leaderId === localId).toBe(true);
                expectHolder(holder, localId, localValue);
                expect(candidate.isSelected()).toBe(true);
                expect(changes.some(([v, l]) => v === localValue && l === localId)).toBe(true);
                expect(await target.listKeys(prefix)).toEqual([target.serverKey(path)]);
                expectHolder(await current(observer, path), localId, localValue, holder.token);
              } finally {
                await candidate.stop();
              }
              expect(errors).toEqual([]);
              expect(candidate.isSelected()).toBe(false);
              expect(await current(observer, path)).toBeNull();
            },
          ),
          { numRuns: 40, timeout: RUN_TIMEOUT_MS },
        );
      } finally {
        process.off('unhandledRejection', onUnhandled);
      }
      if (refusedByServer > 0) console.info(`${name}: ${refusedByServer} candidate path(s) refused by the server at the first call: ${target.serverJudgesKeys}`);
      expect(unhandled).toEqual([]);
      expect(started, 'candidates that got past construction').toBeGreaterThan(10);
    });
  });
}
