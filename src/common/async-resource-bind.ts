import { AsyncResource } from 'node:async_hooks';

let installed = false;

/**
 * Replaces Node 20's `AsyncResource.prototype.bind` with one that runs `fn` in the resource's
 * scope exactly as before but leaves out the deprecated `asyncResource` accessor (DEP0172). Node
 * builds that accessor per call with `util.deprecate`, which makes a fresh closure the prototype
 * of another; Fastify binds one per request body it parses, and whatever those closures reach (the
 * request) then outlived every scavenge: with this service's 64 MB young generation each request
 * promoted several KB and scavenges paused 15-50 ms (docs/performance.md, "Where the tail came
 * from, and the fix"). Idempotent; process-wide, like the method it replaces.
 */
export function installLeanAsyncResourceBind(): void {
  if (installed) return;
  installed = true;
  // `thisArg` is not in the typings, but the static `AsyncResource.bind` passes it.
  const bind = function (
    this: AsyncResource,
    fn: (...args: unknown[]) => unknown,
    thisArg?: unknown,
  ): (...args: unknown[]) => unknown {
    if (typeof fn !== 'function') {
      throw new TypeError(`The "fn" argument must be of type function. Received ${typeof fn}`);
    }
    const runInScope = this.runInAsyncScope.bind(this);
    const bound = function (this: unknown, ...args: unknown[]) {
      return runInScope(fn, thisArg === undefined ? this : thisArg, ...args);
    };
    Object.defineProperty(bound, 'length', { configurable: true, value: fn.length });
    return bound;
  };
  AsyncResource.prototype.bind = bind as AsyncResource['bind'];
}
