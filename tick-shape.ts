/**
 * Keeps one entry of Node.js's nextTick queue alive for the life of the process, so that the
 * shape (V8 map) every later entry is built with is never collected. Imported first by index.ts;
 * it changes nothing nextTick does, only how fast it builds its entries.
 *
 * process.nextTick builds each entry with an object literal whose first keys are computed
 * (`{ [async_id_symbol]: id, [trigger_async_id_symbol]: trigger, callback, args }`), and a
 * request through node:http and node:stream queues several. V8 remembers one map for each key of
 * such a literal and, at the first entry that arrives with another map, marks the key megamorphic
 * for good: from then on every key of every entry is defined by a call into V8's runtime
 * (Runtime_DefineKeyedOwnPropertyInLiteral). The entries' maps hang from `{}`'s transition tree by
 * weak references, so full garbage collections while no entry is queued free them (V8 keeps an
 * unused map through two), the next entry gets new ones, and the literal turns megamorphic. Every
 * process that runs long enough has such collections; importing a module as large as zod brings
 * one to startup.
 *
 * Measured with callgrind (docs/benchmarks.md, "The nextTick literal"): bare Fastify runs 72.6k
 * instructions a request before its first full collections and 109.7k after them, 112.4k after
 * importing zod, and 70.8k after importing zod with an entry kept.
 *
 * The entry is the one executionAsyncResource() returns inside a nextTick callback. It holds this
 * module's callback, no arguments, and the async context of the import (none at top level). Kept
 * after the first full collection it changes nothing: the literal stays megamorphic.
 */
import { executionAsyncResource } from 'node:async_hooks'

let kept: object | undefined

process.nextTick(() => {
  kept = executionAsyncResource()
})

/** The nextTick entry this module keeps; undefined until the tick it queued on import has run. @internal */
export function keptTickEntry (): object | undefined {
  return kept
}
