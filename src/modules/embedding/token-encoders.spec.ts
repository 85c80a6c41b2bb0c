/**
 * @jest-environment ./test/support/shared-realm-environment.ts
 */
// onnxruntime-node hands back typed arrays of the main realm (see that file).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../config/config';
import { TokenEncoders } from './token-encoders';

const MODEL_DIR = path.resolve(__dirname, '..', '..', '..', 'models');
const present = existsSync(path.join(MODEL_DIR, 'all-MiniLM-L6-v2', 'onnx', 'model.onnx'));
if (!present) {
  process.stderr.write(`SKIPPED token encoder tests: ${MODEL_DIR} has no all-MiniLM-L6-v2\n`);
}
const describeModel = present ? describe : describe.skip;

const TEXT = 'Noise-cancelling wireless headphones with thirty hours of battery life and a case.';

describeModel('TokenEncoders', () => {
  const encoders = new TokenEncoders(
    loadConfig({ EMBEDDING_MODEL_DIR: MODEL_DIR, EMBEDDING_THREADS: '1' }),
  );
  afterAll(() => encoders.onApplicationShutdown());

  it('cuts texts at the token limit, and keeps encoding after its session was evicted', async () => {
    // Token limits 8..12 make five sessions of the pretrained encoder; four are kept.
    const first = encoders.forLayers('v1', [], 8);
    const others = [9, 10, 11, 12].map((limit) => encoders.forLayers('v1', [], limit));
    const [long] = await others[3].encode([TEXT]);
    expect(long.count).toBe(12);
    const [short] = await first.encode([TEXT]);
    expect(short.count).toBe(8);
    expect(short.data).toHaveLength(8 * 384);
    const onDemand = await first.encodeOnDemand(TEXT);
    expect(Array.from(onDemand.data)).toEqual(Array.from(short.data));
  });
});
