import { createLogger } from '../../common/logger';
import { loadConfig } from '../../config/config';
import { Metrics } from '../metrics/metrics.registry';
import type { StoredPopularity } from './online-state.schema';
import type { PopularityFeed } from './online-state.store';
import { FakeFeed, MapKeeper } from '../../../test/support/fakes/popularity-feed';
import { PopularityMirror } from './popularity-mirror';

const ENV = { RANK_POPULARITY_SYNC_MS: '250', ONLINE_POPULARITY_HALF_LIFE_HOURS: '168' };

const stored = (clk: number, ref = 1_000_000): StoredPopularity => ({
  ref,
  imp: 10 * clk,
  clk,
  cart: 0,
  buy: 0,
});

function mirrorOn(
  feed: PopularityFeed,
  held: string[],
): { mirror: PopularityMirror; keeper: MapKeeper } {
  const config = loadConfig(ENV);
  const mirror = new PopularityMirror(feed, config, createLogger('silent'), new Metrics({}));
  const keeper = new MapKeeper(new Set(held));
  mirror.keepIn(keeper);
  return { mirror, keeper };
}

const clicksOf = (keeper: MapKeeper, ids: string[]) => ids.map((id) => keeper.values.get(id)?.clk);

describe('PopularityMirror', () => {
  it('loads every held item, then follows the changes in order', async () => {
    const feed = new FakeFeed();
    feed.write('a', stored(1));
    feed.write('b', stored(2));
    const { mirror, keeper } = mirrorOn(feed, ['a', 'b', 'c']);
    expect(mirror.isFresh()).toBe(false);
    await mirror.sync();
    expect(mirror.isFresh()).toBe(true);
    expect(clicksOf(keeper, ['a', 'b', 'c'])).toEqual([1, 2, undefined]);

    feed.write('a', stored(5));
    feed.write('c', stored(3));
    feed.write('a', stored(7));
    await mirror.sync();
    expect(clicksOf(keeper, ['a', 'b', 'c'])).toEqual([7, 2, 3]);
  });

  it('keeps nothing of items its keeper does not hold (memory bounded by the catalog)', async () => {
    const feed = new FakeFeed();
    feed.write('catalog', stored(1));
    feed.write('not-in-catalog', stored(9));
    const { mirror, keeper } = mirrorOn(feed, ['catalog']);
    await mirror.sync();
    feed.write('another-stranger', stored(4));
    await mirror.sync();
    expect([...keeper.values.keys()]).toEqual(['catalog']);
    expect(await mirror.current(['not-in-catalog', 'none'])).toEqual([stored(9), undefined]);
  });

  it('drops what a reset cleared and takes what came after it', async () => {
    const feed = new FakeFeed();
    feed.write('a', stored(1));
    const { mirror, keeper } = mirrorOn(feed, ['a', 'b']);
    await mirror.sync();
    feed.clear();
    feed.write('b', stored(2));
    await mirror.sync();
    expect(clicksOf(keeper, ['a', 'b'])).toEqual([undefined, 2]);
  });

  it('goes stale while the feed fails and catches up when it is back', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate'] });
    try {
      const feed = new FakeFeed();
      const { mirror, keeper } = mirrorOn(feed, ['a']);
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
      expect(clicksOf(keeper, ['a'])).toEqual([9]);
    } finally {
      jest.useRealTimers();
    }
  });

  it('follows after a reload slower than the change stream is kept, instead of reloading again', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate'] });
    try {
      let scans = 0;
      const feed = new FakeFeed();
      // Every full scan takes 20 s of clock, longer than the stream keeps its entries.
      const scanAll = feed.allPopularity.bind(feed);
      feed.allPopularity = () => {
        scans += 1;
        jest.advanceTimersByTime(20_000);
        return scanAll();
      };
      feed.write('a', stored(1));
      const { mirror, keeper } = mirrorOn(feed, ['a']);
      await mirror.sync();
      for (let i = 0; i < 3; i++) {
        jest.advanceTimersByTime(250);
        feed.write('a', stored(2 + i));
        await mirror.sync();
      }
      expect(scans).toBe(1);
      expect(clicksOf(keeper, ['a'])).toEqual([4]);
    } finally {
      jest.useRealTimers();
    }
  });
});
