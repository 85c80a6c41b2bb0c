import { AsyncLocalStorage, AsyncResource, executionAsyncId } from 'node:async_hooks';
import { installLeanAsyncResourceBind } from './async-resource-bind';

describe('installLeanAsyncResourceBind', () => {
  beforeAll(() => {
    installLeanAsyncResourceBind();
    installLeanAsyncResourceBind();
  });

  it('runs the bound function in the resource scope, with its this, arguments and length', () => {
    const resource = new AsyncResource('test');
    let scope = -1;
    const bound = resource.bind(function (this: { base: number }, a: number, b: number) {
      scope = executionAsyncId();
      return this.base + a + b;
    });
    expect(bound.call({ base: 10 }, 1, 2)).toBe(13);
    expect(scope).toBe(resource.asyncId());
    expect(bound.length).toBe(2);
    const withThis = AsyncResource.bind(
      function (this: { base: number }) {
        return this.base;
      },
      'test',
      { base: 5 },
    );
    expect(Reflect.apply(withThis, undefined, [])).toBe(5);
    const unbound = resource.bind(function (this: { base: number }) {
      return this.base;
    });
    expect(unbound.call({ base: 7 })).toBe(7);
    expect(() => resource.bind(42 as unknown as () => void)).toThrow(TypeError);
  });

  it('carries the async context of where it was bound (AsyncLocalStorage), also through the static bind', () => {
    const storage = new AsyncLocalStorage<string>();
    const [bound, staticBound] = storage.run('request-1', () => [
      new AsyncResource('test').bind(() => storage.getStore()),
      AsyncResource.bind(() => storage.getStore()),
    ]);
    expect(storage.run('request-2', bound)).toBe('request-1');
    expect(staticBound()).toBe('request-1');
  });

  it('no longer defines the deprecated asyncResource accessor', () => {
    const bound = new AsyncResource('test').bind(() => 1);
    expect(Object.getOwnPropertyNames(bound)).not.toContain('asyncResource');
  });
});
