-- Up Migration

-- A built-in feature a profile does not name now takes the feature's default weight (so a new
-- built-in feature needs no migration). Profiles stored before that ranked without the features
-- they did not name: spell those out as 0, so every stored profile ranks exactly as before.
UPDATE ranking_profiles
   SET weights = '{"model": 0, "prior": 0, "popularity": 0, "ctr": 0, "recency": 0, "price": 0, "boost": 0}'::jsonb
                 || weights;

-- Down Migration

-- Nothing to undo: explicit zeros rank the same under the earlier rule (unnamed = 0).
SELECT 1;
