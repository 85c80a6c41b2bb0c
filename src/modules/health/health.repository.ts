import { Inject, Injectable } from '@nestjs/common';
import { Pool } from 'pg';
import { KAFKA, PG_DIRECT_POOL, PG_POOL, REDIS } from '../../infra/tokens';
import type { RedisClient } from '../../infra/redis';
import { KafkaClients } from '../../infra/kafka';

/** Cheap round trips to each dependency; the service adds timeouts and interpretation. */
@Injectable()
export class HealthRepository {
  constructor(
    // Its own pool: ranking's fallback reads during a Redis outage may fill the query pool.
    @Inject(PG_DIRECT_POOL) private readonly pool: Pool,
    @Inject(PG_POOL) private readonly queryPool: Pool,
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(KAFKA) private readonly kafka: KafkaClients,
  ) {}

  async pingPostgres(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  /** Through the query pool: with PG_POOLER=transaction, the pooler's path to PostgreSQL. */
  async pingPostgresQueries(): Promise<void> {
    await this.queryPool.query('SELECT 1');
  }

  async pingRedis(): Promise<void> {
    await this.redis.ping();
  }

  async pingKafka(): Promise<void> {
    await this.kafka.probeCluster();
  }
}
