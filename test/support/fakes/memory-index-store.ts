import { readFile, writeFile } from 'node:fs/promises';
import type {
  IndexQuality,
  IndexShape,
  IndexState,
  IndexStore,
  StoredIndex,
} from '../../../src/modules/serving/retrieval-index.repository';

interface Kept {
  readonly header: StoredIndex;
  readonly bytes: Buffer;
  readonly labelItemIds: string;
}

/** Stored indexes in memory, as the PostgreSQL repository keeps them (newest per version). */
export class MemoryIndexStore implements IndexStore {
  private readonly kept: Kept[] = [];
  private lastId = 0;
  /** Build leases by version: holder and when renewed (ms). */
  readonly leases = new Map<string, { builder: string; renewedAt: number }>();
  /** Versions served (active or an experiment's arm), as PostgreSQL would answer. */
  readonly servedVersions = new Set<string>();

  newest(versionId: string): Promise<StoredIndex | undefined> {
    const mine = this.kept.filter((kept) => kept.header.versionId === versionId);
    return Promise.resolve(mine.at(-1)?.header);
  }

  adoptable(versionId: string, shape: IndexShape): Promise<StoredIndex | undefined> {
    const alike = this.kept
      .map((kept) => kept.header)
      .filter(
        (header) =>
          header.versionId !== versionId &&
          header.graphRecall !== undefined &&
          header.graphDrift !== undefined &&
          (Object.keys(shape) as (keyof IndexShape)[]).every((key) => header[key] === shape[key]),
      );
    const served = alike.filter((header) => this.servedVersions.has(header.versionId));
    return Promise.resolve(served.at(-1) ?? alike.at(-1));
  }

  async readTo(stored: StoredIndex, file: string): Promise<string> {
    const kept = this.kept.find((one) => one.header.indexId === stored.indexId);
    if (kept === undefined) throw new Error(`no stored index ${stored.indexId}`);
    await writeFile(file, kept.bytes);
    return kept.labelItemIds;
  }

  async save(
    versionId: string,
    shape: IndexShape,
    pointFormat: string,
    quality: IndexQuality,
    points: number,
    labelItemIds: string,
    file: string,
  ): Promise<{ indexId: string; size: number }> {
    const bytes = await readFile(file);
    const indexId = String(++this.lastId);
    const header = {
      ...shape,
      ...quality,
      pointFormat,
      indexId,
      versionId,
      points,
      size: bytes.length,
      sha256: '',
      storedAt: new Date(),
    };
    this.kept.push({ header, bytes, labelItemIds });
    return { indexId, size: bytes.length };
  }

  claimBuild(versionId: string, builder: string, leaseMs: number): Promise<boolean> {
    const held = this.liveLease(versionId, leaseMs);
    if (held !== undefined && held.builder !== builder) return Promise.resolve(false);
    this.leases.set(versionId, { builder, renewedAt: Date.now() });
    return Promise.resolve(true);
  }

  async state(versionId: string, leaseMs: number): Promise<IndexState> {
    return {
      stored: await this.newest(versionId),
      builder: this.liveLease(versionId, leaseMs)?.builder,
    };
  }

  /** The version's lease, unless it lapsed (not renewed within `leaseMs`). */
  private liveLease(versionId: string, leaseMs: number) {
    const held = this.leases.get(versionId);
    return held !== undefined && held.renewedAt >= Date.now() - leaseMs ? held : undefined;
  }

  served(versionId: string): Promise<boolean> {
    return Promise.resolve(this.servedVersions.has(versionId));
  }

  releaseBuild(versionId: string, builder: string): Promise<void> {
    if (this.leases.get(versionId)?.builder === builder) this.leases.delete(versionId);
    return Promise.resolve();
  }

  /** Keeps an index as another replica would have stored it. */
  put(
    header: Omit<StoredIndex, 'indexId' | 'storedAt' | keyof IndexQuality> & Partial<IndexQuality>,
    labelItemIds: readonly string[],
  ): string {
    const indexId = String(++this.lastId);
    const unknown = {
      recall: undefined,
      graphRecall: undefined,
      graphDrift: undefined,
      adoptedFrom: undefined,
    };
    this.kept.push({
      header: { ...unknown, ...header, indexId, storedAt: new Date() },
      bytes: Buffer.alloc(0),
      labelItemIds: labelItemIds.join('\n'),
    });
    return indexId;
  }

  /** What is stored for `versionId`, oldest first. */
  stored(versionId: string): readonly Kept[] {
    return this.kept.filter((kept) => kept.header.versionId === versionId);
  }
}
