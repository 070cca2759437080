/**
 * A clock the test moves by hand. @fastify/secure-session reads `Date.now()` itself (for its `__ts`
 * and its expiry), so the fake replaces `Date.now` for the whole process until the test ends.
 */
export interface FakeClock {
  /** Moves the clock forward. */
  advance (seconds: number): void
}

/** Replaces `Date.now` from now until `t` ends; starts at the real time. */
export function fakeClock (t: { teardown (fn: () => void): void }): FakeClock {
  const real = Date.now
  let offset = 0
  Date.now = () => real() + offset
  t.teardown(() => { Date.now = real })
  return {
    advance (seconds) { offset += seconds * 1000 }
  }
}
