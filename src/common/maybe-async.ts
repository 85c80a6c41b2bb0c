/** A value at hand, or a promise of it where something must be waited for. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * `next(value)`: at once when `value` is at hand, after it when it is a promise. A path that
 * waits for nothing then runs through without a promise or a turn of the event loop per step.
 */
export function andThen<T, U>(
  value: MaybePromise<T>,
  next: (value: T) => MaybePromise<U>,
): MaybePromise<U> {
  return value instanceof Promise ? value.then(next) : next(value);
}

/** Both values: a pair at once when both are at hand, else a promise of it. */
export function bothOf<A, B>(a: MaybePromise<A>, b: MaybePromise<B>): MaybePromise<[A, B]> {
  return a instanceof Promise || b instanceof Promise ? Promise.all([a, b]) : [a, b];
}
