import { eventually } from '../../test/support/poll';
import { reportDroppedMemory } from './dropped-memory';
import { VectorMemory } from './vector-memory';

const MiB = 1024 * 1024;

describe('reportDroppedMemory', () => {
  it('gets dropped item vectors’ WebAssembly memory back within seconds, without a forced collection', async () => {
    const rows = 150_000;
    let vectors: VectorMemory | undefined = new VectorMemory(384, rows, { growable: false });
    vectors.matrix.fill(1);
    const bytes = vectors.bytes;
    const held = process.memoryUsage().rss;
    vectors = undefined;
    reportDroppedMemory(bytes);
    // What requests allocate meanwhile: small objects, which alone start no full collection.
    const garbage = setInterval(() => {
      Array.from({ length: 1000 }, (_, i) => ({ i }));
    }, 5);
    try {
      const back = await eventually(() => process.memoryUsage().rss, 10_000, {
        what: `the dropped ${Math.round(bytes / MiB)} MiB back`,
        until: (rss) => rss < held - bytes / 2,
      });
      expect(held - back.value).toBeGreaterThan(bytes / 2);
    } finally {
      clearInterval(garbage);
    }
  });
});
