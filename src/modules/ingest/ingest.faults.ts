import type { SourceBatch } from './ingest-kafka.repository';

/**
 * Test-only fault injection, so tests can kill the consumer at the worst moment. Production never
 * provides it; a test process provides it through a global Nest module.
 */
export const INGEST_FAULTS = Symbol('INGEST_FAULTS');

export interface IngestFaults {
  /** Runs before a chunk, or a part of it while a failing message is looked for, is handled. */
  handling?(batch: SourceBatch): Promise<void> | void;
  /** Runs after a batch's database transaction committed and before its offsets are committed. */
  afterStore?(topic: string, partition: number, lastOffset: string): Promise<void> | void;
}
