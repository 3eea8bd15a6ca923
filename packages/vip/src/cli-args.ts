/**
 * The `vip` command line, parsed in vip's own words: every error names the
 * flag and what was expected, and suggests the fix (a near-miss flag, the
 * command line with the command moved after `--`).
 *
 * Rules, for `vip COMMAND [options] [-- ARGS...]`:
 * - `--name value`, `--name=value`, `-x value` (a spec'd short) for a string
 *   option; `--name` for a boolean one (`--name=...` is an error).
 * - A string option's value is the next word unless that word is `--` or looks
 *   like an option. A word that starts with `-` and then a number (`--ttl -1`)
 *   is a value, so the caller's range check can say what is wrong with it; any
 *   other value that starts with `-` is written `--name=-x`.
 * - An option given twice is an error (see `given twice` below for why).
 * - `-h`/`--help` (always known, whether or not the spec has `help`) anywhere among vip's own words (before `--`, and, for a
 *   command that takes one, before the first stray word, which starts the
 *   command) gives `values.help === true` and no error at all.
 * - `{ command: true }` (vip run): the words after `--` are the command, and it
 *   must not be empty. A stray word before `--` with no `--` after it starts the
 *   command the user forgot the `--` for: everything from it on is the
 *   command's, so `sh -c 'x'` never has its `-c` reported as a vip option.
 */

export interface OptionSpec {
  type: 'string' | 'boolean';
  /** One letter: `-x` as well as `--name`. */
  short?: string;
  /** The placeholder in messages, e.g. 'SECONDS' in "--ttl needs a value (SECONDS)". */
  value?: string;
  /** An example value for messages, e.g. '10' in "e.g. --ttl 10" (default: the placeholder). */
  example?: string;
}

export type OptionsSpec = Record<string, OptionSpec>;

/** Booleans are always there (false when not given); strings are undefined when not given. */
export type ParsedValues<S extends OptionsSpec> = {
  -readonly [K in keyof S]: S[K] extends { type: 'boolean' } ? boolean : string | undefined;
} & { help: boolean };

export interface ParsedCommandLine<S extends OptionsSpec> {
  values: ParsedValues<S>;
  /** The words after `--` (empty unless the command takes one). */
  command: string[];
}

export interface ParseOptions {
  /** This vip command takes a command to run after `--` (vip run). */
  command?: boolean;
}

/** Bad usage of `vip COMMAND`; `command` is the vip command ('run', 'status', ...) for "Run vip COMMAND --help". */
export class CliUsageError extends Error {
  override readonly name = 'CliUsageError';
  constructor(
    message: string,
    readonly command: string,
  ) {
    super(message);
  }
}

/**
 * Optimal string alignment distance (Levenshtein plus the swap of two
 * neighbours as one edit): `tll` is one edit from `ttl`.
 */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = best;
    }
  }
  return rows[a.length]![b.length]!;
}

/**
 * The candidate `word` most likely meant, or undefined when none is close:
 * the same ignoring case, the one candidate it is a prefix of (at least 2
 * letters: `--rest` for `--restart`), or the nearest within 1 edit (words of
 * up to 4 letters) or 2 edits (longer ones), when that nearest one is unique.
 */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  const lower = word.toLowerCase();
  if (lower === '') return undefined;
  const same = candidates.find((candidate) => candidate.toLowerCase() === lower);
  if (same !== undefined) return same;
  const prefixed = candidates.filter((candidate) => candidate.toLowerCase().startsWith(lower));
  if (lower.length >= 2 && prefixed.length === 1) return prefixed[0];
  const limit = lower.length <= 4 ? 1 : 2;
  let best: string | undefined;
  let bestDistance = Infinity;
  let ties = 0;
  for (const candidate of candidates) {
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance < bestDistance) [best, bestDistance, ties] = [candidate, distance, 1];
    else if (distance === bestDistance) ties++;
  }
  return bestDistance <= limit && ties === 1 ? best : undefined;
}

/** `word` as a POSIX shell reads it back: as is when it is safe, else in single quotes (closed). */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** `-1`, `-0.5`, `-.5`, `-5s`: a (bad) number for a value, not an option. */
const NEGATIVE_NUMBER = /^-\.?\d/;
/** What a copy from a document may have for `--` or `-`: dashes and the minus sign. */
const LOOKALIKE_DASH = /^[\u2010-\u2015\u2212]+/;

export function parseCommandLine<const S extends OptionsSpec>(
  command: string,
  argv: readonly string[],
  spec: S,
  options: ParseOptions = {},
): ParsedCommandLine<S> {
  const takesCommand = options.command === true;
  const names = Object.keys(spec).filter((name) => name !== 'help');
  const byShort = new Map<string, string>();
  for (const [name, option] of Object.entries(spec)) if (option.short !== undefined) byShort.set(option.short, name);
  const given = new Map<string, string | true>();
  const values: Record<string, string | boolean | undefined> = {};
  for (const [name, option] of Object.entries(spec)) values[name] = option.type === 'boolean' ? false : undefined;
  values.help = false;

  // The first problem, by position; the scan goes on only to find -h/--help,
  // which wins over any problem.
  let problem: string | undefined;
  const fail = (message: string): void => void (problem ??= message);
  const list = (): string => `options of vip ${command}: ${[...names.map((name) => `--${name}`), '-h/--help'].join(', ')}`;
  const near = (bare: string): string | undefined => didYouMean(bare, [...names, 'help']);
  const unknown = (typed: string, bare: string, note = ''): void => {
    const guess = near(bare);
    fail(guess !== undefined ? `unknown option ${typed}${note} (did you mean --${guess}?)` : `unknown option ${typed}${note}; ${list()}`);
  };
  const isOption = (word: string): boolean => word.length > 1 && word.startsWith('-') && !NEGATIVE_NUMBER.test(word);
  const isVipOption = (word: string): boolean =>
    word.startsWith('--') ? [...names, 'help'].includes(word.slice(2).split('=')[0]!) : byShort.has(word.slice(1)) || word === '-h';
  const set = (name: string, value: string | true): void => {
    const before = given.get(name);
    if (before !== undefined) {
      // An error rather than "the last one wins": two values for one flag are a
      // mistake (a wrapper script and its caller both setting --ttl, a pasted
      // line), and which one a node of an election runs with is not something
      // to leave to a rule the user may not know. Saying so costs them one edit.
      fail(value === true || before === true ? `--${name} given twice` : `--${name} given twice (${JSON.stringify(before)} and ${JSON.stringify(value)}); give it once`);
      return;
    }
    given.set(name, value);
    values[name] = value;
  };
  /** `word` is `--`, help, or one of this command's options (so no "write --name=-x" hint). */
  const known = (word: string): boolean =>
    word === '--' || word === '-h' || word === '--help' || (word.startsWith('--') ? Object.hasOwn(spec, word.slice(2).split('=')[0]!) : byShort.has(word.slice(1)));

  // After an unknown option, a word that could be its value is taken as one, so
  // that it does not start a command (vip run) and hide a -h/--help after it.
  // The unknown option is the problem reported either way.
  const probableValue = (next: string | undefined): boolean => next !== undefined && next !== '--' && !isOption(next) && !LOOKALIKE_DASH.test(next);

  let terminator = -1;
  let commandStart = -1;
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (word === '--') {
      terminator = i;
      break;
    }
    if (word === '--help' || word === '-h') {
      values.help = true;
      continue;
    }
    if (LOOKALIKE_DASH.test(word) && word.length > 1) {
      const dashes = LOOKALIKE_DASH.exec(word)![0];
      const bare = word.slice(dashes.length).split('=')[0]!;
      unknown(JSON.stringify(word.split('=')[0]), bare, `: it starts with "${dashes}", not "--"`);
      if (!word.includes('=') && probableValue(argv[i + 1])) i++;
      continue;
    }
    if (!isOption(word)) {
      // A stray word: not an option, not an option's value.
      const previous = i > 0 ? argv[i - 1]! : undefined;
      const flag = previous?.startsWith('--') ? previous.slice(2) : previous?.startsWith('-') ? byShort.get(previous.slice(1)) : undefined;
      const afterBoolean = flag !== undefined && spec[flag]?.type === 'boolean' ? `; --${flag} takes no value` : '';
      const terminator = argv.indexOf('--', i + 1);
      const upTo = terminator < 0 ? argv.slice(i + 1) : argv.slice(i + 1, terminator);
      // An option vip does not have between this word and a later -- belongs to a command (sh -c x -- y).
      const foreign = upTo.some((w) => isOption(w) && !isVipOption(w));
      if (takesCommand && (terminator < 0 || foreign)) {
        // The user forgot the --: this word starts the command, and so does all that follows.
        commandStart = i;
        break;
      }
      if (takesCommand) fail(`unexpected argument ${JSON.stringify(word)} before --${afterBoolean || `; only vip's options go before --, the command after it`}`);
      else fail(`unexpected argument ${JSON.stringify(word)}${afterBoolean || `; vip ${command} takes no arguments, only options (${list()})`}`);
      continue;
    }
    // An option: --name, --name=value, -x.
    let name: string | undefined;
    let typed: string;
    let inline: string | undefined;
    if (word.startsWith('--')) {
      const equals = word.indexOf('=');
      typed = equals === -1 ? word : word.slice(0, equals);
      inline = equals === -1 ? undefined : word.slice(equals + 1);
      const bare = typed.slice(2);
      if (bare === 'help') {
        values.help = true; // --help=anything: still a request for help
        continue;
      }
      if (!Object.hasOwn(spec, bare)) {
        unknown(typed, bare);
        if (inline === undefined && probableValue(argv[i + 1])) i++;
        continue;
      }
      name = bare;
    } else {
      typed = word;
      name = byShort.get(word.slice(1));
      if (name === undefined) {
        // -ttl for --ttl: a single dash before a long name.
        unknown(typed, word.slice(1).split('=')[0]!);
        if (!word.includes('=') && probableValue(argv[i + 1])) i++;
        continue;
      }
    }
    const option = spec[name]!;
    if (option.type === 'boolean') {
      if (inline !== undefined) fail(`${typed} takes no value`);
      else set(name, true);
      continue;
    }
    if (inline !== undefined) {
      set(name, inline);
      continue;
    }
    const next = argv[i + 1];
    if (next === undefined || next === '--' || isOption(next) || LOOKALIKE_DASH.test(next)) {
      const placeholder = option.value ?? 'VALUE';
      const example = option.example ?? placeholder;
      // A misspelt option (--grace --tll 3) is not a value that starts with "-".
      const misspelt = next !== undefined && next.startsWith('-') && near(next.replace(/^--?/, '').split('=')[0]!) !== undefined;
      const hint = next === undefined || known(next) || misspelt ? '' : `; a value that starts with "-" is written ${shellQuote(`--${name}=${next}`)}`;
      fail(`${typed} needs a value (${placeholder}), e.g. ${typed} ${example}${hint}`);
      continue;
    }
    set(name, next);
    i++;
  }

  if (values.help) return { values: values as ParsedValues<S>, command: [] };

  let words: string[] = [];
  if (commandStart !== -1) {
    const own = argv.slice(0, commandStart);
    const rest = argv.slice(commandStart);
    fail(`the command goes after --, e.g. ${['vip', command, ...own, '--', ...rest].map(shellQuote).join(' ')}`);
  } else if (terminator !== -1) {
    words = argv.slice(terminator + 1);
    if (!takesCommand && words.length > 0) fail(`unexpected argument ${JSON.stringify(words[0])} after --; vip ${command} runs no command`);
  }
  if (takesCommand && problem === undefined && words.length === 0) fail('a command to run is required after --, e.g. -- node job.js');
  if (problem !== undefined) throw new CliUsageError(problem, command);
  return { values: values as ParsedValues<S>, command: words };
}
