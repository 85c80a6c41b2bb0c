-- Up Migration

-- How a profile merges the built-in features: 'learned' (the served version's learned combiner
-- where it has one) or 'hand' (its own weights). Profiles stored before keep ranking exactly as
-- they did ('hand'); the default profile follows the learned combiner, which a version only
-- carries once it beat the model alone on held-out slates.
ALTER TABLE ranking_profiles
  ADD COLUMN scoring text NOT NULL DEFAULT 'learned' CHECK (scoring IN ('learned', 'hand'));
UPDATE ranking_profiles SET scoring = 'hand' WHERE name <> 'default';

-- Down Migration

ALTER TABLE ranking_profiles DROP COLUMN scoring;
