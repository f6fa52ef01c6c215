/**
 * Imported for its effect, first of all the server's modules: `process.nextTick` called many times
 * before anything else calls it, so that V8 optimizes it while every tick it has seen is alike.
 *
 * Why: Node 20 makes each tick an object literal with symbol keys. In 12 of 31 fresh processes
 * measured, V8 compiled that literal as a runtime call (a `perf` profile:
 * `Runtime_DefineKeyedOwnPropertyInLiteral` and map migrations under `nextTick`): 280 ns a tick
 * instead of 42, about 16 ticks per proxied answer (Node's streams make them), and nothing brings
 * that process back (an inline cache that has gone generic stays so). After these calls, every
 * fresh process measured took 35–76 ns a tick (docs/performance.md). They cost about half a
 * millisecond, once.
 */
const WARM_TICKS = 10_000

const nothing = (): void => {}
for (let i = 0; i < WARM_TICKS; i++) process.nextTick(nothing)
