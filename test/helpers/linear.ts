/**
 * How a function's time grows with its input's length, measured so that a busy machine cannot
 * fail the test: the sizes interleaved round after round (a burst of other work slows some runs of
 * every size, not one size), the fastest batch of each size kept (other work only ever adds time),
 * and the exponent k of time = c * n^k fitted over all the sizes by least squares (1 for linear
 * work, 2 for quadratic), instead of judging one step between two sizes.
 */

/** The fitted exponent, and the best time of one call at each size (ns). */
export interface Growth {
  exponent: number
  nanoseconds: number[]
  /** `n^1.02 (550, 1100, ... ns for 125, 250, ...)`, for the assertion's message. */
  text: string
}

/**
 * Times `call(input(n))` at each size: `repeat` calls a batch, `rounds` batches a size.
 * The defaults give about 2,000 batches in all. The length is the string's when the input is a
 * string, else `n`.
 */
export function growth<T> (input: (n: number) => T, call: (input: T) => unknown, sizes: readonly number[], { rounds = 41, repeat = 100 } = {}): Growth {
  const inputs = sizes.map((n) => input(n))
  const best = sizes.map(() => Infinity)
  for (const value of inputs) for (let i = 0; i < repeat; i++) call(value) // warm-up
  for (let round = 0; round < rounds; round++) {
    inputs.forEach((value, i) => {
      const start = process.hrtime.bigint()
      for (let r = 0; r < repeat; r++) call(value)
      best[i] = Math.min(best[i] as number, Number(process.hrtime.bigint() - start) / repeat)
    })
  }
  return fit(inputs, sizes, best)
}

/** `growth` for a call that returns a promise (a request through `inject`): each call awaited in turn. */
export async function growthAsync<T> (input: (n: number) => T, call: (input: T) => Promise<unknown>, sizes: readonly number[], { rounds = 15, repeat = 10 } = {}): Promise<Growth> {
  const inputs = sizes.map((n) => input(n))
  const best = sizes.map(() => Infinity)
  for (const value of inputs) for (let i = 0; i < repeat; i++) await call(value) // warm-up
  for (let round = 0; round < rounds; round++) {
    for (const [i, value] of inputs.entries()) {
      const start = process.hrtime.bigint()
      for (let r = 0; r < repeat; r++) await call(value)
      best[i] = Math.min(best[i] as number, Number(process.hrtime.bigint() - start) / repeat)
    }
  }
  return fit(inputs, sizes, best)
}

/** The least-squares exponent of time = c * n^k over the sizes. */
function fit (inputs: readonly unknown[], sizes: readonly number[], best: number[]): Growth {
  const lengths = inputs.map((value, i) => typeof value === 'string' ? value.length : sizes[i] as number)
  const xs = lengths.map(Math.log)
  const ys = best.map(Math.log)
  const mean = (values: number[]): number => values.reduce((a, b) => a + b, 0) / values.length
  const [mx, my] = [mean(xs), mean(ys)]
  const exponent = xs.reduce((sum, x, i) => sum + (x - mx) * ((ys[i] as number) - my), 0) / xs.reduce((sum, x) => sum + (x - mx) ** 2, 0)
  return {
    exponent,
    nanoseconds: best,
    text: `n^${exponent.toFixed(2)} (${best.map((ns) => Math.round(ns)).join(', ')} ns for lengths ${lengths.join(', ')})`
  }
}
