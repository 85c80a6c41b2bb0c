import { writeFile } from 'node:fs/promises';
import { createLogger } from '../../common/logger';
import { ShutdownDeadline } from '../../common/shutdown-deadline';
import { loadConfig } from '../../config/config';
import { fakeCategoryModel } from '../../../test/support/fakes/category-model';
import { MemoryIndexStore } from '../../../test/support/fakes/memory-index-store';
import { Metrics } from '../metrics/metrics.registry';
import { IndexPrebuildService } from './index-prebuild.service';
import type { IndexSource, VectorIndex, VectorIndexBuilder } from './retrieval';
import type { ModelLoader } from './served-model';
import { StoredIndexService } from './stored-index.service';

const ITEMS = ['a', 'b', 'c', 'd', 'e'].map((itemId) => ({ itemId, category: itemId }));
const registered = (id: string) => ({ id, encoderId: 'enc', artifact: Buffer.from('artifact') });
const VERSION = registered('9');

/** A promise and what settles it. */
function gate(): { opened: Promise<void>; open: () => void } {
  const settle: (() => void)[] = [];
  const opened = new Promise<void>((resolve) => {
    settle.push(resolve);
  });
  return {
    opened,
    open: () => {
      for (const resolve of settle) resolve();
    },
  };
}

interface Setup {
  readonly env: Record<string, string>;
  readonly liveVectors: number;
  readonly load: ModelLoader['load'];
  /** What the n-th build (from 0) waits for before it returns, unless its signal aborts first. */
  readonly hold: (build: number) => Promise<void>;
}

function setup({
  env = {},
  liveVectors = ITEMS.length,
  load = (_artifact, version) =>
    Promise.resolve(fakeCategoryModel(ITEMS, { versionId: version.id, dimension: 8 })),
  hold = () => Promise.resolve(),
}: Partial<Setup> = {}) {
  const config = loadConfig({ RECOMMEND_ANN_MIN_ITEMS: '3', ...env });
  const store = new MemoryIndexStore();
  const sources: IndexSource[] = [];
  const indexes: (VectorIndex & { closed: boolean })[] = [];
  let builds = 0;
  const build: VectorIndexBuilder = async (source, signal) => {
    const held = hold(builds++);
    await new Promise<void>((resolve, reject) => {
      signal.addEventListener('abort', () => {
        reject(new Error('abandoned'));
      });
      void held.then(resolve);
    });
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
      pointFormat: 'inner-product',
    };
    indexes.push(index);
    return index;
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
    new ShutdownDeadline(config.shutdownTimeoutMs),
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
    new ShutdownDeadline(config.shutdownTimeoutMs),
  );
  return { service, store, sources, indexes, loads, builds: () => builds };
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
    const { service, sources } = setup({
      load: (_artifact, version) => {
        const loaded = fakeCategoryModel(ITEMS, { versionId: version.id, dimension: 8 });
        const { catalog } = loaded;
        return Promise.resolve({
          ...loaded,
          catalog: { ...catalog, bias: Float32Array.of(0, 0.5, 0, -1, 0) },
        });
      },
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
      const { service, store, loads } = setup({ env, liveVectors: live });
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
    const { service, store, loads } = setup({
      load: () => Promise.reject(new Error('corrupt artifact')),
    });
    await expect(service.request(VERSION)).resolves.toBeUndefined();
    await service.settled();
    expect(loads).toEqual(['9']);
    expect(store.leases.size).toBe(0);
    expect(await store.newest('9')).toBeUndefined();
  });

  it('skips a queued build when a newer version supersedes it, unless it is served', async () => {
    const { opened, open } = gate();
    const { service, store, loads } = setup({ hold: () => opened });
    // 9 is active, 10 a candidate the gate kept back, 11 the newest.
    store.servedVersions.add('9');
    for (const id of ['9', '10', '11']) await service.request(registered(id));
    expect([...store.leases.keys()]).toEqual(['9', '10', '11']);
    open();
    await service.settled();
    expect(loads).toEqual(['9', '11']);
    expect(store.stored('9')).toHaveLength(1);
    expect(store.stored('10')).toHaveLength(0);
    expect(store.stored('11')).toHaveLength(1);
    expect(store.leases.size).toBe(0);
  });

  it('abandons the build of a version nobody serves when a newer one registers', async () => {
    for (const served of [false, true]) {
      const first = gate();
      const { service, store, loads, builds } = setup({
        hold: (n) => (n === 0 ? first.opened : Promise.resolve()),
      });
      if (served) store.servedVersions.add('9');
      await service.request(registered('9'));
      while (builds() === 0) await new Promise((resolve) => setImmediate(resolve));
      await service.request(registered('10'));
      first.open();
      await service.settled();
      expect(loads).toEqual(['9', '10']);
      expect(store.stored('9')).toHaveLength(served ? 1 : 0);
      expect(store.stored('10')).toHaveLength(1);
      expect(store.leases.size).toBe(0);
    }
  });
});
