/**
 * A clock the test moves by hand. @fastify/secure-session reads `Date.now()` itself (for its `__ts`
 * and its expiry), so the fake replaces `Date.now` for the whole process until the test ends.
 * It stands still between moves: sessions count whole seconds, and a real clock running under it
 * could cross a half second between a write and a read and make a check one second off.
 */
export interface FakeClock {
  /** Moves the clock forward. */
  advance (seconds: number): void
}

/** Replaces `Date.now` from now until `t` ends: the real time at the call, then only moved by `advance`. */
export function fakeClock (t: { teardown (fn: () => void): void }): FakeClock {
  const real = Date.now
  const start = real()
  let offset = 0
  Date.now = () => start + offset
  t.teardown(() => { Date.now = real })
  return {
    advance (seconds) { offset += seconds * 1000 }
  }
}
