// The part of the WebAssembly JavaScript API the service uses (vector-memory.ts). TypeScript
// declares it only with the DOM library, which a Node service does not load.
declare namespace WebAssembly {
  interface MemoryDescriptor {
    initial: number;
    maximum?: number;
    shared?: boolean;
  }
  class Memory {
    constructor(descriptor: MemoryDescriptor);
    readonly buffer: ArrayBuffer | SharedArrayBuffer;
    grow(pages: number): number;
  }
  /** A compiled module: opaque, only instantiated. */
  const Module: new (bytes: Uint8Array) => object;
  class Instance {
    constructor(module: object, imports?: Record<string, Record<string, unknown>>);
    readonly exports: Record<string, unknown>;
  }
}
