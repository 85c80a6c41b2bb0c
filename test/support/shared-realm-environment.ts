import { TestEnvironment } from 'jest-environment-node';
import type { EnvironmentContext, JestEnvironmentConfig } from '@jest/environment';

/** Typed-array and buffer classes native add-ons hand back from the main realm. */
const SHARED = [
  'ArrayBuffer',
  'SharedArrayBuffer',
  'Uint8Array',
  'Uint8ClampedArray',
  'Int8Array',
  'Uint16Array',
  'Int16Array',
  'Uint32Array',
  'Int32Array',
  'Float32Array',
  'Float64Array',
  'BigInt64Array',
  'BigUint64Array',
] as const;

/**
 * Jest runs each test file in its own vm realm. onnxruntime-node's native binding returns typed
 * arrays of the main realm, and onnxruntime-common then rejects them (`instanceof Float32Array`
 * against the test realm's class: "A float32 tensor's data must be type of function
 * Float32Array()"). Tests share the main realm's classes, as the service does in production.
 */
export default class SharedRealmEnvironment extends TestEnvironment {
  constructor(config: JestEnvironmentConfig, context: EnvironmentContext) {
    super(config, context);
    const global = this.global as unknown as Record<string, unknown>;
    for (const name of SHARED) global[name] = globalThis[name];
  }
}
