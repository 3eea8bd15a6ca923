/** What every figure of the benchmark shares: its clock, its log, percentiles and bounded waits. */

export const began = performance.now();
export const elapsed = (): string => `${((performance.now() - began) / 1000).toFixed(0)} s`;

export interface Stats {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export function stats(samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
  return { n: sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1] ?? Number.NaN };
}

export const ms = (value: number): string => (Number.isNaN(value) ? '–' : value >= 100 ? value.toFixed(0) : value.toFixed(1));
export const log = (line: string): void => console.log(`[bench ${elapsed()}] ${line}`);
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
/** A bound raced against a measurement: it must not keep the process alive once the race is over. */
export const bound = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms).unref());

export async function until(condition: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}
