import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { TransformersTextEncoder } from '../src/modules/embedding/transformers-encoder';
import { cosine } from '../src/modules/embedding/vector-codec';

/**
 * The real model against an independent reference: a WordPiece tokenizer and mean pooling written
 * here, on a bare onnxruntime-node session over the same ONNX file. Needs the model folder
 * (`scripts/fetch-model.sh`, which `npm test` runs); skipped with a message only when it is absent.
 */
const MODEL_DIR = path.resolve(__dirname, '..', 'models');
const MODEL = 'all-MiniLM-L6-v2';
const FOLDER = path.join(MODEL_DIR, MODEL);
const present = existsSync(path.join(FOLDER, 'onnx', 'model.onnx'));
if (!present) {
  process.stderr.write(
    `SKIPPED embedding model tests: ${FOLDER} is missing; run scripts/fetch-model.sh\n`,
  );
}
const describeModel = present ? describe : describe.skip;

const GOLDEN = [
  'A lightweight trail running shoe with a grippy outsole.',
  'Stainless steel chef knife, 20 cm blade, dishwasher safe!',
  'How do I reset my password?',
  'The quick brown fox jumps over the lazy dog.',
  'Noise-cancelling wireless headphones: 30 hours of battery life.',
];

/** bert-base-uncased basic tokenisation + greedy WordPiece (enough for the ASCII sentences above). */
function wordPiece(text: string, vocab: ReadonlyMap<string, number>): number[] {
  const id = (token: string) => {
    const value = vocab.get(token);
    if (value === undefined) throw new Error(`token ${token} not in vocab`);
    return value;
  };
  const words = text.toLowerCase().match(/[a-z0-9]+|[^\sa-z0-9]/g) ?? [];
  const ids = [id('[CLS]')];
  for (const word of words) {
    let start = 0;
    while (start < word.length) {
      let end = word.length;
      let piece: number | undefined;
      while (end > start) {
        piece = vocab.get(`${start > 0 ? '##' : ''}${word.slice(start, end)}`);
        if (piece !== undefined) break;
        end--;
      }
      if (piece === undefined) throw new Error(`cannot tokenise ${word}`);
      ids.push(piece);
      start = end;
    }
  }
  ids.push(id('[SEP]'));
  return ids;
}

/** One text per run (no padding), masked mean over the last hidden state, L2 norm. */
async function reference(session: ort.InferenceSession, ids: readonly number[]): Promise<number[]> {
  const n = ids.length;
  const tensor = (values: bigint[]) => new ort.Tensor('int64', BigInt64Array.from(values), [1, n]);
  const output = await session.run({
    input_ids: tensor(ids.map(BigInt)),
    attention_mask: tensor(ids.map(() => 1n)),
    token_type_ids: tensor(ids.map(() => 0n)),
  });
  const hidden = output.last_hidden_state;
  const dim = hidden.dims[2];
  const data = hidden.data as Float32Array;
  const mean = new Array<number>(dim).fill(0);
  for (let t = 0; t < n; t++) for (let d = 0; d < dim; d++) mean[d] += data[t * dim + d] / n;
  const norm = Math.hypot(...mean);
  return mean.map((value) => value / norm);
}

/** (anchor, related, unrelated): the related text must be closer in at least 90%. */
const TRIPLETS: readonly [string, string, string][] = [
  [
    'trail running shoes',
    'lightweight sneakers for jogging on mountain paths',
    'cast iron frying pan',
  ],
  ['wireless headphones', 'bluetooth earbuds with noise cancelling', 'organic garden fertiliser'],
  ['chef knife', 'sharp kitchen blade for chopping vegetables', 'kids winter jacket'],
  ['espresso machine', 'coffee maker with milk frother', 'mountain bike tyres'],
  ['yoga mat', 'non-slip exercise mat for pilates', 'laptop charger'],
  ['dog food', 'dry kibble for adult dogs', 'electric toothbrush'],
  ['children picture book', 'illustrated story book for toddlers', 'car engine oil'],
  ['winter coat', 'warm insulated parka for cold weather', 'smartphone screen protector'],
  ['gaming laptop', 'portable computer with a powerful graphics card', 'herbal tea sampler'],
  ['camping tent', 'two person shelter for backpacking trips', 'lipstick set'],
  ['acoustic guitar', 'six string wooden instrument for beginners', 'printer ink cartridge'],
  ['vitamin c supplement', 'immune support tablets with ascorbic acid', 'leather office chair'],
  ['baby stroller', 'pushchair for infants with a sun canopy', 'fishing rod'],
  ['cordless drill', 'battery powered screwdriver for home repairs', 'silk scarf'],
  ['running watch', 'gps sports watch with heart rate monitor', 'ceramic flower vase'],
  ['board game', 'family strategy game played with cards and dice', 'shampoo for dry hair'],
  ['sunscreen', 'spf 50 lotion that protects skin from the sun', 'usb keyboard'],
  ['office desk', 'wooden writing table for working from home', 'cat litter'],
  ['electric kettle', 'appliance that boils water for tea', 'snowboard bindings'],
  ['mystery novel', 'detective thriller paperback', 'garden hose'],
  ['swimming goggles', 'anti-fog eyewear for the pool', 'microwave oven'],
  ['how do I return an item', 'refund and return policy for orders', 'the weather will be sunny'],
  ['cheap flights to paris', 'low cost airline tickets to france', 'recipe for chocolate cake'],
  ['phone case', 'protective cover for a mobile phone', 'hiking backpack rain cover'],
  [
    'protein powder',
    'whey shake for muscle recovery after workouts',
    'hardcover atlas of the world',
  ],
];

describeModel('all-MiniLM-L6-v2 through transformers.js', () => {
  let fp32: TransformersTextEncoder;
  let q8: TransformersTextEncoder;

  beforeAll(async () => {
    fp32 = await TransformersTextEncoder.create({
      model: MODEL,
      modelDir: MODEL_DIR,
      quantized: false,
      threads: 1,
      batchSize: 8,
    });
    q8 = await TransformersTextEncoder.create({
      model: MODEL,
      modelDir: MODEL_DIR,
      quantized: true,
      threads: 1,
    });
  });

  afterAll(async () => {
    await fp32.dispose();
    await q8.dispose();
  });

  it('reports its id and 384 dimensions', () => {
    expect(fp32.modelId).toBe('all-MiniLM-L6-v2:fp32');
    expect(q8.modelId).toBe('all-MiniLM-L6-v2:q8');
    expect(fp32.dimension).toBe(384);
  });

  it('matches an independent ONNX Runtime session with hand-written pooling (cosine > 0.9999)', async () => {
    const tokenizer = JSON.parse(readFileSync(path.join(FOLDER, 'tokenizer.json'), 'utf8')) as {
      model: { vocab: Record<string, number> };
    };
    const vocab = new Map(Object.entries(tokenizer.model.vocab));
    const session = await ort.InferenceSession.create(path.join(FOLDER, 'onnx', 'model.onnx'), {
      intraOpNumThreads: 1,
    });
    // One call for all five: padded batches must pool exactly like single unpadded runs.
    const vectors = await fp32.encode(GOLDEN);
    try {
      for (const [i, text] of GOLDEN.entries()) {
        const expected = await reference(session, wordPiece(text, vocab));
        expect(vectors[i]).toHaveLength(384);
        expect(Math.hypot(...vectors[i])).toBeCloseTo(1, 5);
        expect(cosine(vectors[i], expected)).toBeGreaterThan(0.9999);
      }
    } finally {
      await session.release();
    }
  });

  it('reproduces the sentence-transformers model card values', async () => {
    // First components for the model card's example sentence (sentence-transformers, PyTorch).
    const expected = [
      0.067657, 0.063496, 0.048713, 0.079305, 0.037448, 0.002653, 0.039375, -0.007098,
    ];
    const [vector] = await fp32.encode(['This is an example sentence']);
    expected.forEach((value, d) => {
      expect(Math.abs(vector[d] - value)).toBeLessThan(1e-4);
    });
  });

  it('keeps the quantized model above cosine 0.98 of fp32', async () => {
    const [full, quantized] = await Promise.all([fp32.encode(GOLDEN), q8.encode(GOLDEN)]);
    for (const [i, vector] of quantized.entries()) {
      expect(cosine(vector, full[i])).toBeGreaterThan(0.98);
    }
  });

  it('puts the related text closer than the unrelated one in at least 90% of triplets', async () => {
    const vectors = await fp32.encode(TRIPLETS.flat());
    const failures = TRIPLETS.filter((_, t) => {
      const [anchor, related, unrelated] = vectors.slice(3 * t, 3 * t + 3);
      return cosine(anchor, related) <= cosine(anchor, unrelated);
    });
    expect(TRIPLETS.length).toBeGreaterThanOrEqual(20);
    expect(failures.length / TRIPLETS.length).toBeLessThanOrEqual(0.1);
  });

  it('returns vectors in input order whatever the internal length sorting', async () => {
    // fp32: padding is masked exactly. (q8 quantizes activations per run, so its vectors move
    // slightly with the batch's other texts; the 0.98 bound above holds either way.)
    const texts = [
      'short',
      GOLDEN[1],
      'a much longer text about kitchen knives and chopping boards',
    ];
    const together = await fp32.encode(texts);
    for (const [i, text] of texts.entries()) {
      const [alone] = await fp32.encode([text]);
      expect(cosine(together[i], alone)).toBeGreaterThan(0.9999);
    }
  });
});
