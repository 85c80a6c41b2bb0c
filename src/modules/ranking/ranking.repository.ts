import { Inject, Injectable } from '@nestjs/common';
import type { Pool } from 'pg';
import { PG_POOL } from '../../infra/tokens';
import type { Boost, ProfileScoring, RankingProfile } from './profile';

export interface StoredProfile extends RankingProfile {
  readonly updatedAt: Date;
}

interface ProfileRow {
  name: string;
  scoring: ProfileScoring;
  weights: Record<string, number>;
  boosts: Boost[];
  recency_half_life_days: number;
  updated_at: Date;
}

const toProfile = (row: ProfileRow): StoredProfile => ({
  name: row.name,
  scoring: row.scoring,
  weights: row.weights,
  boosts: row.boosts,
  recencyHalfLifeDays: row.recency_half_life_days,
  updatedAt: row.updated_at,
});

/** Ranking's PostgreSQL: the ranking profiles. */
@Injectable()
export class RankingRepository {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  async profiles(): Promise<StoredProfile[]> {
    const { rows } = await this.pool.query<ProfileRow>(
      'SELECT name, scoring, weights, boosts, recency_half_life_days, updated_at FROM ranking_profiles',
    );
    return rows.map(toProfile);
  }

  async upsertProfile(profile: RankingProfile): Promise<StoredProfile> {
    const { rows } = await this.pool.query<ProfileRow>(
      `INSERT INTO ranking_profiles
         (name, weights, boosts, recency_half_life_days, scoring, updated_at)
       VALUES ($1, $2, $3, $4, $5, now())
       ON CONFLICT (name) DO UPDATE SET weights = EXCLUDED.weights, boosts = EXCLUDED.boosts,
         recency_half_life_days = EXCLUDED.recency_half_life_days, scoring = EXCLUDED.scoring,
         updated_at = now()
       RETURNING name, scoring, weights, boosts, recency_half_life_days, updated_at`,
      [
        profile.name,
        JSON.stringify(profile.weights),
        JSON.stringify(profile.boosts),
        profile.recencyHalfLifeDays,
        profile.scoring,
      ],
    );
    const row = rows.at(0);
    if (row === undefined) throw new Error('upsert returned no row');
    return toProfile(row);
  }
}
