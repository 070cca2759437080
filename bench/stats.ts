/**
 * The pure part of the benchmark: the order windows are measured in, per-round ratios, their
 * median and spread, and the verdict of `node dist/bench/run.js --check`. No I/O, so that
 * test/bench-stats.test.ts can check every rule on made-up numbers.
 * @internal
 */

/** Median, quartiles and range of a list of numbers. @internal */
export interface Summary {
  n: number
  median: number
  /** First and third quartiles: the middle half of the values lies between them. */
  q1: number
  q3: number
  min: number
  max: number
}

/**
 * The p-quantile (0 ≤ p ≤ 1) of values sorted in ascending order, by linear interpolation between
 * the two nearest ranks (Hyndman and Fan's type 7, the default of R and NumPy). @internal
 */
export function quantile (sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new RangeError('quantile of no values')
  if (!(p >= 0 && p <= 1)) throw new RangeError(`quantile: p must be between 0 and 1 (got ${p})`)
  const position = (sorted.length - 1) * p
  const below = Math.floor(position)
  const above = Math.ceil(position)
  const low = sorted[below] as number
  const high = sorted[above] as number
  return low + (high - low) * (position - below)
}

/** Median, quartiles and range. Throws on an empty list or a value that is not finite. @internal */
export function summarize (values: readonly number[]): Summary {
  if (values.length === 0) throw new RangeError('summary of no values')
  for (const value of values) {
    if (!Number.isFinite(value)) throw new RangeError(`summary of a value that is not finite (${value})`)
  }
  const sorted = [...values].sort((a, b) => a - b)
  return {
    n: sorted.length,
    median: quantile(sorted, 0.5),
    q1: quantile(sorted, 0.25),
    q3: quantile(sorted, 0.75),
    min: sorted[0] as number,
    max: sorted[sorted.length - 1] as number
  }
}

/**
 * The order of `count` variants in round `round`: row `round` of a Williams design (a Latin square
 * balanced for first-order carry-over, Williams 1949), repeated when there are more rounds than
 * rows. Every round measures each variant once, starting at a different one; over a whole square
 * (`count` rounds for an even count, twice that for an odd one) every variant stands at every
 * position equally often and comes right after every other variant equally often. A cyclic order
 * started at a different place each round leaves each variant the same neighbour every round, so
 * whatever one window leaves behind for the next would fall on the same variant every time. An A/A
 * run (the same build as `--baseline`) measured 1.06x on the variant that always followed bare
 * Fastify; 822 windows grouped by their predecessor showed no carry-over above 3% in the medians,
 * so this guards against a bias rather than removing a measured one (docs/benchmarks.md).
 * @internal
 */
export function balancedOrder (count: number, round: number): number[] {
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`balancedOrder: count must be a whole number >= 1 (got ${count})`)
  if (!Number.isInteger(round) || round < 0) throw new RangeError(`balancedOrder: round must be a whole number >= 0 (got ${round})`)
  // The first row: 0, 1, n-1, 2, n-2, 3, ...; row r adds r to each (mod n). For an odd count the
  // rows are followed by their reverses, which balance the pairs the first n rows leave uneven.
  const first: number[] = []
  for (let i = 0, low = 0, high = count; i < count; i++) first.push(i % 2 === 1 || i === 0 ? low++ : --high)
  const period = count % 2 === 0 ? count : 2 * count
  const row = round % period
  const order = first.map((v) => (v + row) % count)
  return row >= count ? order.reverse() : order
}

/**
 * The variants as `balancedOrder` numbers them: the reference first, the identical copy (the
 * control) half-way down the list, the others in between in their given order. In the design's
 * first row the control then sits as far from the reference as an average variant does; over the
 * rounds every variant's place moves, the control's with it, so its ratio shows the noise every
 * ratio carries.
 * @internal
 */
export function baseOrder<T> (reference: T, control: T | null, others: readonly T[]): T[] {
  const order = [reference, ...others]
  if (control !== null) order.splice(Math.floor((order.length + 1) / 2), 0, control)
  return order
}

/**
 * With --paired: whether bare Fastify's load starts before the other server's in the window of
 * variant number `variant` (its place in the design's numbering) in round `round`. The load
 * generator opens and then serves the first server's connections first, and that alone moved an
 * A/A pair by 4% (the control at 1.04x bare, every window bare first; 1.00x alternating). Each
 * variant alternates from round to round, so any even number of rounds gives it as many windows
 * of each order, and within a round half the variants start first.
 * @internal
 */
export function bareStartsFirst (variant: number, round: number): boolean {
  if (!Number.isInteger(variant) || variant < 0) throw new RangeError(`bareStartsFirst: variant must be a whole number >= 0 (got ${variant})`)
  if (!Number.isInteger(round) || round < 0) throw new RangeError(`bareStartsFirst: round must be a whole number >= 0 (got ${round})`)
  return (variant + round) % 2 === 0
}

/** One measured window, as far as the statistics need it. @internal */
export interface WindowFigure {
  variant: string
  round: number
  /** Server CPU µs per request. */
  value: number
}

/**
 * The windows as the statistics see them. Measured one after the other, a window's value is its
 * CPU per request, and a ratio divides two windows of the same round. Measured --paired (`bare`:
 * bare Fastify's CPU per request in the window the variant shared with it), the value is already
 * the ratio to that bare window (bare's own is 1), so that the same division gives a variant's
 * ratio to bare, and between two variants the ratio of their ratios to bare in that round.
 * @internal
 */
export function windowFigures (windows: ReadonlyArray<{ variant: string, round: number, cpuPerRequest: number, bare?: number | undefined }>): WindowFigure[] {
  return windows.map((w) => ({ variant: w.variant, round: w.round, value: w.bare === undefined ? w.cpuPerRequest : w.cpuPerRequest / w.bare }))
}

/**
 * The ratio of `variant` to `base` in every round where both were measured, in round order: each
 * round's window of one divided by the same round's window of the other. @internal
 */
export function roundRatios (windows: readonly WindowFigure[], variant: string, base: string): number[] {
  const byRound = new Map<number, { v?: number, b?: number }>()
  for (const w of windows) {
    if (w.variant !== variant && w.variant !== base) continue
    const entry = byRound.get(w.round) ?? {}
    if (w.variant === variant) entry.v = w.value
    if (w.variant === base) entry.b = w.value
    byRound.set(w.round, entry)
  }
  const ratios: number[] = []
  for (const round of [...byRound.keys()].sort((a, b) => a - b)) {
    const { v, b } = byRound.get(round) as { v?: number, b?: number }
    if (v !== undefined && b !== undefined && b > 0) ratios.push(v / b)
  }
  return ratios
}

/** The budget: server CPU per request as a multiple of bare Fastify's, same run. @internal */
export const TARGETS: ReadonlyArray<{ variant: string, request: string, limit: number }> = [
  { variant: 'suite-anonymous', request: 'anonymous', limit: 1.25 },
  { variant: 'suite-read', request: 'session read', limit: 1.6 },
  { variant: 'suite-write', request: 'session write', limit: 2.0 }
]

/** When a run counts as trustworthy. @internal */
export interface TrustRules {
  /** The control's median ratio must lie within 1 ± this (0.05: 0.95 to 1.05). */
  controlTolerance: number
  /** Every variant's median core busy (server CPU over wall time) must reach this, when flat out. */
  minBusy: number
  /** The median share of the load generator's cores that other processes took must stay below this. */
  maxLoadInterference: number
  /** With a fixed rate every variant's median req/s must reach this share of it. */
  minRateHeld: number
}

/** The defaults, stated in bench/README.md and docs/benchmarks.md. @internal */
export const DEFAULT_RULES: TrustRules = { controlTolerance: 0.05, minBusy: 0.9, maxLoadInterference: 0.1, minRateHeld: 0.97 }

/** What the check is given. @internal */
export interface CheckInput {
  /** Per-round ratios to bare of each target variant and of the control. */
  ratios: Readonly<Record<string, readonly number[]>>
  /** Per-variant medians over the run's windows. */
  busy: Readonly<Record<string, number>>
  rps: Readonly<Record<string, number>>
  /** Median over windows of the share of the load generator's cores taken by other processes (0 to 1). */
  loadInterference: number
  /** Requests per second asked for, or null for flat out. */
  rate: number | null
}

/** One line of the check's report. @internal */
export interface TargetVerdict {
  variant: string
  request: string
  limit: number
  ratio: Summary | null
  pass: boolean
  /** The target lies inside the interquartile range: another run may well fall the other side. */
  marginal: boolean
}

/** The check's outcome: its exit code is 0 (every target holds), 1 (one missed) or 2 (no verdict to trust). @internal */
export interface CheckVerdict {
  targets: TargetVerdict[]
  control: Summary | null
  trustworthy: boolean
  /** Why the run is not trustworthy, one line each. */
  problems: string[]
  exitCode: 0 | 1 | 2
}

/**
 * The verdict of `--check`: untrustworthy (exit 2) when the control is off 1.00 by more than the
 * tolerance, a server was not saturated (flat out) or did not hold the rate (fixed rate), or other
 * processes took the load generator's cores; else exit 1 when a target's median ratio is above its
 * limit, 0 when every one holds.
 * @internal
 */
export function checkVerdict (input: CheckInput, rules: TrustRules = DEFAULT_RULES, targets = TARGETS): CheckVerdict {
  const problems: string[] = []
  const control = summaryOf(input.ratios.control)
  if (control === null) {
    problems.push('no control windows: the noise floor is unknown')
  } else if (Math.abs(control.median - 1) > rules.controlTolerance) {
    problems.push(`the control (bare Fastify measured again) came out ${control.median.toFixed(3)}× bare, off 1.00 by more than ${rules.controlTolerance}: the machine's noise is larger than the differences judged`)
  }
  const measured = Object.keys(input.busy).sort()
  if (input.rate === null) {
    const idle = measured.filter((variant) => (input.busy[variant] as number) < rules.minBusy)
    if (idle.length > 0) {
      problems.push(`not saturated (median core busy below ${pct(rules.minBusy)}): ${idle.map((v) => `${v} ${pct(input.busy[v] as number)}`).join(', ')}; the load generator, not the server, set the pace`)
    }
  } else {
    const rate = input.rate
    const short = measured.filter((variant) => (input.rps[variant] ?? 0) < rate * rules.minRateHeld)
    if (short.length > 0) {
      problems.push(`the fixed rate of ${rate} req/s was not held (below ${pct(rules.minRateHeld)} of it): ${short.map((v) => `${v} ${Math.round(input.rps[v] ?? 0)} req/s`).join(', ')}`)
    }
  }
  if (input.loadInterference > rules.maxLoadInterference) {
    problems.push(`load generator starved: other processes took ${pct(input.loadInterference)} of its cores (median over windows; limit ${pct(rules.maxLoadInterference)})`)
  }
  const verdicts = targets.map(({ variant, request, limit }): TargetVerdict => {
    const ratio = summaryOf(input.ratios[variant])
    return {
      variant,
      request,
      limit,
      ratio,
      pass: ratio !== null && ratio.median <= limit,
      marginal: ratio !== null && ratio.q1 <= limit && limit <= ratio.q3
    }
  })
  const missing = verdicts.filter((v) => v.ratio === null).map((v) => v.variant)
  if (missing.length > 0) problems.push(`no windows for ${missing.join(', ')}`)
  const trustworthy = problems.length === 0
  const exitCode = !trustworthy ? 2 : verdicts.every((v) => v.pass) ? 0 : 1
  return { targets: verdicts, control, trustworthy, problems, exitCode }
}

function summaryOf (values: readonly number[] | undefined): Summary | null {
  return values === undefined || values.length === 0 ? null : summarize(values)
}

function pct (share: number): string {
  return `${Math.round(share * 100)}%`
}
