// Which part of src/ may import which: the module map of docs/design-notes.md, enforced by lint.
import { statSync } from 'node:fs';
import path from 'node:path';

const SRC = path.resolve(import.meta.dirname, '..', 'src');
const BASE = ['common', 'config', 'infra'];

/** Part → the parts it may import (besides itself). `root` (main, cli, server, app.module) may import any. */
export const MODULE_MAP = {
  common: ['config'],
  config: ['common'],
  infra: ['common', 'config'],
  synthetic: ['common'],
  graphql: ['common', 'config', 'modules/metrics'],
  'modules/metrics': ['common', 'config'],
  'modules/health': [...BASE, 'modules/auth', 'modules/metrics'],
  'modules/auth': [...BASE, 'graphql', 'modules/metrics'],
  'modules/online-state': [...BASE, 'modules/metrics'],
  'modules/embedding': [...BASE, 'modules/health', 'modules/metrics'],
  'modules/ingest': [
    ...BASE,
    'modules/auth',
    'modules/embedding',
    'modules/metrics',
    'modules/online-state',
    'synthetic',
  ],
  'modules/served-log': [...BASE, 'modules/ingest', 'modules/metrics'],
  'modules/registry': [...BASE, 'modules/auth'],
  'modules/console': [...BASE],
  'modules/inspector': [...BASE, 'modules/auth', 'modules/online-state', 'modules/serving'],
  'modules/experiments': [...BASE, 'modules/auth', 'modules/metrics', 'modules/registry'],
  // The offline eval scores what `rank` returns: ranking's features and merge over the online
  // state's decay, rebuilt at each impression's time. A registered version's ANN index is built
  // ahead by serving's code, over the vectors serving computes.
  'modules/training': [
    ...BASE,
    'modules/embedding',
    'modules/metrics',
    'modules/online-state',
    'modules/ranking',
    'modules/registry',
    'modules/serving',
    'synthetic',
  ],
  'modules/serving': [
    ...BASE,
    'modules/auth',
    'modules/embedding',
    'modules/experiments',
    'modules/health',
    'modules/metrics',
    'modules/online-state',
    'modules/registry',
    'modules/training/model',
    'synthetic',
  ],
  'modules/ranking': [
    ...BASE,
    'graphql',
    'modules/auth',
    'modules/experiments',
    'modules/metrics',
    'modules/online-state',
    'modules/served-log',
    'modules/serving',
  ],
};

/** Training's model code is internal: only these serving files (the loader) run artifacts. */
const TRAINING_MODEL_READERS =
  /^modules\/serving\/(interest-model|interest-model\.loader|catalog-adapter(\.thread)?|catalog-tower)(\.spec)?\.ts$/;
/** A module's CLI verbs build their Nest context from the root composition. */
const CLI_ROOT_IMPORTS = new Set(['cli-command', 'app.module']);

/** `modules/<name>` for module files, the first folder otherwise, `root` for files directly in src/. */
function partOf(relative) {
  const parts = relative.split('/');
  if (parts[0] === 'modules') {
    if (parts[1] === 'training' && parts[2] === 'model') return 'modules/training/model';
    return `modules/${parts[1]}`;
  }
  return parts.length === 1 ? 'root' : parts[0];
}

function allowed(fromRelative, toRelative) {
  const from = partOf(fromRelative);
  const to = partOf(toRelative);
  if (from === 'root' || from === to) return true;
  if (from === 'modules/training' && to === 'modules/training/model') return true;
  if (from === 'modules/training/model')
    return (
      to !== 'root' && ['common', 'config', 'synthetic', 'modules/training/model'].includes(to)
    );
  if (to === 'modules/training/model')
    return from === 'modules/training' || TRAINING_MODEL_READERS.test(fromRelative);
  if (to === 'root') {
    return (
      fromRelative.endsWith('.cli.ts') && CLI_ROOT_IMPORTS.has(toRelative.replace(/\.ts$/, ''))
    );
  }
  return (MODULE_MAP[from] ?? []).includes(to);
}

export default {
  meta: {
    type: 'problem',
    docs: { description: 'imports between parts of src/ follow the module map' },
    messages: {
      forbidden:
        '{{from}} may not import {{target}} (the module map in eslint/module-boundaries.mjs says what {{from}} may import)',
    },
    schema: [],
  },
  create(context) {
    const file = context.filename;
    if (!file.startsWith(SRC + path.sep)) return {};
    const fromRelative = path.relative(SRC, file).split(path.sep).join('/');
    const check = (node, source) => {
      if (typeof source !== 'string' || !source.startsWith('.')) return;
      let target = path.resolve(path.dirname(file), source);
      if (!target.startsWith(SRC + path.sep)) return;
      if (statSync(target, { throwIfNoEntry: false })?.isDirectory())
        target = path.join(target, 'index');
      const toRelative = `${path.relative(SRC, target).split(path.sep).join('/')}.ts`;
      if (!allowed(fromRelative, toRelative)) {
        context.report({
          node,
          messageId: 'forbidden',
          data: { from: partOf(fromRelative), target: toRelative.replace(/\.ts$/, '') },
        });
      }
    };
    return {
      ImportDeclaration: (node) => check(node, node.source.value),
      ExportNamedDeclaration: (node) => check(node, node.source?.value),
      ExportAllDeclaration: (node) => check(node, node.source.value),
      ImportExpression: (node) => check(node, node.source.value),
    };
  },
};
