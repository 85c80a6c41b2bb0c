import {
  Args,
  Field,
  Float,
  InputType,
  Int,
  Mutation,
  ObjectType,
  Resolver,
} from '@nestjs/graphql';
import { RequireRole } from '../auth/access';
import { IngestService } from './ingest.service';

@InputType('ItemInput', { description: 'A catalog item, validated like a `catalog.items` message' })
class ItemInput {
  @Field(() => Int, { nullable: true }) schemaVersion?: number;
  @Field() itemId!: string;
  @Field(() => String, { nullable: true, description: 'required unless deleted' }) title?: string;
  @Field(() => String, { nullable: true }) description?: string;
  @Field(() => String, { nullable: true }) category?: string;
  @Field(() => [String], { nullable: true }) tags?: string[];
  @Field(() => Float, { nullable: true }) price?: number;
  @Field(() => String, { nullable: true, description: 'ISO-8601' }) createdAt?: string;
  @Field(() => String, {
    nullable: true,
    description: 'ISO-8601 time of this version; the newest wins (default: now)',
  })
  updatedAt?: string;
  @Field(() => Boolean, { nullable: true }) deleted?: boolean;
}

@ObjectType('UpsertItemsResult')
class UpsertItemsResult {
  @Field(() => Int) received!: number;
  @Field(() => Int) inserted!: number;
  @Field(() => Int) updated!: number;
  @Field(() => Int, { description: 'ignored because a newer version is stored' }) stale!: number;
}

/** Item backfill for operators without Kafka. */
@Resolver()
export class ItemsResolver {
  constructor(private readonly ingest: IngestService) {}

  @RequireRole('ops')
  @Mutation(() => UpsertItemsResult)
  async upsertItems(
    @Args('items', { type: () => [ItemInput] }) items: ItemInput[],
  ): Promise<UpsertItemsResult> {
    // GraphQL nulls mean "absent" in the message contract.
    const inputs = items.map((item) =>
      Object.fromEntries(Object.entries(item).filter(([, value]) => value !== null)),
    );
    return this.ingest.upsertItems(inputs);
  }
}
