import { Candidate, MemoryStore, VipOptionError } from '@vip/core';
import { describe, expect, it } from 'vitest';
import { serveHttp } from './index.js';

describe('serveHttp(): unknown option keys', () => {
  it('are refused before listening, suggesting the nearest key and naming the bad one in .option', async () => {
    const candidate = new Candidate(new MemoryStore(), { path: '/p' });
    const attempt = serveHttp(candidate, { listen: '127.0.0.1:0', metric: false } as never);
    await expect(attempt).rejects.toThrow(VipOptionError);
    await expect(attempt).rejects.toMatchObject({
      option: 'metric',
      message: 'serveHttp: unknown option "metric" (did you mean "metrics"? valid options: listen, metrics, unreachableAfter, where)',
    });
    await expect(serveHttp(candidate, { listen: '127.0.0.1:0', where: '--http', Listen: 'x' } as never)).rejects.toThrow(/^--http: unknown option "Listen" \(did you mean "listen"\?/);
  });
});
