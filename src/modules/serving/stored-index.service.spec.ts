import { writeFile } from 'node:fs/promises';
import { createLogger } from '../../common/logger';
import { ShutdownDeadline } from '../../common/shutdown-deadline';
import { loadConfig } from '../../config/config';
import { MemoryIndexStore } from '../../../test/support/fakes/memory-index-store';
import { ItemTable } from './item-table';
import type { IndexSource, VectorIndex, VectorIndexBuilder, VectorIndexOpener } from './retrieval';
import { labelRowsOf, labelText, StoredIndexService } from './stored-index.service';

const DIMENSION = 4;

/** An index that answers nothing: these tests are about where indexes come from. */
function index(
  size: number,
  pointFormat: string,
  stale?: Int32Array,
  recall?: number,
  drift?: number,
): VectorIndex & { closed: boolean } {
  return {
    pointFormat,
    dimension: DIMENSION,
    size,
    bytes: size,
    stale,
    recall,
    drift,
    closed: false,
    search: () => Promise.resolve(new Int32Array(0)),
    close() {
      this.closed = true;
    },
    write: (file) => writeFile(file, `index of ${size}`),
  };
}

function setup(env: Record<string, string> = {}, store = new MemoryIndexStore()) {
  const config = loadConfig({
    RECOMMEND_ANN_MAX_DELTA: '2',
    RANK_CATALOG_REFRESH_MS: '100',
    ...env,
  });
  const items = new ItemTable();
  for (const id of ['a', 'b', 'c', 'd']) items.ensureRow(id);
  const source: IndexSource = {
    matrix: new Float32Array(new SharedArrayBuffer(4 * DIMENSION * 4)),
    dimension: DIMENSION,
    rows: Int32Array.of(0, 1, 3),
    extra: undefined,
  };
  const built: VectorIndex[] = [];
  const opened: {
    labelRows: number[];
    index: VectorIndex & { closed: boolean };
    adopt: boolean;
    pointFormat: string;
  }[] = [];
  let staleOnOpen = new Int32Array(0);
  let recallOnAdopt = 0.96;
  let driftOnAdopt = 5;
  const build: VectorIndexBuilder = (from) => {
    // A format of its own: what is stored and opened is the format the index was made in.
    const made = index(from.rows.length, 'built-format', undefined, 0.97);
    built.push(made);
    return Promise.resolve(made);
  };
  const open: VectorIndexOpener = (
    _file,
    pointFormat,
    labelRows,
    _source,
    _signal,
    adopt = false,
  ) => {
    const made = adopt
      ? index(3 - staleOnOpen.length, pointFormat, staleOnOpen, recallOnAdopt, driftOnAdopt)
      : index(3 - staleOnOpen.length, pointFormat, staleOnOpen);
    opened.push({ labelRows: Array.from(labelRows), index: made, adopt, pointFormat });
    return Promise.resolve(made);
  };
  const service = new StoredIndexService(
    build,
    open,
    store,
    config,
    createLogger('silent'),
    new ShutdownDeadline(config.shutdownTimeoutMs),
  );
  const signal = new AbortController().signal;
  const shape = {
    dimension: DIMENSION,
    m: config.retrieval.m,
    efConstruction: config.retrieval.efConstruction,
    withBias: false,
    pointFormat: 'inner-product',
  };
  return {
    service,
    items,
    source,
    store,
    built,
    opened,
    signal,
    shape,
    staleOnOpen: (rows: number[]) => {
      staleOnOpen = Int32Array.from(rows);
    },
    recallOnAdopt: (recall: number) => {
      recallOnAdopt = recall;
    },
    driftOnAdopt: (drift: number) => {
      driftOnAdopt = drift;
    },
  };
}

describe('StoredIndexService', () => {
  it("builds and stores a version's first index; another replica opens it, labels mapped to its own rows", async () => {
    const { service, items, source, store, built, signal } = setup();
    const first = await service.builderFor('7', items)(source, signal);
    expect(built).toEqual([first]);
    await service.beforeApplicationShutdown();
    const [kept] = store.stored('7');
    expect(kept.labelItemIds).toBe('a\nb\n\nd');
    expect(kept.header).toMatchObject({
      points: 3,
      dimension: DIMENSION,
      withBias: false,
      pointFormat: 'built-format',
    });
    expect(store.leases.size).toBe(0);

    // Another replica: the same items on other rows, item "b" unknown to it.
    const elsewhere = new ItemTable();
    for (const id of ['d', 'x', 'a']) elsewhere.ensureRow(id);
    const other = setup({}, store);
    const found = await other.service.builderFor('7', elsewhere)(source, signal);
    expect(other.built).toEqual([]);
    expect(other.opened).toEqual([
      { labelRows: [2, -1, -1, 0], index: found, adopt: false, pointFormat: 'built-format' },
    ]);
  });

  it('leaves a store that PostgreSQL does not answer at shutdown, within a step', async () => {
    const store = new MemoryIndexStore();
    const saving = new Promise<void>((called) => {
      jest.spyOn(store, 'save').mockImplementation(() => {
        called();
        return new Promise(() => undefined);
      });
    });
    // A step is a fifth of the grace period: 100 ms.
    const { service, items, source, signal } = setup({ SHUTDOWN_TIMEOUT_MS: '500' }, store);
    await service.builderFor('7', items)(source, signal);
    await saving;
    const stopping = performance.now();
    await service.beforeApplicationShutdown();
    expect(performance.now() - stopping).toBeLessThan(400);
  });

  it('builds when the stored index was built with other settings', async () => {
    const { service, items, source, store, built, opened, signal, shape } = setup();
    store.put({ ...shape, m: shape.m + 1, versionId: '7', points: 3, size: 0, sha256: '' }, []);
    await service.builderFor('7', items)(source, signal);
    expect(opened).toEqual([]);
    expect(built).toHaveLength(1);
  });

  it('builds when the stored index is more than RECOMMEND_ANN_MAX_DELTA rows behind, and closes it', async () => {
    const { service, items, source, store, built, opened, signal, shape, staleOnOpen } = setup();
    store.put({ ...shape, versionId: '7', points: 3, size: 0, sha256: '' }, ['a', 'b', '', 'd']);
    staleOnOpen([0, 1, 3]);
    const found = await service.builderFor('7', items)(source, signal);
    expect(opened).toHaveLength(1);
    expect(opened[0].index.closed).toBe(true);
    expect(built).toEqual([found]);
  });

  it('serves a stored index within RECOMMEND_ANN_MAX_DELTA rows; a rebuild opens neither it nor its own again', async () => {
    const { service, items, source, store, built, opened, signal, shape, staleOnOpen } = setup();
    store.put({ ...shape, versionId: '7', points: 3, size: 0, sha256: '' }, ['a', 'b', '', 'd']);
    staleOnOpen([3]);
    const builder = service.builderFor('7', items);
    const found = await builder(source, signal);
    expect(found.stale).toEqual(Int32Array.of(3));
    expect(built).toEqual([]);
    // The catalog moved on: Retrieval asks again; that one is not reopened, a new one is built
    // and stored, and the next rebuild does not open what this replica stored either.
    await builder(source, signal);
    await service.beforeApplicationShutdown();
    expect(store.stored('7')).toHaveLength(2);
    await builder(source, signal);
    expect(opened).toHaveLength(1);
    expect(built).toHaveLength(2);
  });

  it('builds without storing when RECOMMEND_ANN_STORE is false', async () => {
    const { service, items, source, store, built, signal } = setup({
      RECOMMEND_ANN_STORE: 'false',
    });
    await service.builderFor('7', items)(source, signal);
    await service.beforeApplicationShutdown();
    expect(built).toHaveLength(1);
    expect(store.stored('7')).toEqual([]);
  });

  it('waits while another replica holds the build lease, and opens the index it stores', async () => {
    const { service, items, source, store, built, opened, shape } = setup();
    store.leases.set('7', { builder: 'another replica', renewedAt: Date.now() });
    const waiting = service.builderFor('7', items)(source, new AbortController().signal);
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect(built).toEqual([]);
    store.put({ ...shape, versionId: '7', points: 3, size: 0, sha256: '' }, ['a', 'b', '', 'd']);
    const found = await waiting;
    expect(opened.map((one) => one.index)).toEqual([found]);
    expect(built).toEqual([]);
  });

  it('takes over a lease not renewed for a minute (its builder died), and ends it once stored', async () => {
    const { service, items, source, store, built, signal } = setup();
    store.leases.set('7', { builder: 'a dead replica', renewedAt: Date.now() - 61_000 });
    await service.builderFor('7', items)(source, signal);
    expect(built).toHaveLength(1);
    await service.beforeApplicationShutdown();
    expect(store.stored('7')).toHaveLength(1);
    expect(store.leases.size).toBe(0);
  });

  it('stops waiting when the version is no longer served', async () => {
    const { service, items, source, store, built } = setup();
    store.leases.set('7', { builder: 'another replica', renewedAt: Date.now() });
    const unbound = new AbortController();
    const waiting = service.builderFor('7', items)(source, unbound.signal);
    await new Promise((resolve) => setTimeout(resolve, 150));
    unbound.abort();
    await expect(waiting).rejects.toMatchObject({ name: 'AbortError' });
    expect(built).toEqual([]);
  });
});

describe('label ids', () => {
  it('round-trip between rows and item ids, holes and unknown items included', async () => {
    const items = new ItemTable();
    for (const id of ['a', 'b', 'c', 'd']) items.ensureRow(id);
    const text = await labelText(Int32Array.of(0, 1, 3), items);
    expect(text).toBe('a\nb\n\nd');
    const other = new ItemTable();
    for (const id of ['d', 'a']) other.ensureRow(id);
    expect(Array.from(await labelRowsOf(text, other))).toEqual([1, -1, -1, 0]);
  });

  it('map a large index a slice at a time, letting other work run between slices', async () => {
    const items = new ItemTable();
    const count = 120_000;
    for (let i = 0; i < count; i++) items.ensureRow(`item-${String(i)}`);
    const rows = Int32Array.from({ length: count }, (_, i) => i);
    // Turns of the event loop that other work gets while `work` runs (0 if it runs in one go).
    const turnsDuring = async <T>(work: () => Promise<T>): Promise<{ value: T; turns: number }> => {
      let turns = 0;
      let done = false;
      const tick = () => {
        if (done) return;
        turns++;
        setImmediate(tick);
      };
      setImmediate(tick);
      const value = await work();
      done = true;
      return { value, turns };
    };
    const text = await turnsDuring(() => labelText(rows, items));
    const mapped = await turnsDuring(() => labelRowsOf(text.value, items));
    expect(mapped.value).toEqual(rows);
    // 120,000 labels, 50,000 a turn: at least two turns for others in each direction.
    expect(text.turns).toBeGreaterThanOrEqual(2);
    expect(mapped.turns).toBeGreaterThanOrEqual(2);
  });

  it("adopts another version's stored graph when its sampled recall holds, and stores it as this version's", async () => {
    const { service, items, source, store, built, opened, signal } = setup();
    await service.builderFor('6', items)(source, signal);
    await service.beforeApplicationShutdown();
    expect(built).toHaveLength(1);

    const next = setup({}, store);
    const found = await next.service.builderFor('7', items)(source, signal);
    await next.service.beforeApplicationShutdown();
    expect(next.built).toEqual([]);
    expect(next.opened).toEqual([
      { labelRows: [0, 1, -1, 3], index: found, adopt: true, pointFormat: 'built-format' },
    ]);
    // The adopted graph keeps its points' format.
    expect(store.stored('7').map((kept) => kept.header)).toEqual([
      expect.objectContaining({
        adoptedFrom: '6',
        recall: 0.96,
        graphRecall: 0.97,
        graphDrift: 5,
        pointFormat: 'built-format',
      }),
    ]);
    expect(opened).toEqual([]);
  });

  it('builds rather than adopt an inner-product graph that sampled under 0.9 (a build tries a second graph); adopts a norm-augmented one that did', async () => {
    const { items, source, store, shape, signal } = setup();
    const low = { graphRecall: 0.8, graphDrift: 0 };
    store.put({ ...shape, versionId: '5', points: 3, size: 0, sha256: '', ...low }, ['a', 'b']);
    const next = setup({}, store);
    await next.service.builderFor('7', items)(source, signal);
    expect(next.opened).toEqual([]);
    expect(next.built).toHaveLength(1);

    const augmented = new MemoryIndexStore();
    augmented.put(
      {
        ...shape,
        pointFormat: 'norm-augmented-l2',
        versionId: '5',
        points: 3,
        size: 0,
        sha256: '',
        ...low,
      },
      ['a', 'b'],
    );
    const other = setup({}, augmented);
    other.recallOnAdopt(0.8);
    await other.service.builderFor('7', items)(source, signal);
    expect(other.opened.map((one) => [one.adopt, one.pointFormat])).toEqual([
      [true, 'norm-augmented-l2'],
    ]);
    expect(other.built).toEqual([]);
    await Promise.all([next.service, other.service].map((one) => one.beforeApplicationShutdown()));
  });

  it('builds when the adopted graph loses more than RECOMMEND_ANN_ADOPT_RECALL_LOSS against the build it descends from, its items moved more than RECOMMEND_ANN_ADOPT_MAX_DRIFT_DEGREES since, or it lacks more than RECOMMEND_ANN_MAX_DELTA rows', async () => {
    const { service, items, source, store, shape, signal } = setup();
    const graph = { graphRecall: 0.97, graphDrift: 4 };
    store.put({ ...shape, versionId: '5', points: 3, size: 0, sha256: '', ...graph }, [
      'a',
      'b',
      '',
      'd',
    ]);
    const lossy = setup({}, store);
    lossy.recallOnAdopt(0.94);
    const found = await lossy.service.builderFor('7', items)(source, signal);
    expect(lossy.opened.map((one) => [one.adopt, one.index.closed])).toEqual([[true, true]]);
    expect(lossy.built).toEqual([found]);

    // Items moved 9 degrees since the adopted graph's build, and 4 before: past 12 in all.
    const moved = setup({}, store);
    moved.driftOnAdopt(9);
    await moved.service.builderFor('10', items)(source, signal);
    expect(moved.opened.map((one) => [one.adopt, one.index.closed])).toEqual([[true, true]]);
    expect(moved.built).toHaveLength(1);

    const behind = setup({}, store);
    behind.staleOnOpen([0, 1, 3]);
    await behind.service.builderFor('8', items)(source, signal);
    expect(behind.opened.map((one) => [one.adopt, one.index.closed])).toEqual([[true, true]]);
    expect(behind.built).toHaveLength(1);

    const off = setup({ RECOMMEND_ANN_ADOPT: 'false' }, store);
    await off.service.builderFor('9', items)(source, signal);
    expect(off.opened).toEqual([]);
    expect(off.built).toHaveLength(1);
    await Promise.all(
      [service, lossy.service, moved.service, behind.service, off.service].map((one) =>
        one.beforeApplicationShutdown(),
      ),
    );
  });
});
