import { backendLabel } from './backend';

describe('backendLabel', () => {
  it('says whether the native backend found a GPU, so a version records where it trained', () => {
    expect(backendLabel('tensorflow-gpu', { isUsingGpuDevice: true })).toBe('tensorflow-gpu (gpu)');
    expect(backendLabel('tensorflow-gpu', { isUsingGpuDevice: false })).toBe(
      'tensorflow-gpu (cpu: no GPU visible)',
    );
    expect(backendLabel('tensorflow', { isUsingGpuDevice: false })).toBe('tensorflow (cpu)');
    expect(backendLabel('wasm', {})).toBe('wasm');
    expect(backendLabel('cpu', {})).toBe('cpu');
  });
});
