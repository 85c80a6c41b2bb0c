-- Up Migration

-- Named merges of the model score with the other features, editable by ops (GraphQL
-- `upsertRankingProfile`). `weights` maps a feature name to its weight; `boosts` is a list of
-- {category | itemIds, value}. Replicas re-read this table every few seconds.
CREATE TABLE ranking_profiles (
  name                   text PRIMARY KEY,
  weights                jsonb NOT NULL,
  boosts                 jsonb NOT NULL DEFAULT '[]',
  recency_half_life_days double precision NOT NULL CHECK (recency_half_life_days > 0),
  updated_at             timestamptz NOT NULL DEFAULT now()
);

-- Mirrors DEFAULT_PROFILE in src/modules/ranking/profile.ts.
INSERT INTO ranking_profiles (name, weights, boosts, recency_half_life_days) VALUES (
  'default',
  '{"model": 1, "prior": 0.5, "popularity": 0.2, "ctr": 0.5, "recency": 0.1, "price": 0, "boost": 1, "feature:*": 1}',
  '[]',
  30
);

-- Down Migration

DROP TABLE ranking_profiles;
