import { ItemTable } from '../../src/modules/serving/item-table';
import { RowVectors } from '../../src/modules/serving/row-vectors';

/**
 * One size of the serving-memory benchmark, in its own process (run with --expose-gc): builds
 * what an api replica holds per catalog item and reports the memory each part added.
 * argv: items, dimension. Prints one JSON line.
 */
function collect(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with --expose-gc');
  gc();
  gc();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
}

function main(): void {
  const items = Number(process.argv[2]);
  const dimension = Number(process.argv[3]);
  const base = collect();
  const ids = Array.from({ length: items }, (_, i) => `item-${String(i).padStart(7, '0')}`);
  const afterIds = collect();

  const started = performance.now();
  const table = new ItemTable();
  const now = Date.now();
  for (const [i, itemId] of ids.entries()) {
    table.setFeatures({
      itemId,
      category: `category-${i % 50}`,
      price: (i % 1000) + 0.99,
      createdAtMs: now - i * 1000,
      deleted: false,
    });
  }
  table.resetPopularity(
    ids.map((itemId, i) => [itemId, { ref: now, imp: i % 97, clk: i % 13, cart: 0, buy: 0 }]),
  );
  const afterTable = collect();

  // The model loader keeps the catalog's text vectors (re-read only when the catalog changed).
  const text = new Float32Array(items * dimension).fill(0.01);
  const afterText = collect();

  const vectors = new RowVectors(dimension, table.size);
  for (let row = 0; row < items; row++) {
    vectors.set(row, text.subarray(row * dimension, (row + 1) * dimension), 0, 0);
  }
  const bindMs = performance.now() - started;
  const afterVectors = collect();
  process.stdout.write(
    `${JSON.stringify({
      items,
      dimension,
      idsBytes: afterIds - base,
      tableBytes: afterTable - afterIds,
      textCacheBytes: afterText - afterTable,
      // The vectors themselves are in WebAssembly memory, which the heap figures leave out.
      vectorsBytes: afterVectors - afterText + vectors.vectorBytes,
      rss: process.memoryUsage().rss,
      buildMs: bindMs,
      // Keep everything alive until measured.
      alive: table.size + vectors.rows + text.length > 0,
    })}\n`,
  );
}

main();
