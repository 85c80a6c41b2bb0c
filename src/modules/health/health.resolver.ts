import { Field, Float, ObjectType, Query, Resolver } from '@nestjs/graphql';
import { AllowAnonymous } from '../auth/access';
import { HealthService } from './health.service';

@ObjectType('DependencyCheck')
class DependencyCheckType {
  @Field() name!: string;
  @Field() ok!: boolean;
  @Field(() => Float) latencyMs!: number;
  @Field({ description: 'false: reported, but does not make the replica unready' })
  critical!: boolean;
  @Field(() => String, { nullable: true }) error?: string;
}

@ObjectType('Health')
class HealthType {
  @Field({ description: 'ok when every dependency answers, otherwise unavailable' })
  status!: string;
  @Field(() => [DependencyCheckType]) checks!: DependencyCheckType[];
}

@Resolver(() => HealthType)
export class HealthResolver {
  constructor(private readonly healthService: HealthService) {}

  @AllowAnonymous()
  @Query(() => HealthType)
  async health(): Promise<HealthType> {
    const readiness = await this.healthService.publicReadiness();
    return { status: readiness.status, checks: [...readiness.checks] };
  }
}
