import { itemText, itemTextHash } from '../embedding/item-text';
import type { EventType } from '../../common/event-types';
import type { CatalogItem, UserEvent } from './ingest.schemas';

/** One `events` row. */
export interface EventRow {
  readonly eventId: string;
  readonly type: EventType;
  readonly userId: string;
  readonly itemId: string;
  readonly ts: Date;
  readonly requestId: string | null;
  readonly position: number | null;
  readonly context: Readonly<Record<string, unknown>> | null;
}

/** One `items` write; `sourceTs` orders writes of the same item (newest wins). */
export interface ItemRow {
  readonly itemId: string;
  readonly title: string;
  readonly description: string | null;
  readonly category: string | null;
  readonly tags: readonly string[];
  readonly price: number | null;
  readonly createdAt: Date | null;
  readonly sourceTs: Date;
  readonly deleted: boolean;
  readonly textHash: string;
}

export function toEventRow(event: UserEvent): EventRow {
  return {
    eventId: event.eventId,
    type: event.type,
    userId: event.userId,
    itemId: event.itemId,
    ts: event.timestamp,
    requestId: event.requestId ?? null,
    position: event.position ?? null,
    context: event.context ?? null,
  };
}

/** `fallbackTs` (the Kafka message timestamp, or now) orders writes that carry no `updatedAt`. */
export function toItemRow(item: CatalogItem, fallbackTs: Date): ItemRow {
  const title = item.title ?? '';
  const description = item.description ?? null;
  const category = item.category ?? null;
  const tags = item.tags ?? [];
  return {
    itemId: item.itemId,
    title,
    description,
    category,
    tags,
    price: item.price ?? null,
    createdAt: item.createdAt ?? null,
    sourceTs: item.updatedAt ?? fallbackTs,
    deleted: item.deleted ?? false,
    textHash: itemTextHash(itemText({ title, category, tags, description })),
  };
}

/**
 * One write per item: the newest `sourceTs`, the later one in input order on a tie (a single SQL
 * upsert cannot touch a row twice, and the database applies the same rule across batches).
 */
export function latestItemWrites(rows: readonly ItemRow[]): ItemRow[] {
  const latest = new Map<string, ItemRow>();
  for (const row of rows) {
    const current = latest.get(row.itemId);
    if (current === undefined || row.sourceTs.getTime() >= current.sourceTs.getTime()) {
      latest.set(row.itemId, row);
    }
  }
  return [...latest.values()];
}
