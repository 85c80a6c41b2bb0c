import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from '../../common/logger';
import { LOGGER } from '../../infra/tokens';
import { Metrics } from '../metrics/metrics.registry';
import { EmbeddedItem, EmbeddingRepository, ItemToEmbed } from './embedding.repository';
import { TextEncoderProvider } from './encoder.provider';
import { itemText } from './item-text';
import { encodeEach } from './text-encoder';

export interface PassCounts {
  /** Items visited. */
  readonly items: number;
  /** Texts run through the model (after reuse and de-duplication). */
  readonly encoded: number;
  /** Items given an existing vector of the same text hash instead of a model run. */
  readonly reused: number;
  readonly stored: number;
  readonly cleared: number;
}

export interface BackfillProgress extends PassCounts {
  readonly total: number;
}

export type BackfillMode = 'pending' | 'stale';

const LOCK_RETRY_MS = 200;
/**
 * Texts per call to the encoder: a pass that is asked to stop (`signal`) stops between calls, so a
 * shutdown waits for one call (tens of milliseconds to a second), not for a whole batch.
 */
const ENCODE_CHUNK = 32;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Turns items into stored vectors: reuse a vector of the same (encoder, text hash) where one
 * exists, encode the rest (identical texts once), store them guarded by the text hash (an item
 * edited meanwhile stays pending). Every pass holds the database-wide embedding lock, so worker
 * replicas and the backfill never encode the same item twice.
 */
@Injectable()
export class EmbeddingIndexer {
  private readonly logger: Logger;
  private readonly duration;

  constructor(
    private readonly repository: EmbeddingRepository,
    private readonly encoder: TextEncoderProvider,
    @Inject(LOGGER) logger: Logger,
    metrics: Metrics,
  ) {
    this.logger = logger.child({ component: 'embedding-indexer' });
    this.duration = metrics.histogram(
      'embedding_batch_duration_seconds',
      'Time to embed and store one batch of items (reuse, encode, store)',
      ['source'],
      [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    );
  }

  get encoderId(): string {
    return this.encoder.encoderId;
  }

  /**
   * One batch of pending items. `undefined` when another pass holds the lock; `items: 0` when
   * nothing is pending. Aborted through `signal`, it stores what it encoded so far; the rest stay
   * pending.
   */
  async embedPending(limit: number, signal?: AbortSignal): Promise<PassCounts | undefined> {
    const result = await this.repository.withWorkLock(async () => {
      const items = await this.repository.pendingItems(limit);
      return this.embed(items, 'pending', signal);
    });
    return result.ran ? result.value : undefined;
  }

  /**
   * Runs batches of `batchSize` until none is left, waiting for the lock between batches:
   * `pending` = items marked by ingest; `stale` = every live item lacking a vector of this encoder
   * for its current text, marked or not (e.g. after switching models).
   */
  async backfill(
    mode: BackfillMode,
    batchSize: number,
    onProgress?: (progress: BackfillProgress) => void,
  ): Promise<BackfillProgress> {
    const total =
      mode === 'pending'
        ? await this.repository.countPending()
        : await this.repository.countStale(this.encoderId);
    let after = '';
    let done: BackfillProgress = { total, items: 0, encoded: 0, reused: 0, stored: 0, cleared: 0 };
    onProgress?.(done);
    for (;;) {
      const result = await this.repository.withWorkLock(async () => {
        const items =
          mode === 'pending'
            ? await this.repository.pendingItems(batchSize)
            : await this.repository.staleItems(this.encoderId, after, batchSize);
        return { last: items.at(-1)?.itemId, counts: await this.embed(items, mode) };
      });
      if (!result.ran) {
        await sleep(LOCK_RETRY_MS);
        continue;
      }
      const { last, counts } = result.value;
      if (last === undefined) return done;
      after = last;
      done = {
        total: Math.max(total, done.items + counts.items),
        items: done.items + counts.items,
        encoded: done.encoded + counts.encoded,
        reused: done.reused + counts.reused,
        stored: done.stored + counts.stored,
        cleared: done.cleared + counts.cleared,
      };
      onProgress?.(done);
    }
  }

  private async embed(
    items: readonly ItemToEmbed[],
    source: string,
    signal?: AbortSignal,
  ): Promise<PassCounts> {
    if (items.length === 0) return { items: 0, encoded: 0, reused: 0, stored: 0, cleared: 0 };
    const stop = this.duration.startTimer({ source });
    const encoderId = this.encoderId;
    const existing = await this.repository.vectorsByHash(
      encoderId,
      items.map((item) => item.textHash),
    );
    const toEncode = new Map<string, string>(); // text hash -> text
    for (const item of items) {
      if (!existing.has(item.textHash)) toEncode.set(item.textHash, itemText(item));
    }
    const hashes = [...toEncode.keys()];
    let encoded = 0;
    if (hashes.length > 0) {
      const encoder = await this.encoder.get();
      const texts = [...toEncode.values()];
      while (encoded < hashes.length && signal?.aborted !== true) {
        const vectors = await encodeEach(encoder, texts.slice(encoded, encoded + ENCODE_CHUNK));
        for (const vector of vectors) existing.set(hashes[encoded++], vector);
      }
    }
    // Items whose text was not encoded (the pass was stopped) stay pending.
    const embedded: EmbeddedItem[] = items.flatMap((item) => {
      const vector = existing.get(item.textHash);
      return vector === undefined ? [] : [{ itemId: item.itemId, textHash: item.textHash, vector }];
    });
    const { storedIds, cleared } = await this.repository.store(encoderId, embedded);
    stop();
    const counts = {
      items: embedded.length,
      encoded,
      reused: embedded.length - encoded,
      stored: storedIds.length,
      cleared,
    };
    this.logger.debug({ source, ...counts }, 'embedded batch');
    return counts;
  }
}
