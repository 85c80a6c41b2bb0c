import { itemText, itemTextHash } from '../embedding/item-text';
import type { CatalogItem, EventType, UserEvent } from './ingest.schemas';
import { encodeRecent, isInteraction, POPULARITY_FIELDS } from './online-state.keys';

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

/** What one batch of newly stored events changes in the online state. */
export interface OnlineDelta {
  readonly users: readonly {
    readonly userId: string;
    /** score (ms), member pairs for the recent list. */
    readonly recent: readonly (readonly [number, string])[];
    readonly interactions: number;
  }[];
  readonly items: readonly {
    readonly itemId: string;
    /** The newest event time of this item in the batch; increments are valid at this time. */
    readonly ref: number;
    readonly imp: number;
    readonly clk: number;
    readonly cart: number;
    readonly buy: number;
  }[];
  readonly events: number;
}

/** Aggregates events per user and per item, decaying each increment to the item's newest event. */
export function onlineDelta(events: readonly EventRow[], halfLifeMs: number): OnlineDelta {
  const users = new Map<
    string,
    { userId: string; recent: [number, string][]; interactions: number }
  >();
  const refs = new Map<string, number>();
  for (const event of events) {
    const ts = event.ts.getTime();
    refs.set(event.itemId, Math.max(refs.get(event.itemId) ?? ts, ts));
    if (!isInteraction(event.type)) continue;
    let user = users.get(event.userId);
    if (user === undefined) {
      user = { userId: event.userId, recent: [], interactions: 0 };
      users.set(event.userId, user);
    }
    user.recent.push([
      ts,
      encodeRecent({ type: event.type, itemId: event.itemId, ts, eventId: event.eventId }),
    ]);
    user.interactions++;
  }
  const items = new Map<
    string,
    { itemId: string; ref: number; imp: number; clk: number; cart: number; buy: number }
  >();
  for (const event of events) {
    const ref = refs.get(event.itemId) ?? 0;
    let item = items.get(event.itemId);
    if (item === undefined) {
      item = { itemId: event.itemId, ref, imp: 0, clk: 0, cart: 0, buy: 0 };
      items.set(event.itemId, item);
    }
    item[POPULARITY_FIELDS[event.type]] += 2 ** ((event.ts.getTime() - ref) / halfLifeMs);
  }
  return { users: [...users.values()], items: [...items.values()], events: events.length };
}
