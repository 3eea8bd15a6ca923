import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { checkKnownKeys } from './adapter/index.js';
import { Candidate, MemoryStore, VipOptionError } from './index.js';
import { VipMetrics } from './metrics/index.js';

/** The error `attempt` throws (it must throw). */
function thrown(attempt: () => unknown): VipOptionError {
  try {
    attempt();
  } catch (error) {
    expect(error).toBeInstanceOf(VipOptionError);
    expect(error).toBeInstanceOf(TypeError);
    return error as VipOptionError;
  }
  throw new Error('expected a throw');
}

describe('checkKnownKeys', () => {
  const known = ['path', 'id', 'value', 'ttl', 'refreshInterval'];

  it('accepts an object with known keys only, or none', () => {
    expect(() => checkKnownKeys('Thing', { path: '/p', ttl: 3 }, known)).not.toThrow();
    expect(() => checkKnownKeys('Thing', {}, known)).not.toThrow();
  });

  it('suggests the nearest key within an edit distance of 2, naming the unknown key in .option', () => {
    const error = thrown(() => checkKnownKeys('Thing', { path: '/p', tll: 10 }, known));
    expect(error.option).toBe('tll');
    expect(error.message).toBe('Thing: unknown option "tll" (did you mean "ttl"? valid options: path, id, value, ttl, refreshInterval)');
    expect(thrown(() => checkKnownKeys('Thing', { refreshIntreval: 1 }, known)).message).toMatch(/did you mean "refreshInterval"\?/); // a swap is one edit
    expect(thrown(() => checkKnownKeys('Thing', { vlaeu: 'x' }, known)).message).toMatch(/did you mean "value"\?/);
  });

  it('suggests a key that differs only in case, however long', () => {
    expect(thrown(() => checkKnownKeys('Thing', { REFRESHINTERVAL: 1 }, known)).message).toMatch(/\(did you mean "refreshInterval"\? valid options/);
    expect(thrown(() => checkKnownKeys('Thing', { Path: '/p' }, known)).message).toMatch(/did you mean "path"\?/);
  });

  it('lists the valid keys without a suggestion when none is close (and never suggests from a key shorter than the distance)', () => {
    expect(thrown(() => checkKnownKeys('Thing', { timeout: 1 }, known)).message).toBe(
      'Thing: unknown option "timeout" (valid options: path, id, value, ttl, refreshInterval)',
    );
    expect(thrown(() => checkKnownKeys('Thing', { x: 1 }, known)).message).not.toMatch(/did you mean/);
  });

  it('reports a key set to undefined too: a typo is a typo', () => {
    const error = thrown(() => checkKnownKeys('Thing', { path: '/p', tll: undefined }, known));
    expect(error.option).toBe('tll');
    expect(error.message).toMatch(/unknown option "tll"/);
  });

  it('names nested keys with the prefix, in .option, the suggestion and the list', () => {
    const error = thrown(() => checkKnownKeys('Thing', { intial: 1 }, ['initial', 'max'], 'backoff.'));
    expect(error.option).toBe('backoff.intial');
    expect(error.message).toBe('Thing: unknown option "backoff.intial" (did you mean "backoff.initial"? valid options: backoff.initial, backoff.max)');
  });
});

describe('unknown option keys are refused where the options are given', () => {
  const store = new MemoryStore();

  it('new Candidate()', () => {
    const error = thrown(() => new Candidate(store, { path: '/p', tll: 10 } as never));
    expect(error.option).toBe('tll');
    expect(error.message).toMatch(/^Candidate: unknown option "tll" \(did you mean "ttl"\? valid options: path, id, value, ttl, refreshInterval, safetyMargin, requestTimeout, backoff, clock, random\)$/);
    expect(thrown(() => new Candidate(store, { path: '/p', backoff: { inital: 1 } } as never)).message).toMatch(
      /Candidate: unknown option "backoff.inital" \(did you mean "backoff.initial"\? valid options: backoff.initial, backoff.max\)/,
    );
    expect(() => new Candidate(store, { path: '/p', ttl: 10, backoff: { initial: 0.2, max: 1 } })).not.toThrow();
  });

  it('Candidate.health()', () => {
    const candidate = new Candidate(store, { path: '/p' });
    const error = thrown(() => candidate.health({ unreachableAftr: 5 } as never));
    expect(error.message).toMatch(/^Candidate\.health: unknown option "unreachableAftr" \(did you mean "unreachableAfter"\?/);
    expect(candidate.health({ unreachableAfter: 5 }).healthy).toBe(false); // stopped
  });

  it('new MemoryStore()', () => {
    expect(thrown(() => new MemoryStore({ backnd: undefined } as never)).message).toMatch(/^MemoryStore: unknown option "backnd" \(did you mean "backend"\? valid options: backend, clock, limits\)$/);
    expect(thrown(() => new MemoryStore({ limits: { minTTL: 1 } } as never)).option).toBe('limits.minTTL');
    expect(thrown(() => new MemoryStore(null as never)).option).toBe('options');
    expect(() => new MemoryStore({ limits: { minTtl: 1, maxTtl: 9, maxValueBytes: 10 } })).not.toThrow();
  });

  it('new VipMetrics()', () => {
    const error = thrown(() => new VipMetrics({ registry: new Registry(), prefx: 'x_' } as never));
    expect(error.option).toBe('prefx');
    expect(error.message).toBe('VipMetrics: unknown option "prefx" (did you mean "prefix"? valid options: registry, prefix, buckets, unreachableAfter, perElection)');
  });
});
