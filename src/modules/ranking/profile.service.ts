import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { ValidationError } from '../../common/errors';
import type { MaybePromise } from '../../common/maybe-async';
import type { Logger } from '../../common/logger';
import { LOGGER } from '../../infra/tokens';
import { DEFAULT_PROFILE, RankingProfile, validateProfile, validateProfileName } from './profile';
import { RankingRepository, StoredProfile } from './ranking.repository';

/** How often an unknown profile name may trigger an immediate reload. */
const MISS_RELOAD_MS = 1000;

/**
 * Ranking profiles from PostgreSQL, held in memory and re-read periodically so edits on any
 * replica reach all of them within RANK_PROFILE_REFRESH_MS. Until the first read succeeds the
 * built-in default serves.
 */
@Injectable()
export class ProfileService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger: Logger;
  private profiles = new Map<string, RankingProfile>([['default', DEFAULT_PROFILE]]);
  private timer: NodeJS.Timeout | undefined;
  private lastMissReload = 0;

  constructor(
    private readonly repository: RankingRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ component: 'ranking-profiles' });
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.reload();
    this.timer = setInterval(() => void this.reload(), this.config.ranking.profileRefreshMs);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  /**
   * The named profile (default when no name), at hand when known; an unknown name is a
   * BAD_USER_INPUT on `profile`, after one reload at most every MISS_RELOAD_MS.
   */
  get(name: string | undefined): MaybePromise<RankingProfile> {
    if (name !== undefined) validateProfileName(name, 'profile');
    const key = name ?? 'default';
    return this.profiles.get(key) ?? this.reloadFor(key);
  }

  private async reloadFor(key: string): Promise<RankingProfile> {
    const now = Date.now();
    if (now - this.lastMissReload >= MISS_RELOAD_MS) {
      this.lastMissReload = now;
      await this.reload();
      const reloaded = this.profiles.get(key);
      if (reloaded !== undefined) return reloaded;
    }
    throw new ValidationError('profile', `unknown ranking profile "${key}"`);
  }

  list(): Promise<StoredProfile[]> {
    return this.repository.profiles();
  }

  async upsert(profile: RankingProfile): Promise<StoredProfile> {
    const stored = await this.repository.upsertProfile(validateProfile(profile));
    this.profiles.set(stored.name, stored);
    return stored;
  }

  private async reload(): Promise<void> {
    try {
      const rows = await this.repository.profiles();
      const next = new Map<string, RankingProfile>([['default', DEFAULT_PROFILE]]);
      for (const row of rows) next.set(row.name, row);
      this.profiles = next;
    } catch (error) {
      this.logger.warn({ err: error }, 'ranking profiles reload failed; keeping the last copy');
    }
  }
}
