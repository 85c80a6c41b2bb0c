import type { EventRow } from '../../src/modules/ingest/ingest.batch';

/** Test data in the Kafka contracts and as the ingest module stores it, with overrides. */
let sequence = 0;

export interface UserEventInput {
  eventId: string;
  type: 'impression' | 'click' | 'add_to_cart' | 'purchase';
  userId: string;
  itemId: string;
  timestamp: string | number;
  requestId?: string;
  position?: number;
  context?: Record<string, unknown>;
}

export function userEvent(overrides: Partial<UserEventInput> = {}): UserEventInput {
  sequence++;
  return {
    eventId: `evt-${String(sequence)}-${String(Date.now())}`,
    type: 'click',
    userId: 'user-1',
    itemId: 'item-1',
    timestamp: '2025-01-01T00:00:00.000Z',
    ...overrides,
  };
}

/** An `events` row as ingest stores it (IngestRepository.insertEvents). */
export function eventRow(overrides: Partial<EventRow> = {}): EventRow {
  sequence++;
  return {
    eventId: `row-${String(sequence)}-${String(Date.now())}`,
    type: 'click',
    userId: 'user-1',
    itemId: 'item-1',
    ts: new Date('2025-01-01T00:00:00.000Z'),
    requestId: null,
    position: null,
    context: null,
    ...overrides,
  };
}

export interface CatalogItemInput {
  itemId: string;
  title?: string;
  description?: string;
  category?: string;
  tags?: string[];
  price?: number;
  createdAt?: string;
  updatedAt?: string;
  deleted?: boolean;
}

export function catalogItem(overrides: Partial<CatalogItemInput> = {}): CatalogItemInput {
  sequence++;
  return {
    itemId: `item-${String(sequence)}`,
    title: 'Trail running shoe',
    description: 'Grippy outsole. Light upper.',
    category: 'running',
    tags: ['running', 'trail'],
    price: 99.5,
    updatedAt: '2025-01-01T00:00:00.000Z',
    ...overrides,
  };
}

/** A message for `user.events` keyed by userId, as the contract says. */
export function eventMessage(event: UserEventInput): { key: string; value: string } {
  return { key: event.userId, value: JSON.stringify(event) };
}
