import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { OnlineStateRedisRepository } from './online-state-redis.repository';
import { OnlineEvent, onlineDelta } from './online-state.schema';

/** The ingest side: turns stored events into one atomic Redis update per batch. */
@Injectable()
export class OnlineStateWriter {
  constructor(
    private readonly redis: OnlineStateRedisRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** Applies `events` once: a batch re-applied under the same `token` is not counted again. */
  apply(events: readonly OnlineEvent[], token?: string): Promise<void> {
    return this.redis.apply(onlineDelta(events, this.config.online.popularityHalfLifeMs), token);
  }

  /** Deletes every online-state key; replicas' popularity copies reload. Returns keys deleted. */
  clear(): Promise<number> {
    return this.redis.clear();
  }

  ping(): Promise<void> {
    return this.redis.ping();
  }
}
