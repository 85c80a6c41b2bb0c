import { writeFile } from 'node:fs/promises';
import { createLogger } from '../../common/logger';
import { loadConfig } from '../../config/config';
import { fakeCategoryModel } from '../../../test/support/fakes/category-model';
import { MemoryIndexStore } from '../../../test/support/fakes/memory-index-store';
import { Metrics } from '../metrics/metrics.registry';
import { IndexPrebuildService } from './index-prebuild.service';
import type { IndexSource, VectorIndex, VectorIndexBuilder } from './retrieval';
import type { ModelLoader } from './served-model';
import { StoredIndexService } from './stored-index.service';

const ITEMS = ['a', 'b', 'c', 'd', 'e'].map((itemId) => ({ itemId, category: itemId }));
const VERSION = { id: '9', encoderId: 'enc', artifact: Buffer.from('artifact') };

function setup(
  env: Record<string, string> = {},
  liveVectors = ITEMS.length,
  load: ModelLoader['load'] = (_artifact, version) =>
    Promise.resolve(fakeCategoryModel(ITEMS, { versionId: version.id, dimension: 8 })),
) {
  const config = loadConfig({ RECOMMEND_ANN_MIN_ITEMS: '3', ...env });
  const store = new MemoryIndexStore();
  const sources: IndexSource[] = [];
  const indexes: (VectorIndex & { closed: boolean })[] = [];
  const build: VectorIndexBuilder = (source) => {
    sources.push(source);
    const index = {
      dimension: source.dimension,
      size: source.rows.length,
      bytes: 1,
      closed: false,
      search: () => Promise.resolve(new Int32Array(0)),
      close() {
        this.closed = true;
      },
      write: (file: string) => writeFile(file, 'index'),
    };
    indexes.push(index);
    return Promise.resolve(index);
  };
  const loads: string[] = [];
  const loader: ModelLoader = {
    load: (artifact, version) => {
      loads.push(version.id);
      return load(artifact, version);
    },
  };
  const logger = createLogger('silent');
  const stored = new StoredIndexService(
    build,
    () => Promise.reject(new Error('not opened here')),
    store,
    config,
    logger,
  );
  const fingerprint = () =>
    Promise.resolve({ fingerprint: 'f', rows: liveVectors, readAt: new Date() });
  const service = new IndexPrebuildService(
    loader,
    { fingerprint },
    stored,
    config,
    logger,
    new Metrics({}),
  );
  return { service, store, sources, indexes, loads };
}

describe('IndexPrebuildService', () => {
  it("builds a registered version's index over every item, stores it with the items' ids, and lets the lease go", async () => {
    const { service, store, sources, indexes, loads } = setup();
    await service.request(VERSION);
    expect(store.leases.has('9')).toBe(true);
    await service.settled();
    expect(loads).toEqual(['9']);
    expect(sources).toHaveLength(1);
    expect(Array.from(sources[0].rows)).toEqual([0, 1, 2, 3, 4]);
    expect(sources[0].dimension).toBe(8);
    expect(sources[0].extra).toBeUndefined();
    const kept = await store.newest('9');
    expect(kept?.points).toBe(ITEMS.length);
    expect(indexes[0].closed).toBe(true);
    expect(store.leases.has('9')).toBe(false);
  });

  it("appends each item's bias over the model's scale, as a replica's index does", async () => {
    const { service, sources } = setup({}, ITEMS.length, (_artifact, version) => {
      const loaded = fakeCategoryModel(ITEMS, { versionId: version.id, dimension: 8 });
      const { catalog } = loaded;
      return Promise.resolve({
        ...loaded,
        catalog: { ...catalog, bias: Float32Array.of(0, 0.5, 0, -1, 0) },
      });
    });
    await service.request(VERSION);
    await service.settled();
    expect(Array.from(sources[0].extra ?? [])).toEqual([0, 0.5, 0, -1, 0]);
  });

  it('builds nothing for a small catalog, when switched off, or without the store', async () => {
    for (const [env, live] of [
      [{}, 2],
      [{ RECOMMEND_ANN_PREBUILD: 'false' }, 5],
      [{ RECOMMEND_ANN_STORE: 'false' }, 5],
    ] as const) {
      const { service, store, loads } = setup(env, live);
      await service.request(VERSION);
      await service.settled();
      expect(loads).toEqual([]);
      expect(store.leases.size).toBe(0);
    }
  });

  it('leaves a version alone that has a stored index or another builder', async () => {
    const held = setup();
    held.store.leases.set('9', { builder: 'another replica', renewedAt: Date.now() });
    await held.service.request(VERSION);
    await held.service.settled();
    expect(held.loads).toEqual([]);
    expect(held.store.leases.get('9')?.builder).toBe('another replica');

    const built = setup();
    await built.service.request(VERSION);
    await built.service.settled();
    await built.service.request(VERSION);
    await built.service.settled();
    expect(built.loads).toEqual(['9']);
  });

  it('lets the lease go when the version cannot be loaded, and fails nothing', async () => {
    const { service, store, loads } = setup({}, ITEMS.length, () =>
      Promise.reject(new Error('corrupt artifact')),
    );
    await expect(service.request(VERSION)).resolves.toBeUndefined();
    await service.settled();
    expect(loads).toEqual(['9']);
    expect(store.leases.size).toBe(0);
    expect(await store.newest('9')).toBeUndefined();
  });
});
