import {
  Args,
  Context,
  Field,
  Float,
  ID,
  InputType,
  Int,
  Mutation,
  ObjectType,
  Query,
  registerEnumType,
  Resolver,
} from '@nestjs/graphql';
import { DomainError, ValidationError } from '../../common/errors';
import type { GraphqlContext } from '../../graphql/graphql.module';
import { RequireRole } from '../auth/access';
import { GraphqlCallers } from '../auth/graphql-callers';
import type { ProfileScoring } from './profile';
import { ProfileService } from './profile.service';
import type { StoredProfile } from './ranking.repository';
import { RankingService } from './ranking.service';
import type { RankingRequest, RankResult } from './ranking.service';

@InputType('FeatureInput')
class FeatureInput {
  @Field() name!: string;
  @Field(() => Float) value!: number;
}

@InputType('CandidateInput')
class CandidateInput {
  @Field(() => ID) itemId!: string;
  @Field(() => String, {
    nullable: true,
    description: 'encoded for items the catalog lacks; without it such items get the prior',
  })
  text?: string | null;
  @Field(() => [FeatureInput], {
    nullable: true,
    description: 'caller features, merged as parts named feature:<name>',
  })
  features?: FeatureInput[] | null;
}

@ObjectType('ScorePart', {
  description: 'One contribution: the item score is the sum of value × weight',
})
class ScorePartType {
  @Field() name!: string;
  @Field(() => Float, {
    description: 'the input itself under hand weights; its learned contribution under a combiner',
  })
  value!: number;
  @Field(() => Float) weight!: number;
  @Field(() => Float, { description: 'the feature value the part was computed from' })
  input!: number;
}

const PROFILE_SCORING = { LEARNED: 'learned', HAND: 'hand' } as const satisfies Record<
  string,
  ProfileScoring
>;
registerEnumType(PROFILE_SCORING, {
  name: 'ProfileScoring',
  description: 'How a profile merges the built-in features',
  valuesMap: {
    LEARNED: {
      description:
        "the served version's learned combiner where it has one (hand weights otherwise); boosts and caller features keep their weights",
    },
    HAND: { description: "the profile's own weights" },
  },
});

@ObjectType('RankedItem')
class RankedItemType {
  @Field(() => ID) itemId!: string;
  @Field(() => Int) rank!: number;
  @Field(() => Float) score!: number;
  @Field(() => [ScorePartType]) parts!: ScorePartType[];
}

@ObjectType('RankResult')
class RankResultType {
  @Field(() => [RankedItemType]) items!: RankedItemType[];
  @Field(() => ID, { nullable: true, description: 'the served model version; null when none is' })
  modelVersion!: string | null;
  @Field(() => String, {
    nullable: true,
    description: 'the running experiment that served this answer; null outside one',
  })
  experiment!: string | null;
  @Field(() => String, { nullable: true, description: 'the experiment arm that served it' })
  arm!: string | null;
  @Field(() => ID) requestId!: string;
  @Field(() => [String], {
    description:
      'why this answer is degraded: no_model, cold_user, online_state_from_postgres, popularity_stale, encoder_unavailable, user_vector_stale',
  })
  degraded!: string[];
}

@ObjectType('ProfileWeight')
class ProfileWeightType {
  @Field({
    description:
      'model, prior, popularity, ctr, recency, price, boost, feature:<name> or feature:*',
  })
  feature!: string;
  @Field(() => Float) weight!: number;
}

@ObjectType('ProfileBoost')
class ProfileBoostType {
  @Field(() => String, { nullable: true }) category?: string;
  @Field(() => [ID], { nullable: true }) itemIds?: string[];
  @Field(() => Float) value!: number;
}

@ObjectType('RankingProfile')
class RankingProfileType {
  @Field() name!: string;
  @Field(() => PROFILE_SCORING) scoring!: ProfileScoring;
  @Field(() => [ProfileWeightType]) weights!: ProfileWeightType[];
  @Field(() => [ProfileBoostType]) boosts!: ProfileBoostType[];
  @Field(() => Float) recencyHalfLifeDays!: number;
  @Field({ description: 'ISO-8601' }) updatedAt!: string;
}

@InputType('ProfileWeightInput')
class ProfileWeightInput {
  @Field() feature!: string;
  @Field(() => Float) weight!: number;
}

@InputType('ProfileBoostInput', { description: 'give exactly one of category and itemIds' })
class ProfileBoostInput {
  @Field(() => String, { nullable: true }) category?: string | null;
  @Field(() => [ID], { nullable: true }) itemIds?: string[] | null;
  @Field(() => Float) value!: number;
}

@InputType('RankingProfileInput')
class RankingProfileInput {
  @Field() name!: string;
  @Field(() => PROFILE_SCORING, { nullable: true, description: 'default LEARNED' })
  scoring?: ProfileScoring | null;
  @Field(() => [ProfileWeightInput]) weights!: ProfileWeightInput[];
  @Field(() => [ProfileBoostInput], { nullable: true }) boosts?: ProfileBoostInput[] | null;
  @Field(() => Float, { nullable: true, description: 'default 30' })
  recencyHalfLifeDays?: number | null;
}

const ARM_ARG = {
  type: () => String,
  nullable: true,
  description: 'serve this arm of the running experiment instead of the user’s own (ops keys only)',
};

function toType(result: RankResult): RankResultType {
  return {
    items: [...result.items],
    modelVersion: result.modelVersion,
    experiment: result.experiment,
    arm: result.arm,
    requestId: result.requestId,
    degraded: [...result.degraded],
  };
}

function toProfileType(profile: StoredProfile): RankingProfileType {
  return {
    name: profile.name,
    scoring: profile.scoring,
    weights: Object.entries(profile.weights).map(([feature, weight]) => ({ feature, weight })),
    boosts: profile.boosts.map((boost) => ({
      category: boost.category,
      itemIds: boost.itemIds === undefined ? undefined : [...boost.itemIds],
      value: boost.value,
    })),
    recencyHalfLifeDays: profile.recencyHalfLifeDays,
    updatedAt: profile.updatedAt.toISOString(),
  };
}

@Resolver()
export class RankingResolver {
  constructor(
    private readonly ranking: RankingService,
    private readonly profiles: ProfileService,
    private readonly costs: GraphqlCallers,
  ) {}

  /**
   * The request as ranking sees it: its id, the arm an ops caller forces (FORBIDDEN for others),
   * and the key that pays for encoded texts.
   */
  private request(context: GraphqlContext, forcedArm: string | null | undefined): RankingRequest {
    if (forcedArm != null && !this.costs.hasRole(context, 'ops')) {
      throw new DomainError('FORBIDDEN', 'arm: forcing an experiment arm requires role ops', {
        field: 'arm',
        requiredRole: 'ops',
      });
    }
    return {
      requestId: context.requestId,
      ...(forcedArm == null ? {} : { forcedArm }),
      charge: (units) => {
        this.costs.charge(context, units);
      },
    };
  }

  @RequireRole('read')
  @Query(() => RankResultType, { description: 'Orders the candidates for the user' })
  async rank(
    @Args('userId', { type: () => ID }) userId: string,
    @Args('candidates', { type: () => [CandidateInput] }) candidates: CandidateInput[],
    @Args('profile', { type: () => String, nullable: true }) profile: string | null,
    @Args('arm', ARM_ARG) arm: string | null | undefined,
    @Context() context: GraphqlContext,
  ): Promise<RankResultType> {
    return toType(
      await this.ranking.rank(userId, candidates, profile ?? undefined, this.request(context, arm)),
    );
  }

  @RequireRole('read')
  @Query(() => RankResultType, {
    description:
      'Nearest catalog items to the user’s interests (popular ones for new users), ranked',
  })
  async recommend(
    @Args('userId', { type: () => ID }) userId: string,
    @Args('first', { type: () => Int, defaultValue: 20 }) first: number,
    @Args('exclude', { type: () => [ID], nullable: true }) exclude: string[] | null,
    @Args('category', {
      type: () => String,
      nullable: true,
      description: 'only items of this category',
    })
    category: string | null,
    @Args('arm', ARM_ARG) arm: string | null | undefined,
    @Context() context: GraphqlContext,
  ): Promise<RankResultType> {
    return toType(
      await this.ranking.recommend(
        userId,
        first,
        exclude ?? [],
        category ?? undefined,
        this.request(context, arm),
      ),
    );
  }

  @RequireRole('read')
  @Query(() => [RankingProfileType])
  async rankingProfiles(): Promise<RankingProfileType[]> {
    return (await this.profiles.list()).map(toProfileType);
  }

  @RequireRole('ops')
  @Mutation(() => RankingProfileType, {
    description: 'Creates or replaces a ranking profile; every replica uses it within seconds',
  })
  async upsertRankingProfile(
    @Args('profile', { type: () => RankingProfileInput }) input: RankingProfileInput,
  ): Promise<RankingProfileType> {
    const weights: Record<string, number> = {};
    input.weights.forEach((entry, i) => {
      if (entry.feature in weights) {
        throw new ValidationError(`weights[${i}].feature`, `duplicate feature "${entry.feature}"`);
      }
      weights[entry.feature] = entry.weight;
    });
    const stored = await this.profiles.upsert({
      name: input.name,
      scoring: input.scoring ?? 'learned',
      weights,
      boosts: (input.boosts ?? []).map((boost) => ({
        ...(boost.category == null ? {} : { category: boost.category }),
        ...(boost.itemIds == null ? {} : { itemIds: boost.itemIds }),
        value: boost.value,
      })),
      recencyHalfLifeDays: input.recencyHalfLifeDays ?? 30,
    });
    return toProfileType(stored);
  }
}
