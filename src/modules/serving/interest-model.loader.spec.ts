import { loadConfig } from '../../config/config';
import type { Role } from '../../config/config';
import { untrainedArtifact } from '../../../test/support/untrained-model';
import { DEFAULT_ARCHITECTURE } from '../training/model/architecture';
import { InterestModelLoader } from './interest-model.loader';
import type { TextVectors } from './served-model';

const D = 8;
const architecture = { ...DEFAULT_ARCHITECTURE, dimension: D, idEmbedding: false };

const artifact = () => untrainedArtifact(architecture, 'enc', 'loader-spec');

/** A loader over a catalog of three items that never changes; counts its reads of the vectors. */
function loaderOf(role: Role): { loader: InterestModelLoader; reads: () => number } {
  let reads = 0;
  const text: TextVectors = {
    ids: ['a', 'b', 'c'],
    dimension: D,
    matrix: Float32Array.from({ length: 3 * D }, (_, i) => Math.sin(i)),
  };
  const repository = {
    fingerprint: () => Promise.resolve({ fingerprint: '3:42', rows: 3, readAt: new Date(0) }),
    textVectors: () => {
      reads++;
      return Promise.resolve(text);
    },
  };
  const encoder = {
    encoderId: 'enc',
    encodeOnDemand: () => Promise.resolve(new Float32Array(D)),
    itemTexts: () => Promise.resolve(new Map<string, string>()),
  };
  const tokenEncoders = {
    forLayers: () => {
      throw new Error('no token model here');
    },
  };
  const loader = new InterestModelLoader(
    repository,
    encoder,
    tokenEncoders,
    loadConfig({ ROLE: role }),
  );
  return { loader, reads: () => reads };
}

describe('InterestModelLoader', () => {
  it("keeps a replica's text vectors for its next load while the catalog is unchanged", async () => {
    for (const role of ['api', 'all'] as const) {
      const { loader, reads } = loaderOf(role);
      const first = await loader.load(artifact(), { id: '1' });
      const second = await loader.load(artifact(), { id: '2' });
      expect(reads()).toBe(1);
      expect(second.catalog.ids).toEqual(['a', 'b', 'c']);
      expect(Array.from(second.catalog.matrix)).toEqual(Array.from(first.catalog.matrix));
    }
  });

  it('reads them again for each load of the train role, which builds indexes ahead only', async () => {
    const { loader, reads } = loaderOf('train');
    const first = await loader.load(artifact(), { id: '1' });
    const second = await loader.load(artifact(), { id: '2' });
    expect(reads()).toBe(2);
    expect(Array.from(second.catalog.matrix)).toEqual(Array.from(first.catalog.matrix));
  });
});
