import { HashingTextEncoder } from '../../../test/support/fakes/hashing-encoder';
import { TextEncoderProvider } from './encoder.provider';

describe('TextEncoderProvider', () => {
  const counted = () => {
    const loaded: HashingTextEncoder[] = [];
    const provider = new TextEncoderProvider('hashing-bow:8', () => {
      const encoder = new HashingTextEncoder(8);
      loaded.push(encoder);
      return Promise.resolve(encoder);
    });
    return { provider, loaded };
  };

  it('loads once for every caller', async () => {
    const { provider, loaded } = counted();
    const [first, second] = await Promise.all([provider.get(), provider.get()]);
    expect(first).toBe(second);
    expect(loaded).toHaveLength(1);
  });

  it('loads anew after the loaded encoder is gone (its thread ended)', async () => {
    const { provider, loaded } = counted();
    const lost = await provider.get();
    provider.forget(lost);
    expect(provider.isLoaded).toBe(false);
    const next = await provider.get();
    expect(next).not.toBe(lost);
    expect(loaded).toHaveLength(2);
  });

  it('ignores the end of an encoder it no longer serves', async () => {
    const { provider } = counted();
    const old = await provider.get();
    provider.forget(old);
    const current = await provider.get();
    provider.forget(old);
    expect(await provider.get()).toBe(current);
  });
});
