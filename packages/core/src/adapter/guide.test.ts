import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const root = new URL('../../../../', import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, root), 'utf8');

describe('docs/writing-an-adapter.md', () => {
  it('shows the adapter sketch exactly as examples/adapter-sketch has it (which tsc -b compiles)', () => {
    const guide = read('docs/writing-an-adapter.md');
    const marker = '<!-- sketch: examples/adapter-sketch/src/sketch-store.ts -->\n```ts\n';
    const start = guide.indexOf(marker);
    expect(start, 'the sketch marker in the guide').toBeGreaterThan(0);
    const body = guide.slice(start + marker.length, guide.indexOf('```', start + marker.length));
    expect(body).toBe(read('examples/adapter-sketch/src/sketch-store.ts'));
  });

  it('imports only entry points that @vip/core exports', () => {
    const exported = Object.keys((JSON.parse(read('packages/core/package.json')) as { exports: Record<string, unknown> }).exports).map((entry) => entry.replace(/^\./, '@vip/core'));
    const imported = [...read('docs/writing-an-adapter.md').matchAll(/from '(@vip\/core[^']*)'/g)].map((match) => match[1]!);
    expect(imported.length).toBeGreaterThan(0);
    for (const entry of imported) expect(exported).toContain(entry);
  });
});
