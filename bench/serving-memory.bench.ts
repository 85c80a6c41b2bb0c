import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { Benchmark, integerFlag, progress } from './lib/harness';

interface Measured {
  readonly items: number;
  readonly dimension: number;
  readonly idsBytes: number;
  readonly tableBytes: number;
  readonly textCacheBytes: number;
  readonly vectorsBytes: number;
  readonly rss: number;
  readonly buildMs: number;
}

const MiB = 1024 * 1024;

/**
 * `npm run bench -- serving-memory [--dimension 384] [--sizes 50000,1000000]`: the memory an api
 * replica holds per catalog item (ids, the item table with features and the popularity copy, the
 * loader's text-vector cache, the served version's item vectors), each size in a fresh process.
 */
const benchmark: Benchmark = {
  description: 'API memory per catalog item: item table, popularity copy, text cache, item vectors',
  run(args) {
    const dimension = integerFlag(args, 'dimension', 384, 1);
    const sizesIndex = args.indexOf('--sizes');
    const sizes =
      sizesIndex === -1
        ? [50_000, 1_000_000]
        : (args[sizesIndex + 1] ?? '').split(',').map((size) => Number(size));
    const child = path.join(__dirname, 'servers', 'serving-memory.ts');
    const measured: Measured[] = sizes.map((items) => {
      progress(`${items} items × ${dimension} dimensions`);
      const output = execFileSync(
        process.execPath,
        [
          '--expose-gc',
          '--max-old-space-size=8192',
          '-r',
          'ts-node/register/transpile-only',
          child,
          String(items),
          String(dimension),
        ],
        { encoding: 'utf8', maxBuffer: 1024 * 1024 },
      );
      return JSON.parse(output.trim().split('\n').at(-1) ?? '{}') as Measured;
    });
    const total = (m: Measured) => m.idsBytes + m.tableBytes + m.textCacheBytes + m.vectorsBytes;
    return Promise.resolve({
      title: `Serving memory per api replica (${dimension}-d item vectors)`,
      rows: measured.map((m) => ({
        items: m.items,
        'ids MiB': m.idsBytes / MiB,
        'item table MiB': m.tableBytes / MiB,
        'text cache MiB': m.textCacheBytes / MiB,
        'item vectors MiB': m.vectorsBytes / MiB,
        'total MiB': total(m) / MiB,
        'bytes/item': Math.round(total(m) / m.items),
        'build s': m.buildMs / 1000,
      })),
      figures: {
        dimension,
        sizes: measured.map((m) => ({ ...m, totalBytes: total(m) })),
      },
      notes: [
        'Heap plus array buffers after a full GC, per part, and the item vectors’ WebAssembly memory, each size in a fresh process. The item table holds every catalog item (deleted ones too): features and the popularity copy; items only seen in events are not held.',
        'The text cache is the model loader’s copy of the catalog’s text vectors, kept so that a swap does not re-read them; the item vectors are the served version’s, by row. During a swap the next version’s vectors exist next to the current ones for a moment.',
      ],
    });
  },
};

export default benchmark;
