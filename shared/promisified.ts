/**
 * The asynchronous counterpart of a synchronous interface: the same
 * methods with the same arguments, each answering a Promise of what the
 * synchronous one returns. How a store over a network database
 * (PostgreSQL) fits an interface first written for node:sqlite.
 */
export type Promisified<T> = {
  [K in keyof T]: T[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : T[K]
}
