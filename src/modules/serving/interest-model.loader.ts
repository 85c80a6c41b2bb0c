import { Inject, Injectable, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { reportDroppedMemory } from '../../common/dropped-memory';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { EmbeddingService } from '../embedding/embedding.service';
import { TokenEncoders } from '../embedding/token-encoders';
import { artifactTopLayers, loadModel, ModelArtifact } from '../training/model/artifact';
import { catalogBackend, stopCatalogThread } from './catalog-adapter';
import { ArtifactInterestModel, TokenTowerSource } from './interest-model';
import type { CatalogVectors, LoadedModel, ModelLoader, TextVectors } from './served-model';
import { ServingRepository } from './serving.repository';

/**
 * Parses an interest-model artifact and runs every live catalog item's text vector through the
 * item tower once, so ranking does one dot product per candidate instead of the tower.
 */
@Injectable()
export class InterestModelLoader implements ModelLoader, OnModuleInit, OnApplicationShutdown {
  /**
   * Text vectors do not depend on the model version: reading 50k of them costs seconds, checking
   * that nothing changed costs one scan. Only the tower pass is redone per version.
   */
  private cached: { encoderId: string; fingerprint: string; text: TextVectors } | undefined;
  /**
   * Whether the text vectors are kept for the next load: in a replica, whose next swap reuses
   * them. The train role loads only to build a version's index ahead, a long build after each
   * registration: kept, they would be the catalog's size again (1.4 GiB at a million items) through
   * every build and between them.
   */
  private readonly keepsText: boolean;

  constructor(
    @Inject(ServingRepository)
    private readonly repository: Pick<ServingRepository, 'fingerprint' | 'textVectors'>,
    @Inject(EmbeddingService)
    private readonly encoder: Pick<EmbeddingService, 'encoderId' | 'encodeOnDemand' | 'itemTexts'>,
    @Inject(TokenEncoders) private readonly tokenEncoders: Pick<TokenEncoders, 'forLayers'>,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.keepsText = config.role !== 'train';
  }

  async onModuleInit(): Promise<void> {
    await catalogBackend();
  }

  async onApplicationShutdown(): Promise<void> {
    await stopCatalogThread();
  }

  async load(artifact: Buffer, version: { readonly id: string }): Promise<LoadedModel> {
    const parsed = loadModel(artifact);
    const model = new ArtifactInterestModel(
      version.id,
      parsed,
      this.encoder,
      parsed.manifest.architecture.tokenAttention
        ? this.tokenSource(version.id, parsed)
        : undefined,
    );
    const { text, readAt } = await this.textVectors(model.encoderId);
    const { memory, bias } = await model.catalogTower(text);
    // Shared memory, which V8 does not count (dropped-memory.ts).
    if (!this.keepsText) reportDroppedMemory(text.matrix.byteLength);
    let catalog: CatalogVectors = { ids: text.ids, matrix: memory.matrix, bias, memory };
    return {
      model,
      get catalog() {
        return catalog;
      },
      catalogReadAt: readAt,
      releaseCatalog: (taken = false) => {
        // WebAssembly memory, which V8 does not count: reported unless serving's rows are it.
        if (!taken) reportDroppedMemory(memory.bytes);
        catalog = { ids: [], matrix: new Float32Array(0) };
      },
    };
  }

  /** The version's own top encoder layers (none: the pretrained encoder) over the items' texts. */
  private tokenSource(versionId: string, artifact: ModelArtifact): TokenTowerSource {
    return {
      encoder: this.tokenEncoders.forLayers(
        versionId,
        artifactTopLayers(artifact),
        artifact.manifest.architecture.maxTokens,
      ),
      texts: (ids) => this.encoder.itemTexts(ids),
    };
  }

  private async textVectors(encoderId: string): Promise<{ text: TextVectors; readAt: Date }> {
    const { fingerprint, rows, readAt } = await this.repository.fingerprint(encoderId);
    const cached = this.cached;
    if (cached?.encoderId === encoderId && cached.fingerprint === fingerprint) {
      return { text: cached.text, readAt };
    }
    const text = await this.repository.textVectors(encoderId, rows);
    // Shared memory, which V8 does not count: a replaced catalog's vectors are reported.
    if (cached !== undefined) reportDroppedMemory(cached.text.matrix.byteLength);
    // A change between the two reads only means the next load reads again.
    if (this.keepsText) this.cached = { encoderId, fingerprint, text };
    return { text, readAt };
  }
}
