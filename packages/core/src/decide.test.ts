import { describe, expect, it } from 'vitest';
import { decide, type FollowerStep, type FollowerView } from './decide.js';
import type { Holder } from './store.js';

const ours = (token: bigint): Holder => ({ id: 'me', value: 'v', token });
const theirs: Holder = { id: 'other', value: 'w', token: 7n };
const base: FollowerView = { holder: undefined, self: 'me', released: null, holdOffUntil: 0, now: 1000 };

describe('decide(): the follower policy as one table', () => {
  const rows: [string, Partial<FollowerView>, FollowerStep][] = [
    ['nothing known yet: follow', {}, { do: 'nothing' }],
    ['nothing known yet, even when free to campaign', { holdOffUntil: 0, released: ours(1n) }, { do: 'nothing' }],
    ['the key is free: acquire', { holder: null }, { do: 'acquire' }],
    ['free, hold-off ended exactly now: acquire', { holder: null, holdOffUntil: 1000 }, { do: 'acquire' }],
    ['free, hold-off ends later: wait until it ends', { holder: null, holdOffUntil: 1001 }, { do: 'wait', until: 1001 }],
    ['free, long hold-off: wait until it ends', { holder: null, holdOffUntil: 61_000 }, { do: 'wait', until: 61_000 }],
    ['somebody else holds it: follow', { holder: theirs }, { do: 'nothing' }],
    ['somebody else holds it during a hold-off: follow', { holder: theirs, holdOffUntil: 5000 }, { do: 'nothing' }],
    ['a hold of ours we do not lead: release it', { holder: ours(3n) }, { do: 'release', holder: ours(3n) }],
    ['a hold of ours, during a hold-off: still release it', { holder: ours(3n), holdOffUntil: 5000 }, { do: 'release', holder: ours(3n) }],
    ['a hold of ours already released: never twice', { holder: ours(3n), released: ours(3n) }, { do: 'nothing' }],
    ['a newer hold of ours than the one released: release it', { holder: ours(4n), released: ours(3n) }, { do: 'release', holder: ours(4n) }],
    ["another id's hold with the released token: follow", { holder: { ...theirs, token: 3n }, released: ours(3n) }, { do: 'nothing' }],
  ];
  for (const [name, view, step] of rows) {
    it(name, () => {
      expect(decide({ ...base, ...view })).toEqual(step);
    });
  }

  it('is pure: the same view gives the same step, and the view is not changed', () => {
    const view = Object.freeze({ ...base, holder: null, holdOffUntil: 2000 });
    expect(decide(view)).toEqual(decide(view));
    expect(view.holdOffUntil).toBe(2000);
  });
});
