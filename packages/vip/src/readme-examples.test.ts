/**
 * Keeps the READMEs honest: every ```ts and ```js block in README.md and
 * packages/*\/README.md is type-checked, as an ES module of its own, against
 * the built packages (`tsc -b` first), the way a user who pastes it into a
 * `"type": "module"` project with `module: nodenext` and `strict` would
 * compile it. A block marked ```ts nocheck is skipped; the README says why
 * next to it.
 *
 * The blocks are written to node_modules/.cache/readme-examples/<pid>/ with a
 * tsconfig.json and a node_modules/ of symlinks (@vip/* to the workspace
 * packages, their dependencies to the copies the packages use), so an error
 * can be reproduced with `tsc -p` on that folder, which a failed run keeps. One
 * program checks every block.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
// One folder per run (others may run the unit tests at the same time); kept when the check fails, to reproduce it.
const cache = join(root, 'node_modules', '.cache', 'readme-examples', String(process.pid));

interface Block {
  /** README path relative to the repository root. */
  readonly readme: string;
  /** 1-based among the README's ```ts/```js blocks. */
  readonly number: number;
  /** README line of the block's first code line (1-based). */
  readonly line: number;
  readonly language: 'ts' | 'js';
  readonly code: string;
  readonly skipped: boolean;
  /** For a skipped block: the `<!-- … -->` comment on the line before its fence, which says why. */
  readonly why: string | undefined;
}

/** The ```ts / ```js blocks of one README, in order. */
export function extractBlocks(readme: string, text: string): Block[] {
  const blocks: Block[] = [];
  const lines = text.split('\n');
  let number = 0;
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w-]*)(.*)$/.exec(lines[i]!);
    if (!open) continue;
    const [, indent, fence, lang = '', rest = ''] = open;
    const end = lines.findIndex((l, j) => j > i && l.trimEnd() === `${indent}${fence}`);
    const close = end === -1 ? lines.length : end;
    const language = /^(ts|typescript|mts)$/.test(lang) ? 'ts' : /^(js|javascript|mjs)$/.test(lang) ? 'js' : undefined;
    if (language) {
      number += 1;
      const code = lines.slice(i + 1, close).map((l) => (l.startsWith(indent!) ? l.slice(indent!.length) : l)).join('\n');
      const before = /^\s*<!--(.*)-->\s*$/.exec(lines[i - 1] ?? '');
      blocks.push({ readme, number, line: i + 2, language, code, skipped: /\bnocheck\b/.test(rest), why: before?.[1]?.trim() });
    }
    i = close;
  }
  return blocks;
}

function readmes(): string[] {
  const packages = readdirSync(join(root, 'packages'))
    .map((name) => join('packages', name, 'README.md'))
    .filter((path) => existsSync(join(root, path)));
  return ['README.md', ...packages];
}

/** Symlink `name` in the cache's node_modules to `target`. */
function link(name: string, target: string): void {
  const at = join(cache, 'node_modules', name);
  mkdirSync(dirname(at), { recursive: true });
  symlinkSync(target, at, 'dir');
}

/** The cache: one file per block, tsconfig.json, package.json and node_modules/. Returns file → block. */
function writeCache(blocks: readonly Block[]): Map<string, Block> {
  rmSync(cache, { recursive: true, force: true });
  mkdirSync(cache, { recursive: true });
  const linked = new Set<string>();
  for (const name of readdirSync(join(root, 'packages'))) {
    const dir = join(root, 'packages', name);
    if (!existsSync(join(dir, 'package.json'))) continue;
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name: string };
    link(pkg.name, dir);
    linked.add(pkg.name);
  }
  // What the examples import besides vip: the packages' own dependencies (etcd3, cockatiel, consul, prom-client).
  for (const name of readdirSync(join(root, 'packages'))) {
    const modules = join(root, 'packages', name, 'node_modules');
    if (!existsSync(modules)) continue;
    for (const entry of readdirSync(modules)) {
      const names = entry.startsWith('@') ? readdirSync(join(modules, entry)).map((sub) => `${entry}/${sub}`) : [entry];
      for (const dep of names) {
        if (linked.has(dep) || dep.startsWith('.')) continue;
        link(dep, join(modules, dep));
        linked.add(dep);
      }
    }
  }
  link('@types/node', join(root, 'node_modules', '@types', 'node'));
  writeFileSync(join(cache, 'package.json'), `${JSON.stringify({ name: 'readme-examples', private: true, type: 'module' }, null, 2)}\n`);
  const files = new Map<string, Block>();
  for (const block of blocks) {
    if (block.skipped) continue;
    const base = `${block.readme.replace(/\/?README\.md$/, '').replace(/[^\w]+/g, '-') || 'root'}-${block.number}`;
    const file = join(cache, `${base}.${block.language === 'ts' ? 'ts' : 'js'}`);
    // Each block is a module of its own (`export {}`), as a file of the user's would be.
    writeFileSync(file, `${block.code}\nexport {};\n`);
    files.set(file, block);
  }
  const tsconfig = {
    compilerOptions: {
      target: 'ES2022',
      lib: ['ES2022'],
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      types: ['node'],
      strict: true,
      noEmit: true,
      allowJs: true,
      checkJs: true,
      skipLibCheck: true,
    },
    files: [...files.keys()].map((file) => relative(cache, file)),
  };
  writeFileSync(join(cache, 'tsconfig.json'), `${JSON.stringify(tsconfig, null, 2)}\n`);
  return files;
}

describe('extractBlocks', () => {
  it('numbers the ts/js blocks, skips other languages, marks nocheck and its reason', () => {
    const text = ['# x', '```sh', 'npm i', '```', '```ts', 'const a = 1;', '```', '<!-- needs a browser -->', '```js nocheck', 'document;', '```'].join('\n');
    const blocks = extractBlocks('X.md', text);
    expect(blocks.map(({ number, line, language, code, skipped, why }) => ({ number, line, language, code, skipped, why }))).toEqual([
      { number: 1, line: 6, language: 'ts', code: 'const a = 1;', skipped: false, why: undefined },
      { number: 2, line: 10, language: 'js', code: 'document;', skipped: true, why: 'needs a browser' },
    ]);
  });
});

describe('README examples', () => {
  const blocks = readmes().flatMap((readme) => extractBlocks(readme, readFileSync(join(root, readme), 'utf8')));

  it('finds the blocks', () => {
    expect(blocks.filter((b) => !b.skipped).length).toBeGreaterThan(5);
    const unexplained = blocks.filter((b) => b.skipped && !b.why).map((b) => `${b.readme}:${b.line - 1} (block ${b.number})`);
    expect(unexplained, 'blocks marked nocheck need a <!-- why --> comment on the line before the fence').toEqual([]);
  });

  it('type-check against the built packages (run tsc -b first)', () => {
    for (const dir of ['core', 'etcd', 'consul', 'vip']) {
      expect(existsSync(join(root, 'packages', dir, 'dist', 'index.d.ts')), `packages/${dir}/dist is missing: run tsc -b first`).toBe(true);
    }
    const files = writeCache(blocks);
    const config = ts.getParsedCommandLineOfConfigFile(join(cache, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n')); } });
    if (!config) throw new Error('readme-examples: could not read its tsconfig.json');
    const program = ts.createProgram({ rootNames: config.fileNames, options: config.options });
    const errors: string[] = [];
    for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
      const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n');
      const block = diagnostic.file ? files.get(diagnostic.file.fileName) : undefined;
      if (diagnostic.file && block && diagnostic.start !== undefined) {
        const { line, character } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
        errors.push(`${block.readme}:${block.line + line}:${character + 1} (block ${block.number}, ${block.language}): TS${diagnostic.code}: ${message}`);
      } else {
        const where = diagnostic.file ? relative(root, diagnostic.file.fileName) : 'tsconfig';
        errors.push(`${where}: TS${diagnostic.code}: ${message}`);
      }
    }
    expect(errors, `README examples that do not compile (reproduce: node_modules/.bin/tsc -p ${relative(root, cache)})`).toEqual([]);
    rmSync(cache, { recursive: true, force: true });
  }, 120_000);
});
