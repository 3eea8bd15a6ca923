#!/usr/bin/env node
import { main } from '../dist/cli.js';

process.exitCode = await main(process.argv.slice(2));
// Normally nothing is left and the process exits now. A store client stuck on a
// server that never answers (a hung TCP connection, an auth call in flight) may
// keep handles open after close(); the command is done, so do not wait for it.
setTimeout(() => process.exit(), 2000).unref();
