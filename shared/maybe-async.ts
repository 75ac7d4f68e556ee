/**
 * A value now, or a Promise of it: what the alert book answers over a
 * synchronous store (node:sqlite: the value, at once, so the embedded
 * collector behaves exactly as before) and over an asynchronous one
 * (PostgreSQL: a Promise). Callers `await` it either way; code that must
 * stay synchronous when it can (detection folding a message's findings)
 * chains with `after` and `allOf`, which stay synchronous on plain values.
 */
export type MaybeAsync<T> = T | Promise<T>

export function isPromise<T> (value: MaybeAsync<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}

/** `then`, without leaving synchronous code when the value is already there. */
export function after<T, U> (value: MaybeAsync<T>, next: (value: T) => MaybeAsync<U>): MaybeAsync<U> {
  return isPromise(value) ? value.then(next) : next(value)
}

/** `Promise.all`, synchronous when every value is. */
export function allOf<T> (values: Array<MaybeAsync<T>>): MaybeAsync<T[]> {
  return values.some(isPromise) ? Promise.all(values) : values as T[]
}
