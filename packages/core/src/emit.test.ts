import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { emitIsolated } from './emit.js';

describe('emitIsolated', () => {
  it('runs every listener even when one throws, and reports the throw on error, naming the event', () => {
    const emitter = new EventEmitter();
    const calls: string[] = [];
    const errors: Error[] = [];
    emitter.on('select', () => {
      calls.push('first');
      throw new Error('boom');
    });
    emitter.on('select', (value: string) => calls.push(`second ${value}`));
    emitter.on('error', (error: Error) => errors.push(error));
    emitIsolated(emitter, 'select', ['v']);
    expect(calls).toEqual(['first', 'second v']);
    expect(errors.map((error) => error.message)).toEqual(['a "select" listener threw: boom']);
    expect((errors[0]!.cause as Error).message).toBe('boom');
  });

  it('reports a listener whose promise rejects', async () => {
    const emitter = new EventEmitter();
    const errors: Error[] = [];
    emitter.on('change', () => Promise.reject(new Error('later')));
    emitter.on('error', (error: Error) => errors.push(error));
    emitIsolated(emitter, 'change', []);
    await new Promise((resolve) => setImmediate(resolve));
    expect(errors.map((error) => error.message)).toEqual(['a "change" listener threw: later']);
  });

  it('never throws: an error with no listener is dropped, a throwing error listener does not silence the next one', () => {
    const emitter = new EventEmitter();
    expect(() => emitIsolated(emitter, 'error', [new Error('nobody listens')])).not.toThrow();
    expect(() => {
      emitter.on('select', () => {
        throw 'a string';
      });
      emitIsolated(emitter, 'select', []);
    }).not.toThrow();
    const seen: string[] = [];
    emitter.on('error', () => {
      throw new Error('error listener fails');
    });
    emitter.on('error', (error: Error) => seen.push(error.message));
    expect(() => emitIsolated(emitter, 'select', [])).not.toThrow();
    expect(seen).toEqual(['a "select" listener threw: string "a string"']);
  });
});
