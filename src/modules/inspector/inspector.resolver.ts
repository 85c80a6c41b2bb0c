import {
  Args,
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
import { InspectorService } from './inspector.service';

@ObjectType('Interaction')
class InteractionGql {
  @Field(() => ID) itemId!: string;
  @Field(() => String, { nullable: true, description: 'null: not in the catalog' })
  title!: string | null;
  @Field({ description: 'impression, click, add_to_cart or purchase' }) type!: string;
  @Field() at!: Date;
}

@ObjectType('DailyItemEvents')
class DailyEventsGql {
  @Field({ description: 'the UTC day' }) day!: Date;
  @Field(() => Int) impressions!: number;
  @Field(() => Int) clicks!: number;
  @Field(() => Int) addToCarts!: number;
  @Field(() => Int) purchases!: number;
}

@ObjectType('NearItem')
class NearItemGql {
  @Field(() => ID) itemId!: string;
  @Field(() => String, { nullable: true }) title!: string | null;
  @Field(() => Float, { description: 'dot product of the item vectors under the served version' })
  similarity!: number;
}

@ObjectType('CatalogItem')
class CatalogItemGql {
  @Field(() => ID) itemId!: string;
  @Field() title!: string;
  @Field(() => String, { nullable: true }) description!: string | null;
  @Field(() => String, { nullable: true }) category!: string | null;
  @Field(() => [String]) tags!: string[];
  @Field(() => Float, { nullable: true }) price!: number | null;
  @Field(() => Date, { nullable: true }) createdAt!: Date | null;
  @Field() deleted!: boolean;
}

/** Ops queries behind the console's inspector: what a user did, what an item is and is near. */
@Resolver(() => CatalogItemGql)
export class InspectorResolver {
  constructor(private readonly inspector: InspectorService) {}

  @RequireRole('ops')
  @Query(() => [InteractionGql], { description: 'the user’s recent interactions, newest first' })
  async userInteractions(
    @Args('userId', { type: () => ID }) userId: string,
    @Args('first', { type: () => Int, defaultValue: 20 }) first: number,
  ): Promise<InteractionGql[]> {
    return this.inspector.interactions(userId, first);
  }

  @RequireRole('ops')
  @Query(() => CatalogItemGql, { description: 'one catalog item; NOT_FOUND when unknown' })
  async catalogItem(@Args('itemId', { type: () => ID }) itemId: string): Promise<CatalogItemGql> {
    const item = await this.inspector.item(itemId);
    return { ...item, tags: [...item.tags] };
  }

  @ResolveField(() => [DailyEventsGql], { description: 'its events per UTC day, oldest first' })
  dailyEvents(
    @Parent() item: CatalogItemGql,
    @Args('days', { type: () => Int, defaultValue: 30 }) days: number,
  ): Promise<DailyEventsGql[]> {
    return this.inspector.dailyEvents(item.itemId, days);
  }

  @ResolveField(() => [NearItemGql], {
    description: 'nearest catalog items under the served version (empty without a vector)',
  })
  nearest(
    @Parent() item: CatalogItemGql,
    @Args('first', { type: () => Int, defaultValue: 10 }) first: number,
  ): Promise<NearItemGql[]> {
    return this.inspector.nearest(item.itemId, first);
  }
}
