import { createLogger } from '../../common/logger';
import { loadConfig } from '../../config/config';
import { Metrics } from '../metrics/metrics.registry';
import { InterestChangeFollower } from '../online-state/interest-change-follower';
import { FakeInterestChangeFeed } from '../../../test/support/fakes/interest-change-feed';
import { LocalUserVector, LocalUserVectors } from './local-user-vectors';

function setUp(env: Record<string, string> = {}, feed = new FakeInterestChangeFeed()) {
  const config = loadConfig({ RANK_POPULARITY_SYNC_MS: '250', ...env });
  const metrics = new Metrics({});
  const follower = new InterestChangeFollower(feed, config, createLogger('silent'), metrics);
  const local = new LocalUserVectors(follower, config, metrics);
  followers.push(follower);
  return { feed, follower, local };
}

const followers: InterestChangeFollower[] = [];
afterEach(() => {
  for (const follower of followers.splice(0)) follower.onApplicationShutdown();
});

const entry = (value: number, modelVersion = '7', vectorsGeneration?: number): LocalUserVector => ({
  modelVersion,
  vectorsGeneration,
  vector: Float32Array.of(value, value),
});

describe('LocalUserVectors', () => {
  it("answers a kept user's vector until the interest-changes streams say the user interacted", async () => {
    const { feed, follower, local } = setUp();
    await follower.sync();
    local.put('ann', local.ticket(), entry(1));
    local.put('bob', local.ticket(), entry(2));
    expect(local.get('ann', '7', 0)).toEqual(Float32Array.of(1, 1));

    feed.interacted('ann');
    expect(local.get('ann', '7', 0)).toEqual(Float32Array.of(1, 1));
    await follower.sync();
    expect(local.get('ann', '7', 0)).toBeUndefined();
    expect(local.get('bob', '7', 0)).toEqual(Float32Array.of(2, 2));
  });

  it('tells a miss that the user interacted, until the rebuilt vector is kept in the same array', async () => {
    const { feed, follower, local } = setUp();
    await follower.sync();
    local.put('ann', local.ticket(), entry(1));
    const kept = local.get('ann', '7', 0);
    expect(local.interacted('ann')).toBe(false);
    feed.interacted('ann');
    await follower.sync();
    expect(local.get('ann', '7', 0)).toBeUndefined();
    expect(local.interacted('ann')).toBe(true);
    expect(local.interacted('bob')).toBe(false);
    local.put('ann', local.ticket(), entry(4));
    expect(local.interacted('ann')).toBe(false);
    expect(local.get('ann', '7', 0)).toBe(kept);
    expect(Array.from(kept ?? [])).toEqual([4, 4]);
  });

  it('answers nothing before the first sync, nor while the streams cannot be read', async () => {
    const feed = new FakeInterestChangeFeed();
    feed.fail = true;
    const { follower, local } = setUp({}, feed);
    local.put('ann', local.ticket(), entry(1));
    expect(local.get('ann', '7', 0)).toBeUndefined();
    await follower.sync();
    expect(follower.isFresh()).toBe(false);
    expect(local.get('ann', '7', 0)).toBeUndefined();
    feed.fail = false;
    await follower.sync();
    local.put('ann', local.ticket(), entry(1));
    expect(local.get('ann', '7', 0)).toEqual(Float32Array.of(1, 1));
  });

  it('does not keep a vector read before the follower told of changes', async () => {
    const { feed, follower, local } = setUp();
    await follower.sync();
    const ticket = local.ticket();
    feed.interacted('ann');
    await follower.sync();
    local.put('ann', ticket, entry(1));
    expect(local.get('ann', '7', 0)).toBeUndefined();
    local.put('ann', local.ticket(), entry(2));
    expect(local.get('ann', '7', 0)).toEqual(Float32Array.of(2, 2));
  });

  it('answers only the model version and vectors generation a vector was built for', async () => {
    const { follower, local } = setUp();
    await follower.sync();
    local.put('ann', local.ticket(), entry(1, '7'));
    expect(local.get('ann', '8', 0)).toBeUndefined();
    local.put('bob', local.ticket(), entry(2, '7', 3));
    expect(local.get('bob', '7', 4)).toBeUndefined();
    local.put('cyd', local.ticket(), entry(3, '7', 3));
    expect(local.get('cyd', '7', 3)).toEqual(Float32Array.of(3, 3));
  });

  it('forgets every user after a clear of the online state', async () => {
    const { feed, follower, local } = setUp();
    await follower.sync();
    local.put('ann', local.ticket(), entry(1));
    feed.clear();
    await follower.sync();
    expect(local.get('ann', '7', 0)).toBeUndefined();
  });

  it('keeps at most RANK_USER_VECTOR_LOCAL_CAPACITY users, dropping one not read since the last scan', async () => {
    const { follower, local } = setUp({ RANK_USER_VECTOR_LOCAL_CAPACITY: '2' });
    await follower.sync();
    local.put('ann', local.ticket(), entry(1));
    local.put('bob', local.ticket(), entry(2));
    expect(local.get('ann', '7', 0)).toBeDefined();
    local.put('cyd', local.ticket(), entry(3));
    expect(local.get('bob', '7', 0)).toBeUndefined();
    expect(local.get('ann', '7', 0)).toBeDefined();
    expect(local.get('cyd', '7', 0)).toBeDefined();
  });

  it("keeps a copy, and rebuilds overwrite the user's own array instead of allocating one", async () => {
    const { follower, local } = setUp();
    await follower.sync();
    const first = entry(1);
    local.put('ann', local.ticket(), first);
    first.vector.fill(9);
    const kept = local.get('ann', '7', 0);
    expect(Array.from(kept ?? [])).toEqual([1, 1]);
    local.put('ann', local.ticket(), entry(5, '8'));
    expect(local.get('ann', '7', 0)).toBeUndefined();
    expect(local.get('ann', '8', 0)).toBe(kept);
    expect(Array.from(kept ?? [])).toEqual([5, 5]);
  });

  it('keeps nothing with RANK_USER_VECTOR_LOCAL_CAPACITY=0 or RANK_POPULARITY_SYNC_MS=0', async () => {
    const envs: Record<string, string>[] = [
      { RANK_USER_VECTOR_LOCAL_CAPACITY: '0' },
      { RANK_POPULARITY_SYNC_MS: '0' },
    ];
    for (const env of envs) {
      const { follower, local } = setUp(env);
      await follower.sync();
      local.put('ann', local.ticket(), entry(1));
      expect(local.enabled).toBe(false);
      expect(local.get('ann', '7', 0)).toBeUndefined();
    }
  });
});
