import { describe, expect, it } from 'vitest';
import { CliUsageError, didYouMean, editDistance, parseCommandLine, shellQuote, type OptionsSpec } from './cli-args.js';

// Options shaped like those of vip run and vip status (cli.ts declares the real ones; these are fixed for the messages below).
const run = {
  store: { type: 'string', value: 'URL', example: 'etcd://127.0.0.1:2379' },
  path: { type: 'string', value: 'P', example: '/jobs/report' },
  id: { type: 'string', value: 'ID', example: 'node-1' },
  value: { type: 'string', value: 'V', example: 'host:8080' },
  ttl: { type: 'string', value: 'SECONDS', example: '10' },
  grace: { type: 'string', value: 'SECONDS', example: '10' },
  restart: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionsSpec;
const status = {
  store: { type: 'string', value: 'URL', example: 'etcd://127.0.0.1:2379' },
  path: { type: 'string', value: 'P', example: '/jobs/report' },
  json: { type: 'boolean' },
  timeout: { type: 'string', value: 'SECONDS', example: '5' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionsSpec;

const parseRun = (argv: string[]) => parseCommandLine('run', argv, run, { command: true });
const parseStatus = (argv: string[]) => parseCommandLine('status', argv, status);

/** The message parseCommandLine throws for `argv`, checking it is a CliUsageError of `command`. */
function error(parse: () => unknown, command: string): string {
  try {
    parse();
  } catch (caught) {
    expect(caught).toBeInstanceOf(CliUsageError);
    expect((caught as CliUsageError).command).toBe(command);
    expect((caught as CliUsageError).name).toBe('CliUsageError');
    return (caught as Error).message;
  }
  throw new Error('parsed without an error');
}
const runError = (argv: string[]): string => error(() => parseRun(argv), 'run');
const statusError = (argv: string[]): string => error(() => parseStatus(argv), 'status');

describe('parseCommandLine', () => {
  it('parses --name value, --name=value, booleans and the command after --', () => {
    const parsed = parseRun(['--store', 'memory://', '--path=/job', '--ttl', '3', '--restart', '--', 'sh', '-c', 'echo "$VIP_TOKEN"', '--ttl', '--']);
    expect(parsed.command).toEqual(['sh', '-c', 'echo "$VIP_TOKEN"', '--ttl', '--']);
    expect(parsed.values).toEqual({
      store: 'memory://',
      path: '/job',
      id: undefined,
      value: undefined,
      ttl: '3',
      grace: undefined,
      restart: true,
      help: false,
    });
    // Booleans not given are false, strings undefined; a value may be empty or contain "=".
    expect(parseStatus(['--path=', '--store', 'etcd://h:2379?a=b']).values).toEqual({ store: 'etcd://h:2379?a=b', path: '', json: false, timeout: undefined, help: false });
    expect(parseStatus([]).command).toEqual([]);
    expect(parseStatus(['--path', '/j', '--']).command).toEqual([]);
  });

  it('takes a word that starts with - and a number as a value, for the caller to range-check', () => {
    expect(parseRun(['--ttl', '-1', '--grace', '-5', '--', 'true']).values).toMatchObject({ ttl: '-1', grace: '-5' });
    expect(parseRun(['--ttl', '-0.5', '--grace', '-.5', '--', 'true']).values).toMatchObject({ ttl: '-0.5', grace: '-.5' });
    expect(parseRun(['--ttl', '-5s', '--', 'true']).values).toMatchObject({ ttl: '-5s' });
    // Any other value that starts with "-" is written --name=-x.
    expect(parseRun(['--value=-x', '--', 'true']).values).toMatchObject({ value: '-x' });
  });

  it('unknown option: suggests the near miss, else lists the options', () => {
    expect(runError(['--tll', '3', '--', 'true'])).toBe('unknown option --tll (did you mean --ttl?)');
    expect(runError(['--tll=3', '--', 'true'])).toBe('unknown option --tll (did you mean --ttl?)');
    expect(runError(['--gracee', '3', '--', 'true'])).toBe('unknown option --gracee (did you mean --grace?)');
    expect(runError(['--rest', '--', 'true'])).toBe('unknown option --rest (did you mean --restart?)');
    expect(runError(['--TTL', '3', '--', 'true'])).toBe('unknown option --TTL (did you mean --ttl?)');
    expect(runError(['-ttl', '3', '--', 'true'])).toBe('unknown option -ttl (did you mean --ttl?)');
    expect(runError(['--hlep'])).toBe('unknown option --hlep (did you mean --help?)');
    expect(runError(['--foo', '--', 'true'])).toBe(
      'unknown option --foo; options of vip run: --store, --path, --id, --value, --ttl, --grace, --restart, -h/--help',
    );
    expect(runError(['--json', '--', 'true'])).toBe(
      'unknown option --json; options of vip run: --store, --path, --id, --value, --ttl, --grace, --restart, -h/--help',
    );
    expect(statusError(['-x'])).toBe('unknown option -x; options of vip status: --store, --path, --json, --timeout, -h/--help');
    expect(statusError(['--jsno'])).toBe('unknown option --jsno (did you mean --json?)');
    // A dash pasted from a document is not "--".
    expect(runError(['\u2014ttl', '3', '--', 'true'])).toBe('unknown option "\u2014ttl": it starts with "\u2014", not "--" (did you mean --ttl?)');
  });

  it('a string option given no value, or an option where its value should be', () => {
    expect(runError(['--path', '/job', '--ttl'])).toBe('--ttl needs a value (SECONDS), e.g. --ttl 10');
    expect(runError(['--ttl', '--grace', '3', '--', 'true'])).toBe('--ttl needs a value (SECONDS), e.g. --ttl 10');
    expect(runError(['--store', '--', 'true'])).toBe('--store needs a value (URL), e.g. --store etcd://127.0.0.1:2379');
    expect(statusError(['--path'])).toBe('--path needs a value (P), e.g. --path /jobs/report');
    // Not one of ours: perhaps a value that starts with "-".
    expect(runError(['--value', '-x', '--', 'true'])).toBe('--value needs a value (V), e.g. --value host:8080; a value that starts with "-" is written --value=-x');
    // Without a placeholder in the spec.
    expect(error(() => parseCommandLine('x', ['--name'], { name: { type: 'string' } }), 'x')).toBe('--name needs a value (VALUE), e.g. --name VALUE');
  });

  it('a boolean option given a value', () => {
    expect(statusError(['--json=yes'])).toBe('--json takes no value');
    expect(runError(['--restart=true', '--', 'true'])).toBe('--restart takes no value');
    expect(statusError(['--json', 'yes'])).toBe('unexpected argument "yes"; --json takes no value');
    expect(runError(['--restart', 'yes', '--', 'true'])).toBe('unexpected argument "yes" before --; --restart takes no value');
  });

  it('an option given twice is an error, not "the last one wins"', () => {
    expect(runError(['--ttl', '3', '--ttl=5', '--', 'true'])).toBe('--ttl given twice ("3" and "5"); give it once');
    expect(statusError(['--json', '--json'])).toBe('--json given twice');
  });

  it('the first problem is the one reported', () => {
    expect(runError(['--tll', '3', '--grace', '--', 'true'])).toBe('unknown option --tll (did you mean --ttl?)');
    expect(runError(['--grace', '--tll', '3', '--', 'true'])).toBe('--grace needs a value (SECONDS), e.g. --grace 10');
  });

  describe('vip run without --', () => {
    it('a stray word starts the command: the message shows the command line with --, quoted for the shell', () => {
      expect(runError(['--path', '/job', 'echo', 'hi'])).toBe('the command goes after --, e.g. vip run --path /job -- echo hi');
      // -c belongs to sh, not to vip; the quotes are closed.
      expect(runError(['--path', '/job', 'sh', '-c', 'x'])).toBe('the command goes after --, e.g. vip run --path /job -- sh -c x');
      expect(runError(['--store', 'memory://', '--path', '/job', '--ttl=3', 'sh', '-c', `echo "it's $VIP_TOKEN"`, '--grace', '5'])).toBe(
        `the command goes after --, e.g. vip run --store memory:// --path /job --ttl=3 -- sh -c 'echo "it'\\''s $VIP_TOKEN"' --grace 5`,
      );
      expect(runError(['--value', 'a b', 'node', 'job.js', ''])).toBe(`the command goes after --, e.g. vip run --value 'a b' -- node job.js ''`);
      expect(runError(['./job.sh'])).toBe('the command goes after --, e.g. vip run -- ./job.sh');
      // The command's own -- does not make its first word a stray one: -c is no option of vip's.
      expect(runError(['--path', '/job', 'sh', '-c', 'x', '--', 'y'])).toBe('the command goes after --, e.g. vip run --path /job -- sh -c x -- y');
    });

    it('a stray word before -- is reported as such', () => {
      expect(runError(['--path', '/j', 'extra', '--', 'true'])).toBe(`unexpected argument "extra" before --; only vip's options go before --, the command after it`);
    });

    it('an earlier problem comes first', () => {
      expect(runError(['--tll', '3', 'echo', 'hi'])).toBe('unknown option --tll (did you mean --ttl?)');
    });
  });

  it('vip run needs a command after --', () => {
    expect(runError(['--path', '/job'])).toBe('a command to run is required after --, e.g. -- node job.js');
    expect(runError(['--path', '/job', '--'])).toBe('a command to run is required after --, e.g. -- node job.js');
  });

  it('a command that takes no command refuses words after --', () => {
    expect(statusError(['--path', '/j', '--', 'x'])).toBe('unexpected argument "x" after --; vip status runs no command');
    expect(statusError(['--path', '/j', 'x'])).toBe(
      'unexpected argument "x"; vip status takes no arguments, only options (options of vip status: --store, --path, --json, --timeout, -h/--help)',
    );
  });

  it('-h/--help before -- wins over any problem', () => {
    const help = { values: { help: true } };
    expect(parseRun(['-h'])).toMatchObject(help);
    expect(parseRun(['--help'])).toMatchObject({ ...help, command: [] });
    expect(parseRun(['--tll', '3', '--help'])).toMatchObject(help);
    expect(parseRun(['--ttl', '-h'])).toMatchObject(help); // not taken as --ttl's value
    expect(parseRun(['--json=yes', '--ttl', '1', '--ttl', '2', 'extra', '-h', '--', 'true'])).toMatchObject(help);
    expect(parseStatus(['--path', '/j', 'x', '-h'])).toMatchObject(help);
    expect(parseStatus(['--help=yes'])).toMatchObject(help);
    // After --, or after the word that starts a command given without --, it is the command's.
    expect(parseRun(['--path', '/j', '--', 'ls', '--help'])).toMatchObject({ values: { help: false }, command: ['ls', '--help'] });
    expect(runError(['--path', '/j', 'ls', '-h'])).toBe('the command goes after --, e.g. vip run --path /j -- ls -h');
    // The command's own -h, after --, is not vip's even with no spec'd help.
    expect(parseCommandLine('x', ['--', '-h'], {}, { command: true })).toEqual({ values: { help: false }, command: ['-h'] });
  });

  it('spec\'d short options', () => {
    const spec = { path: { type: 'string', short: 'p', value: 'P' }, json: { type: 'boolean', short: 'j' } } as const satisfies OptionsSpec;
    expect(parseCommandLine('x', ['-p', '/j', '-j'], spec).values).toEqual({ path: '/j', json: true, help: false });
    expect(error(() => parseCommandLine('x', ['-p'], spec), 'x')).toBe('-p needs a value (P), e.g. -p P');
    expect(error(() => parseCommandLine('x', ['-p', '/a', '--path', '/b'], spec), 'x')).toBe('--path given twice ("/a" and "/b"); give it once');
  });
});

describe('didYouMean', () => {
  const options = ['store', 'path', 'id', 'value', 'ttl', 'grace', 'restart', 'help'];
  it('finds a swap, a missing or extra letter, a prefix, another case', () => {
    expect(didYouMean('tll', options)).toBe('ttl');
    expect(didYouMean('pth', options)).toBe('path');
    expect(didYouMean('stores', options)).toBe('store');
    expect(didYouMean('resart', options)).toBe('restart');
    expect(didYouMean('re', options)).toBe('restart');
    expect(didYouMean('Path', options)).toBe('path');
    expect(didYouMean('status', ['run', 'status', 'watch'])).toBe('status');
    expect(didYouMean('stauts', ['run', 'status', 'watch'])).toBe('status');
  });
  it('says nothing when nothing is close, or two are equally close', () => {
    expect(didYouMean('foo', options)).toBeUndefined();
    expect(didYouMean('json', options)).toBeUndefined();
    expect(didYouMean('', options)).toBeUndefined();
    expect(didYouMean('ab', ['ac', 'ad'])).toBeUndefined();
  });
  it('editDistance counts a swap of neighbours as one edit', () => {
    expect(editDistance('tll', 'ttl')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('kitten', 'sitting')).toBe(3);
  });
});

describe('shellQuote', () => {
  it('leaves safe words alone and single-quotes the rest, closing the quotes', () => {
    expect(shellQuote('etcd://h:2379,h2:2379')).toBe('etcd://h:2379,h2:2379');
    expect(shellQuote('--ttl=3')).toBe('--ttl=3');
    expect(shellQuote('a b')).toBe(`'a b'`);
    expect(shellQuote(`it's`)).toBe(`'it'\\''s'`);
    expect(shellQuote('$HOME')).toBe(`'$HOME'`);
    expect(shellQuote('')).toBe(`''`);
  });
});
