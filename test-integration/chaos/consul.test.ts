import { describe } from 'vitest';
import { chaosTest } from './run-test.js';

describe('chaos: Consul, a server that keeps its state', () => chaosTest('consul'));
