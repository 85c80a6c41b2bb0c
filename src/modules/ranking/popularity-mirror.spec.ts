import { createLogger } from '../../common/logger';
import { loadConfig } from '../../config/config';
import { StoredPopularity } from '../ingest/online-state.keys';
import { Metrics } from '../metrics/metrics.registry';
import { PopularityChange, PopularityFeed, PopularityMirror } from './popularity-mirror';
import { buildCatalog } from './serving-model';

const HALF_LIFE_MS = 7 * 86_400_000;
const ENV = { RANK_POPULARITY_SYNC_MS: '250', ONLINE_POPULARITY_HALF_LIFE_HOURS: '168' };

/** An in-memory `pop-changes` stream and `item-pop:*` keys. */
class FakeFeed implements PopularityFeed {
  readonly values = new Map<string, StoredPopularity>();
  readonly entries: PopularityChange[] = [];
  fail = false;
  private seq = 0;

  write(itemId: string, stored: StoredPopularity): void {
    this.values.set(itemId, stored);
    this.entries.push({ id: `1-${++this.seq}`, reset: false, items: [[itemId, stored]] });
  }

  clear(): void {
    this.values.clear();
    this.entries.push({ id: `1-${++this.seq}`, reset: true, items: [] });
  }

  lastPopularityChange(): Promise<string> {
    return Promise.resolve(this.entries.at(-1)?.id ?? '0-0');
  }

  popularityChangesAfter(id: string, count: number): Promise<PopularityChange[]> {
    if (this.fail) return Promise.reject(new Error('redis down'));
    const after = Number(id.split('-')[1]);
    return Promise.resolve(
      this.entries.filter((entry) => Number(entry.id.split('-')[1]) > after).slice(0, count),
    );
  }

  async *allPopularity(): AsyncIterable<[string, StoredPopularity][]> {
    await Promise.resolve();
    yield [...this.values];
  }
}

const stored = (clk: number, ref = 1_000_000): StoredPopularity => ({
  ref,
  imp: 10 * clk,
  clk,
  cart: 0,
  buy: 0,
});

function mirrorOn(feed: PopularityFeed): PopularityMirror {
  const config = loadConfig(ENV);
  return new PopularityMirror(feed, config, createLogger('silent'), new Metrics({}));
}

const clicksOf = (mirror: PopularityMirror, ids: string[], nowMs = 1_000_000) =>
  mirror.popularity(ids, nowMs).map((pop) => pop?.clicks);

describe('PopularityMirror', () => {
  it('loads every item, then follows the changes in order', async () => {
    const feed = new FakeFeed();
    feed.write('a', stored(1));
    feed.write('b', stored(2));
    const mirror = mirrorOn(feed);
    expect(mirror.isFresh()).toBe(false);
    await mirror.sync();
    expect(mirror.isFresh()).toBe(true);
    expect(clicksOf(mirror, ['a', 'b', 'c'])).toEqual([1, 2, undefined]);

    feed.write('a', stored(5));
    feed.write('c', stored(3));
    feed.write('a', stored(7));
    await mirror.sync();
    expect(clicksOf(mirror, ['a', 'b', 'c'])).toEqual([7, 2, 3]);
  });

  it('reads by catalog row the same as by id, decayed to the time asked for', async () => {
    const feed = new FakeFeed();
    feed.write('a', stored(4));
    const mirror = mirrorOn(feed);
    await mirror.sync();
    const catalog = buildCatalog(['z', 'a'], [new Float32Array(2), new Float32Array(2)], 2);
    const later = 1_000_000 + HALF_LIFE_MS;
    const byRow = mirror.popularity(['a', 'z', 'new'], later, {
      catalog,
      rows: Int32Array.of(1, 0, -1),
    });
    expect(byRow).toEqual(mirror.popularity(['a', 'z', 'new'], later));
    expect(byRow[0]?.clicks).toBeCloseTo(2, 10);
    expect(byRow.slice(1)).toEqual([undefined, undefined]);

    // A change after the row view was built reaches it.
    feed.write('z', stored(6, later));
    await mirror.sync();
    const rows = { catalog, rows: Int32Array.of(0) };
    expect(mirror.popularity(['z'], later, rows)[0]?.clicks).toBe(6);
  });

  it('drops what a reset cleared and takes what came after it', async () => {
    const feed = new FakeFeed();
    feed.write('a', stored(1));
    const mirror = mirrorOn(feed);
    await mirror.sync();
    feed.clear();
    feed.write('b', stored(2));
    await mirror.sync();
    expect(clicksOf(mirror, ['a', 'b'])).toEqual([undefined, 2]);
  });

  it('goes stale while the feed fails and catches up when it is back', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate'] });
    try {
      const feed = new FakeFeed();
      const mirror = mirrorOn(feed);
      await mirror.sync();
      feed.fail = true;
      feed.write('a', stored(9));
      await mirror.sync();
      expect(mirror.isFresh()).toBe(true);
      jest.advanceTimersByTime(2500);
      expect(mirror.isFresh()).toBe(false);
      feed.fail = false;
      await mirror.sync();
      expect(mirror.isFresh()).toBe(true);
      expect(clicksOf(mirror, ['a'])).toEqual([9]);
    } finally {
      jest.useRealTimers();
    }
  });
});
