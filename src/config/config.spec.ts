import { ConfigError, loadConfig } from './config';

describe('loadConfig', () => {
  it('applies documented defaults when nothing is set', () => {
    const config = loadConfig({});
    expect(config.role).toBe('all');
    expect(config.http.port).toBe(3000);
    expect(config.kafka.brokers).toEqual(['127.0.0.1:9092']);
    expect(config.postgres.url).toBe('postgres://postgres@127.0.0.1:5432/recsys');
  });

  it('parses typed values', () => {
    const config = loadConfig({ PORT: '8080', KAFKA_BROKERS: 'a:1, b:2', ROLE: 'api' });
    expect(config.http.port).toBe(8080);
    expect(config.kafka.brokers).toEqual(['a:1', 'b:2']);
    expect(config.role).toBe('api');
  });

  it.each([
    ['PORT', 'eighty'],
    ['PORT', '70000'],
    ['ROLE', 'web'],
    ['DATABASE_URL', 'mysql://x'],
    ['REDIS_URL', 'not a url'],
    ['KAFKA_BROKERS', ' , '],
    ['REDIS_KEY_PREFIX', '{recsys}:'],
    ['REDIS_CLUSTER_NODES', 'redis-0'],
    ['REDIS_CLUSTER_NODES', 'redis-0:7000,redis-1:70000'],
  ])('rejects %s=%s naming the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`${name}=`));
  });

  it('talks to a Redis Cluster when REDIS_CLUSTER_NODES lists its nodes', () => {
    expect(loadConfig({}).redis.clusterNodes).toBeNull();
    expect(
      loadConfig({ REDIS_CLUSTER_NODES: 'redis-0:7000, 10.0.0.2:7001,[::1]:7002' }).redis
        .clusterNodes,
    ).toEqual([
      { host: 'redis-0', port: 7000 },
      { host: '10.0.0.2', port: 7001 },
      { host: '::1', port: 7002 },
    ]);
  });

  it('needs a direct URL apart from DATABASE_URL when that reaches a transaction-mode pooler', () => {
    const pooled = 'postgres://recsys@pgbouncer:6432/recsys';
    const direct = 'postgres://recsys@postgres:5432/recsys';
    expect(loadConfig({}).postgres.pooler).toBe('none');
    expect(
      loadConfig({ PG_POOLER: 'transaction', DATABASE_URL: pooled, DATABASE_DIRECT_URL: direct })
        .postgres,
    ).toMatchObject({ pooler: 'transaction', url: pooled, directUrl: direct });
    expect(() => loadConfig({ PG_POOLER: 'transaction', DATABASE_URL: pooled })).toThrow(
      /DATABASE_DIRECT_URL="": required with PG_POOLER=transaction/,
    );
    expect(() =>
      loadConfig({ PG_POOLER: 'transaction', DATABASE_URL: pooled, DATABASE_DIRECT_URL: pooled }),
    ).toThrow(
      /DATABASE_DIRECT_URL=".*": required with PG_POOLER=transaction, and not DATABASE_URL/,
    );
    expect(() => loadConfig({ PG_POOLER: 'session' })).toThrow(/PG_POOLER="session"/);
  });

  it('defaults to API-key auth and health/metrics on PORT; OPS_PORT must differ from PORT', () => {
    expect(loadConfig({}).auth).toEqual({
      mode: 'api-key',
      rateLimitPerSecond: { read: 1000, ops: 20 },
    });
    expect(loadConfig({}).http.opsPort).toBeNull();
    expect(loadConfig({ OPS_PORT: '9100' }).http.opsPort).toBe(9100);
    expect(() => loadConfig({ PORT: '3000', OPS_PORT: '3000' })).toThrow(
      /OPS_PORT="3000": must differ from PORT/,
    );
    expect(() => loadConfig({ AUTH_MODE: 'none' })).toThrow(/AUTH_MODE="none"/);
    expect(() => loadConfig({ AUTH_RATE_LIMIT_READ_PER_SECOND: '0' })).toThrow(
      /AUTH_RATE_LIMIT_READ_PER_SECOND=/,
    );
  });

  it('keeps the GraphQL list limit at least as long as the candidate limit', () => {
    expect(loadConfig({ RANK_MAX_CANDIDATES: '500' }).graphql.maxListLength).toBe(1000);
    expect(() => loadConfig({ RANK_MAX_CANDIDATES: '5000' })).toThrow(
      /GRAPHQL_MAX_LIST_LENGTH="": must be at least RANK_MAX_CANDIDATES \(5000\)/,
    );
  });

  it('keeps every event by default; a training window must fit the retention', () => {
    expect(loadConfig({}).events).toEqual({ retentionDays: 0, partitionsAheadDays: 3 });
    expect(loadConfig({}).training.windowDays).toBe(0);
    expect(
      loadConfig({ EVENTS_RETENTION_DAYS: '30', TRAIN_WINDOW_DAYS: '30' }).training.windowDays,
    ).toBe(30);
    expect(() => loadConfig({ EVENTS_RETENTION_DAYS: '30', TRAIN_WINDOW_DAYS: '45' })).toThrow(
      /TRAIN_WINDOW_DAYS="45": must not exceed EVENTS_RETENTION_DAYS \(30\)/,
    );
    expect(() => loadConfig({ EVENTS_PARTITIONS_AHEAD_DAYS: '0' })).toThrow(
      /EVENTS_PARTITIONS_AHEAD_DAYS="0"/,
    );
  });

  it('trains the pooled-vector tower unless token attention is asked for', () => {
    expect(loadConfig({}).training).toMatchObject({ tokenAttention: false, encoderTopLayers: 0 });
    expect(
      loadConfig({ TRAIN_TOKEN_ATTENTION: 'true', TRAIN_ENCODER_TOP_LAYERS: '1' }).training,
    ).toMatchObject({ tokenAttention: true, encoderTopLayers: 1, encoderLearningRate: 0.00002 });
    expect(() => loadConfig({ TRAIN_ENCODER_TOP_LAYERS: '1' })).toThrow(
      /TRAIN_ENCODER_TOP_LAYERS="1": needs TRAIN_TOKEN_ATTENTION=true/,
    );
    expect(() =>
      loadConfig({ TRAIN_TOKEN_ATTENTION: 'true', TRAIN_ENCODER_TOP_LAYERS: '3' }),
    ).toThrow(/TRAIN_ENCODER_TOP_LAYERS/);
  });

  it('picks the log format at start unless LOG_FORMAT names one', () => {
    expect(loadConfig({}).logFormat).toBe('auto');
    expect(loadConfig({ LOG_FORMAT: 'pretty' }).logFormat).toBe('pretty');
    expect(() => loadConfig({ LOG_FORMAT: 'text' })).toThrow(/LOG_FORMAT="text"/);
  });

  it('runs the GraphQL fast path unless GRAPHQL_FAST_PATH is false', () => {
    expect(loadConfig({}).graphql.fastPath).toBe(true);
    expect(loadConfig({ GRAPHQL_FAST_PATH: 'false' }).graphql.fastPath).toBe(false);
    expect(loadConfig({ GRAPHQL_FAST_PATH: '0' }).graphql.fastPath).toBe(false);
    expect(() => loadConfig({ GRAPHQL_FAST_PATH: 'off' })).toThrow(
      /GRAPHQL_FAST_PATH="off": must be true or false/,
    );
  });

  it('reports every bad variable at once', () => {
    try {
      loadConfig({ PORT: 'x', ROLE: 'y' });
      throw new Error('expected a ConfigError');
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).issues).toHaveLength(2);
    }
  });
});
