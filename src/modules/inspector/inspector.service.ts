import { Injectable } from '@nestjs/common';
import { DomainError, ValidationError } from '../../common/errors';
import { idProblem } from '../../common/ids';
import { OnlineStateReader } from '../online-state/online-state.reader';
import { ServingService } from '../serving/serving.service';
import { topKOf } from '../serving/top-k';
import { DailyEvents, InspectorRepository, ItemRecord } from './inspector.repository';

const MAX_LIST = 100;
const MAX_DAYS = 365;

export interface InspectedInteraction {
  readonly itemId: string;
  readonly title: string | null;
  readonly type: string;
  readonly at: Date;
}

export interface Neighbour {
  readonly itemId: string;
  readonly title: string | null;
  /** Dot product of the two items' vectors under the served version. */
  readonly similarity: number;
}

function checkId(field: string, value: string): void {
  const problem = idProblem(value);
  if (problem !== undefined) throw new ValidationError(field, problem);
}

function checkCount(field: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new ValidationError(field, `must be between 1 and ${max}`);
  }
}

/**
 * "Why did this user see that?": a user's recent interactions with the items' titles, an item's
 * catalog record, its events per day and its nearest items under the served version.
 */
@Injectable()
export class InspectorService {
  constructor(
    private readonly repository: InspectorRepository,
    private readonly online: OnlineStateReader,
    private readonly serving: ServingService,
  ) {}

  async interactions(userId: string, first: number): Promise<InspectedInteraction[]> {
    checkId('userId', userId);
    checkCount('first', first, MAX_LIST);
    const { value } = await this.online.recent(userId, first);
    const items = await this.repository.items([...new Set(value.map((i) => i.itemId))]);
    return value.map((interaction) => ({
      itemId: interaction.itemId,
      title: items.get(interaction.itemId)?.title ?? null,
      type: interaction.type,
      at: new Date(interaction.ts),
    }));
  }

  async item(itemId: string): Promise<ItemRecord> {
    checkId('itemId', itemId);
    const found = (await this.repository.items([itemId])).get(itemId);
    if (found === undefined) throw new DomainError('NOT_FOUND', `item ${itemId} does not exist`);
    return found;
  }

  dailyEvents(itemId: string, days: number): Promise<DailyEvents[]> {
    checkCount('days', days, MAX_DAYS);
    return this.repository.dailyEvents(itemId, days);
  }

  /** Empty when no version is served or it has no vector for the item. */
  async nearest(itemId: string, first: number): Promise<Neighbour[]> {
    checkCount('first', first, MAX_LIST);
    const { items, served } = this.serving.current();
    const row = items.row(itemId);
    if (served === undefined || row < 0 || !served.vectors.has(row)) return [];
    const { vectors } = served;
    const query = vectors.vector(row);
    const found = topKOf(
      Math.min(vectors.rows, items.size),
      first,
      (from, to, out) => {
        vectors.dotRange(from, to, query, out);
      },
      (candidate) => candidate === row || !vectors.has(candidate) || items.deleted(candidate),
    );
    const ids = Array.from(found.rows, (candidate) => items.id(candidate));
    const records = await this.repository.items(ids);
    return ids.map((id, i) => ({
      itemId: id,
      title: records.get(id)?.title ?? null,
      similarity: found.scores[i],
    }));
  }
}
