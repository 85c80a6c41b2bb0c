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
  Parent,
  Query,
  registerEnumType,
  ResolveField,
  Resolver,
} from '@nestjs/graphql';
import { RequireRole } from '../auth/access';
import { GraphqlCallers } from '../auth/graphql-callers';
import { ModelVersionGql, versionGql } from '../registry/registry.graphql';
import type { Experiment, ExperimentKind, ExperimentStatus } from './experiment';
import { ExperimentService } from './experiment.service';
import type {
  ArmReport,
  OnlineFigures,
  RateComparison,
  RateEstimate,
  Verdict,
} from './online-report';

const EXPERIMENT_KIND = { AB: 'ab', CANARY: 'canary' } as const satisfies Record<
  string,
  ExperimentKind
>;
registerEnumType(EXPERIMENT_KIND, { name: 'ExperimentKind' });

const EXPERIMENT_STATUS = {
  DRAFT: 'draft',
  RUNNING: 'running',
  STOPPED: 'stopped',
} as const satisfies Record<string, ExperimentStatus>;
registerEnumType(EXPERIMENT_STATUS, { name: 'ExperimentStatus' });

const VERDICT = {
  CONTROL: 'control',
  COLLECTING: 'collecting',
  BETTER: 'better',
  WORSE: 'worse',
  NO_DIFFERENCE: 'no_difference',
} as const satisfies Record<string, Verdict>;
registerEnumType(VERDICT, {
  name: 'ArmVerdict',
  description:
    'The arm’s CTR against the control’s: COLLECTING until both have the experiment’s minImpressions',
});

@ObjectType('Rate', { description: 'A proportion with its Wilson interval' })
class RateGql {
  @Field(() => Float) rate!: number;
  @Field(() => Float) low!: number;
  @Field(() => Float) high!: number;
}

@ObjectType('RateComparison', {
  description: 'An arm’s rate minus the control’s: interval, two-proportion z test',
})
class RateComparisonGql {
  @Field(() => Float) difference!: number;
  @Field(() => Float, { nullable: true, description: 'difference / control rate' })
  relativeLift!: number | null;
  @Field(() => Float) low!: number;
  @Field(() => Float) high!: number;
  @Field(() => Float) pValue!: number;
  @Field() significant!: boolean;
}

@ObjectType('OnlineFigures', {
  description:
    'Served slates joined with the events carrying their request ids, once past EXPERIMENT_ATTRIBUTION_DELAY_MS. Impressions: the request’s impression events, else its logged items; clicks, carts and purchases count distinct items.',
})
class OnlineFiguresGql {
  @Field(() => Int) slates!: number;
  @Field(() => Float) impressions!: number;
  @Field(() => Float) clicks!: number;
  @Field(() => Float) addToCarts!: number;
  @Field(() => Float) purchases!: number;
  @Field(() => RateGql, { description: 'clicks per impression' }) ctr!: RateGql;
  @Field(() => RateGql, { description: 'purchases per impression' }) conversion!: RateGql;
}

@ObjectType('ArmOnline')
class ArmOnlineGql extends OnlineFiguresGql {
  @Field(() => RateComparisonGql, { nullable: true, description: 'null for the control' })
  ctrVsControl!: RateComparisonGql | null;
  @Field(() => RateComparisonGql, { nullable: true })
  conversionVsControl!: RateComparisonGql | null;
  @Field(() => Float, {
    nullable: true,
    description:
      'impressions this arm and the control each still need for the design’s power at its minDetectableLift',
  })
  impressionsNeeded!: number | null;
  @Field(() => VERDICT) verdict!: Verdict;
  @Field() summary!: string;
}

@ObjectType('ExperimentArm')
class ArmGql {
  @Field() name!: string;
  @Field(() => ID, { nullable: true, description: 'null: whichever version is active' })
  modelVersion!: string | null;
  @Field(() => String, { nullable: true, description: 'null: the profile the request names' })
  profile!: string | null;
  @Field(() => Float, { description: 'percent of users' }) share!: number;
  /** `online`, from one report shared by the experiment's arms and read on first use. */
  report!: () => Promise<ArmOnlineGql>;
}

@ObjectType('Experiment')
class ExperimentGql {
  @Field(() => ID) id!: string;
  @Field() name!: string;
  @Field(() => EXPERIMENT_KIND) kind!: ExperimentKind;
  @Field(() => EXPERIMENT_STATUS) status!: ExperimentStatus;
  @Field() salt!: string;
  @Field(() => [ArmGql], { description: 'the first arm is the control' }) arms!: ArmGql[];
  @Field(() => Int) minImpressions!: number;
  @Field(() => Float) minDetectableLift!: number;
  @Field(() => Float) confidence!: number;
  @Field(() => Float) power!: number;
  @Field(() => String, { nullable: true }) outcome!: string | null;
  @Field(() => String, { nullable: true }) outcomeReason!: string | null;
  @Field() createdBy!: string;
  @Field() createdAt!: Date;
  @Field(() => Date, { nullable: true }) startedAt!: Date | null;
  @Field(() => Date, { nullable: true }) stoppedAt!: Date | null;
}

@InputType('ExperimentArmInput')
class ArmInput {
  @Field() name!: string;
  @Field(() => ID, { nullable: true, description: 'null: whichever version is active' })
  modelVersion?: string | null;
  @Field(() => String, { nullable: true, description: 'null: the profile the request names' })
  profile?: string | null;
  @Field(() => Float, { description: 'percent of users; the arms’ shares sum to 100' })
  share!: number;
}

@InputType('ExperimentInput')
class ExperimentInput {
  @Field() name!: string;
  @Field(() => [ArmInput], { description: 'the first arm is the control' }) arms!: ArmInput[];
  @Field(() => String, { nullable: true, description: 'default: the name' }) salt?: string | null;
  @Field(() => Int, { nullable: true, description: 'default 2000' })
  minImpressions?: number | null;
  @Field(() => Float, { nullable: true, description: 'default 0.1 (±10% CTR)' })
  minDetectableLift?: number | null;
  @Field(() => Float, { nullable: true, description: 'default 0.95' }) confidence?: number | null;
  @Field(() => Float, { nullable: true, description: 'default 0.8' }) power?: number | null;
}

const rate = (estimate: RateEstimate): RateGql => ({ ...estimate });
const comparison = (value: RateComparison | null): RateComparisonGql | null =>
  value === null ? null : { ...value };

/** A plain object of the figures' fields (spread into the types that extend them). */
function figuresGql(figures: OnlineFigures): Pick<OnlineFiguresGql, keyof OnlineFiguresGql> {
  return {
    ...figures.counts,
    ctr: rate(figures.ctr),
    conversion: rate(figures.conversion),
  };
}

function armOnlineGql(report: ArmReport): ArmOnlineGql {
  return {
    ...figuresGql(report),
    ctrVsControl: comparison(report.ctrVsControl),
    conversionVsControl: comparison(report.conversionVsControl),
    impressionsNeeded: report.impressionsNeeded,
    verdict: report.verdict,
    summary: report.summary,
  };
}

const optional = <T>(value: T | null | undefined): T | undefined => value ?? undefined;

/** Ops GraphQL of experiments and canaries; the figures are computed only when selected. */
@Resolver(() => ExperimentGql)
export class ExperimentsResolver {
  constructor(
    private readonly service: ExperimentService,
    private readonly callers: GraphqlCallers,
  ) {}

  /** The experiment with `arms.online` computed on first read, one report for all arms. */
  private toGql(experiment: Experiment): ExperimentGql {
    let reports: Promise<ArmReport[]> | undefined;
    const report = () => (reports ??= this.service.report(experiment));
    return {
      ...experiment,
      arms: experiment.arms.map((arm, index) => ({
        ...arm,
        report: () => report().then((all) => armOnlineGql(all[index])),
      })),
    };
  }

  @RequireRole('ops')
  @Query(() => [ExperimentGql], { description: 'newest first' })
  async experiments(
    @Args('first', { type: () => Int, defaultValue: 20 }) first: number,
  ): Promise<ExperimentGql[]> {
    return (await this.service.list(first)).map((experiment) => this.toGql(experiment));
  }

  @RequireRole('ops')
  @Query(() => ExperimentGql)
  async experiment(@Args('id', { type: () => ID }) id: string): Promise<ExperimentGql> {
    return this.toGql(await this.service.get(id));
  }

  @RequireRole('ops')
  @Mutation(() => ExperimentGql, { description: 'a draft; startExperiment runs it' })
  async createExperiment(
    @Args('experiment', { type: () => ExperimentInput }) input: ExperimentInput,
    @Context() context: object,
  ): Promise<ExperimentGql> {
    const created = await this.service.create(
      {
        name: input.name,
        salt: optional(input.salt),
        arms: input.arms.map((arm) => ({
          name: arm.name,
          modelVersion: arm.modelVersion ?? null,
          profile: arm.profile ?? null,
          share: arm.share,
        })),
        minImpressions: optional(input.minImpressions),
        minDetectableLift: optional(input.minDetectableLift),
        confidence: optional(input.confidence),
        power: optional(input.power),
      },
      this.callers.triggeredBy(context),
    );
    return this.toGql(created);
  }

  @RequireRole('ops')
  @Mutation(() => ExperimentGql, {
    description: 'every replica serves its arms within seconds; CONFLICT while another one runs',
  })
  async startExperiment(
    @Args('id', { type: () => ID }) id: string,
    @Context() context: object,
  ): Promise<ExperimentGql> {
    return this.toGql(await this.service.start(id, this.callers.triggeredBy(context)));
  }

  @RequireRole('ops')
  @Mutation(() => ExperimentGql, { description: 'ends it; nothing is promoted' })
  async stopExperiment(
    @Args('id', { type: () => ID }) id: string,
    @Context() context: object,
  ): Promise<ExperimentGql> {
    return this.toGql(await this.service.stop(id, this.callers.triggeredBy(context)));
  }

  @RequireRole('ops')
  @Mutation(() => ExperimentGql, {
    description:
      'ends it for the arm: its version becomes active, its profile (if any) the default profile',
  })
  async promoteArm(
    @Args('experimentId', { type: () => ID }) experimentId: string,
    @Args('arm') arm: string,
    @Context() context: object,
  ): Promise<ExperimentGql> {
    return this.toGql(
      await this.service.promoteArm(experimentId, arm, this.callers.triggeredBy(context)),
    );
  }

  @RequireRole('ops')
  @Mutation(() => ModelVersionGql, {
    description:
      'makes the version active for everyone, or with canaryPercent for that share of users: the canary is promoted after canaryMinImpressions per arm unless its CTR is significantly worse, then rolled back automatically',
  })
  async activateModelVersion(
    @Args('id', { type: () => ID }) id: string,
    @Args('canaryPercent', { type: () => Float, nullable: true })
    canaryPercent: number | null | undefined,
    @Args('canaryMinImpressions', {
      type: () => Int,
      nullable: true,
      description: 'default CANARY_MIN_IMPRESSIONS',
    })
    canaryMinImpressions: number | null | undefined,
    @Context() context: object,
  ): Promise<ModelVersionGql> {
    const canary =
      canaryPercent == null
        ? undefined
        : { percent: canaryPercent, minImpressions: optional(canaryMinImpressions) };
    return versionGql(await this.service.activate(id, canary, this.callers.triggeredBy(context)));
  }
}

/**
 * `ExperimentArm.online`. A resolver, not a property holding a promise: the fast path (graphql-jit)
 * reads a field without one as a plain value and would not await it.
 */
@Resolver(() => ArmGql)
export class ArmOnlineResolver {
  @ResolveField(() => ArmOnlineGql, { description: 'since the experiment started' })
  online(@Parent() arm: ArmGql): Promise<ArmOnlineGql> {
    return arm.report();
  }
}

@ObjectType('VersionOnline')
class VersionOnlineGql extends OnlineFiguresGql {
  @Field(() => Int, { description: 'the window: slates served in the last this many hours' })
  windowHours!: number;
}

/** `ModelVersion.online`: the version's own figures, whatever arm served it. */
@Resolver(() => ModelVersionGql)
export class VersionOnlineResolver {
  constructor(private readonly experiments: ExperimentService) {}

  @ResolveField(() => VersionOnlineGql, {
    description: 'clicks and purchases on the slates this version served (served-slate log)',
  })
  async online(@Parent() version: ModelVersionGql): Promise<VersionOnlineGql> {
    const { figures, windowHours } = await this.experiments.versionFigures(version.id);
    return { ...figuresGql(figures), windowHours };
  }
}
