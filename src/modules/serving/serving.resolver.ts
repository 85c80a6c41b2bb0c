import {
  Field,
  Float,
  ID,
  Int,
  ObjectType,
  Parent,
  Query,
  ResolveField,
  Resolver,
} from '@nestjs/graphql';
import { RequireRole } from '../auth/access';
import { ModelVersionGql } from '../registry/registry.graphql';
import { ModelSwapService } from './model-swap.service';
import { ServingService } from './serving.service';
import { StoredIndexService } from './stored-index.service';

@ObjectType('ServingModel', { description: 'What this replica scores with right now' })
export class ServingModelGql {
  @Field(() => ID, { nullable: true, description: 'null until a version was loaded' })
  versionId!: string | null;
  @Field(() => Date, { nullable: true }) loadedAt!: Date | null;
  @Field(() => Float, { nullable: true, description: 'fetch, verify and precompute time' })
  loadMs!: number | null;
  @Field(() => ID, { nullable: true, description: 'a version this replica failed to load' })
  failedVersionId!: string | null;
  @Field(() => String, { nullable: true }) loadError!: string | null;
  @Field(() => [ID], { description: 'versions loaded for the running experiment’s arms' })
  armVersionIds!: string[];
  @Field(() => ID, {
    nullable: true,
    description:
      'the version recommend retrieves with: the active one, or the one before while the active one’s ANN index builds',
  })
  recommendVersionId!: string | null;
}

@Resolver()
export class ServingResolver {
  constructor(
    private readonly swap: ModelSwapService,
    private readonly serving: ServingService,
  ) {}

  @RequireRole('ops')
  @Query(() => ServingModelGql, { description: 'the version this replica scores with' })
  servingModel(): ServingModelGql {
    const { model, failure } = this.swap.status();
    return {
      versionId: model?.versionId ?? null,
      loadedAt: model?.loadedAt ?? null,
      loadMs: model?.loadMs ?? null,
      failedVersionId: failure?.versionId ?? null,
      loadError: failure?.error ?? null,
      armVersionIds: [...this.swap.others().keys()],
      recommendVersionId: this.serving.forRetrieval().served?.versionId ?? null,
    };
  }
}

@ObjectType('StoredRetrievalIndex', {
  description: 'An ANN index kept in PostgreSQL for the replicas',
})
class StoredRetrievalIndexGql {
  @Field(() => Int, { description: 'items indexed' }) points!: number;
  @Field(() => Float, { description: 'bytes of the index file' }) bytes!: number;
  @Field(() => Int) dimension!: number;
  @Field(() => Int, { description: 'HNSW links per node' }) m!: number;
  @Field(() => Int) efConstruction!: number;
  @Field() storedAt!: Date;
  @Field(() => Float, {
    nullable: true,
    description:
      'recall@20 of recommend’s candidates against the exact scan on 64 sampled users; null: stored before it was sampled',
  })
  recall!: number | null;
  @Field(() => Float, {
    nullable: true,
    description:
      'how far its items moved since its graph was built: the mean angle in degrees (adoptions in a row added up); 0: built here',
  })
  graphDrift!: number | null;
  @Field(() => ID, {
    nullable: true,
    description:
      'the version whose graph it kept with this version’s vectors (RECOMMEND_ANN_ADOPT); null: built',
  })
  adoptedFrom!: string | null;
}

@ObjectType('RetrievalIndexState', {
  description: 'A version’s ANN index for recommend: stored for the replicas, or being built',
})
class RetrievalIndexStateGql {
  @Field(() => StoredRetrievalIndexGql, {
    nullable: true,
    description: 'the newest stored one; null: none (replicas serving the version build one)',
  })
  stored!: StoredRetrievalIndexGql | null;
  @Field(() => String, {
    nullable: true,
    description:
      'the process building one now (host:pid:…, the train role or a replica); null: none',
  })
  buildingBy!: string | null;
}

/** `ModelVersion.retrievalIndex`: whether activating the version finds its index ready. */
@Resolver(() => ModelVersionGql)
export class VersionIndexResolver {
  constructor(private readonly indexes: StoredIndexService) {}

  @ResolveField(() => RetrievalIndexStateGql, {
    description: 'its ANN index for recommend (catalogs above RECOMMEND_ANN_MIN_ITEMS)',
  })
  async retrievalIndex(@Parent() version: ModelVersionGql): Promise<RetrievalIndexStateGql> {
    const { stored, builder } = await this.indexes.state(version.id);
    return {
      stored:
        stored === undefined
          ? null
          : {
              ...stored,
              bytes: stored.size,
              recall: stored.recall ?? null,
              graphDrift: stored.graphDrift ?? null,
              adoptedFrom: stored.adoptedFrom ?? null,
            },
      buildingBy: builder ?? null,
    };
  }
}
