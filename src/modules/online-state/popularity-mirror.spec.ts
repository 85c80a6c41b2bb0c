import { createLogger } from '../../common/logger';
import { loadConfig } from '../../config/config';
import { Metrics } from '../metrics/metrics.registry';
import type { StoredPopularity } from './online-state.schema';
import type { PopularityFeed } from './online-state.store';
import { FakeFeed } from '../../../test/support/fakes/popularity-feed';
import { PopularityMirror } from './popularity-mirror';

const HALF_LIFE_MS = 7 * 86_400_000;
const ENV = { RANK_POPULARITY_SYNC_MS: '250', ONLINE_POPULARITY_HALF_LIFE_HOURS: '168' };

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
  ids.map((id) => mirror.get(id, nowMs)?.clicks);

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

  it('tells its listener of every change and of reloads, decayed reads by id', async () => {
    const feed = new FakeFeed();
    feed.write('a', stored(4));
    const mirror = mirrorOn(feed);
    await mirror.sync();
    const changed: [string, number][] = [];
    const reloads: number[] = [];
    mirror.subscribe({
      changed: (itemId, value) => changed.push([itemId, value.clk]),
      reloaded: (values) => reloads.push(values.size),
    });
    expect(reloads).toEqual([1]);
    feed.write('z', stored(6));
    await mirror.sync();
    expect(changed).toEqual([['z', 6]]);
    feed.clear();
    await mirror.sync();
    expect(reloads).toEqual([1, 0]);
    expect(mirror.get('a', 1_000_000)).toBeUndefined();
    feed.write('a', stored(4));
    await mirror.sync();
    expect(mirror.get('a', 1_000_000 + HALF_LIFE_MS)?.clicks).toBeCloseTo(2, 10);
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
