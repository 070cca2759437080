/**
 * The pure parts of the benchmark (bench/stats.ts, bench/machine.ts): quantiles, the rotated
 * order, per-round ratios, the verdict of `node dist/bench/run.js --check`, and the readers of the
 * kernel's CPU counters. No load is generated here: the benchmark is never a timed test.
 */
import { execFileSync, spawn } from 'node:child_process'
import t from 'tap'
import { choosePinning, clockTicks, interference, onlineCpus, othersOver, parseCpuList, parsePidStat, parseProcStat, pin, snapshot, type CoreTimes, type Snapshot } from '../bench/machine.ts'
import { balancedOrder, bareStartsFirst, baseOrder, checkVerdict, DEFAULT_RULES, quantile, roundRatios, summarize, TARGETS, windowFigures, type CheckInput } from '../bench/stats.ts'
import { requirePrograms } from './helpers/external.ts'

t.test('quantile interpolates between ranks (type 7, as R and NumPy)', async (t) => {
  const sorted = [1, 2, 3, 4]
  t.equal(quantile(sorted, 0), 1)
  t.equal(quantile(sorted, 0.25), 1.75)
  t.equal(quantile(sorted, 0.5), 2.5)
  t.equal(quantile(sorted, 0.75), 3.25)
  t.equal(quantile(sorted, 1), 4)
  t.equal(quantile([7], 0.3), 7)
  t.throws(() => quantile([], 0.5), RangeError)
  t.throws(() => quantile(sorted, 1.5), /between 0 and 1/)
  t.throws(() => quantile(sorted, Number.NaN), /between 0 and 1/)
})

t.test('summarize gives the median, quartiles and range whatever the order', async (t) => {
  const odd = summarize([5, 1, 4, 2, 3])
  t.same(odd, { n: 5, median: 3, q1: 2, q3: 4, min: 1, max: 5 })
  t.same(summarize([3, 2, 5, 4, 1]), odd, 'the order of the values does not matter')
  const even = summarize([10, 1, 2, 3])
  t.equal(even.median, 2.5)
  t.equal(even.max, 10, 'an outlier moves the range')
  t.equal(even.q3, 4.75, 'and the upper quartile only a little')
  t.throws(() => summarize([]), /no values/)
  t.throws(() => summarize([1, Number.NaN]), /not finite/)
  t.throws(() => summarize([1, Number.POSITIVE_INFINITY]), /not finite/)
})

t.test('windowFigures: one at a time a ratio divides two windows of a round; --paired, each window is divided by the bare it shared', async (t) => {
  const sequential = windowFigures([
    { variant: 'bare', round: 0, cpuPerRequest: 20 },
    { variant: 'a', round: 0, cpuPerRequest: 30 },
    { variant: 'b', round: 0, cpuPerRequest: 50 }
  ])
  t.same(roundRatios(sequential, 'a', 'bare'), [1.5])
  t.same(roundRatios(sequential, 'b', 'a'), [50 / 30])
  // Paired: a shared its window with a bare at 20 µs, b with a bare at 40 (the host slowed down
  // between the two windows): b's 100 µs is 2.5x its bare, a's 30 is 1.5x its own.
  const paired = windowFigures([
    { variant: 'bare', round: 0, cpuPerRequest: 20, bare: 20 },
    { variant: 'a', round: 0, cpuPerRequest: 30, bare: 20 },
    { variant: 'bare', round: 0, cpuPerRequest: 40, bare: 40 },
    { variant: 'b', round: 0, cpuPerRequest: 100, bare: 40 },
    { variant: 'bare', round: 1, cpuPerRequest: 25, bare: 25 },
    { variant: 'a', round: 1, cpuPerRequest: 50, bare: 25 }
  ])
  t.same(roundRatios(paired, 'a', 'bare'), [1.5, 2], 'each against the bare of its own window')
  t.same(roundRatios(paired, 'b', 'bare'), [2.5])
  t.same(roundRatios(paired, 'b', 'a'), [2.5 / 1.5], 'between two variants, the ratio of their ratios to bare')
  t.same(roundRatios(sequential, 'b', 'bare'), [2.5], 'one at a time the same b against the one bare window of its round')
})

t.test('bareStartsFirst: each variant alternates from round to round; within a round half the variants start first', async (t) => {
  for (const count of [2, 3, 4, 7]) {
    for (const rounds of [2, 4, 10]) {
      for (let variant = 0; variant < count; variant++) {
        const first = Array.from({ length: rounds }, (_, round) => bareStartsFirst(variant, round)).filter(Boolean).length
        t.equal(first, rounds / 2, `${count} variants, ${rounds} rounds: variant ${variant} has as many windows of each order`)
      }
    }
    for (let round = 0; round < 4; round++) {
      const first = Array.from({ length: count }, (_, variant) => bareStartsFirst(variant, round)).filter(Boolean).length
      t.ok(Math.abs(first - count / 2) <= 0.5, `${count} variants, round ${round}: ${first} start after bare`)
    }
  }
  t.throws(() => bareStartsFirst(-1, 0), /variant must be a whole number >= 0 \(got -1\)/)
  t.throws(() => bareStartsFirst(0, 1.5), /round must be a whole number >= 0 \(got 1\.5\)/)
})

t.test('balancedOrder: each round measures every variant once; over a square, every variant follows every other equally often', async (t) => {
  for (let count = 1; count <= 18; count++) {
    const period = count % 2 === 0 ? count : 2 * count
    const follows = new Map<string, number>()
    const positions = Array.from({ length: count }, () => new Map<number, number>())
    const starts = new Set<number>()
    for (let round = 0; round < period; round++) {
      const order = balancedOrder(count, round)
      if (JSON.stringify([...order].sort((a, b) => a - b)) !== JSON.stringify(Array.from({ length: count }, (_, i) => i))) t.fail(`${count} variants, round ${round}: not every variant once (${order.join(',')})`)
      for (let i = 1; i < count; i++) follows.set(`${order[i - 1]}>${order[i]}`, (follows.get(`${order[i - 1]}>${order[i]}`) ?? 0) + 1)
      order.forEach((variant, position) => positions[variant]?.set(position, (positions[variant]?.get(position) ?? 0) + 1))
      starts.add(order[0] as number)
    }
    const pairs = [...follows.values()]
    const each = count % 2 === 0 ? 1 : 2
    t.equal(follows.size, count * (count - 1), `${count} variants: every ordered pair of neighbours occurs`)
    t.ok(pairs.every((n) => n === each), `${count} variants: each ${each === 1 ? 'once' : 'twice'} in ${period} rounds`)
    t.ok(positions.every((seen) => seen.size === count && [...seen.values()].every((n) => n === period / count)), `${count} variants: each at every position ${period / count} time(s)`)
    t.equal(starts.size, count, `${count} variants: every variant starts a round`)
  }
  t.same(balancedOrder(6, 0), [0, 1, 5, 2, 4, 3], 'Williams\'s first row: 0, 1, n-1, 2, n-2, ...')
  t.same(balancedOrder(6, 1), [1, 2, 0, 3, 5, 4], 'the next adds one to each')
  t.same(balancedOrder(6, 6), balancedOrder(6, 0), 'more rounds than rows: the square again')
  t.same(balancedOrder(3, 3), [...balancedOrder(3, 0)].reverse(), 'an odd count: the rows, then their reverses')
  // The bias it removes: in a cyclic order the variant after the reference is always the same one.
  const after = new Set(Array.from({ length: 10 }, (_, round) => {
    const order = balancedOrder(6, round)
    const at = order.indexOf(0)
    return at === order.length - 1 ? null : order[at + 1]
  }).filter((v) => v !== null))
  t.ok(after.size >= 4, `the variant measured right after the reference changes from round to round (${after.size} different in 10 rounds)`)
  t.throws(() => balancedOrder(0, 0), /count/)
  t.throws(() => balancedOrder(3, -1), /round/)
  t.throws(() => balancedOrder(3, 0.5), /round/)
})

t.test('baseOrder puts the reference first and the control half a cycle away', async (t) => {
  t.same(baseOrder('bare', 'control', ['a', 'b', 'c', 'd']), ['bare', 'a', 'b', 'control', 'c', 'd'])
  t.same(baseOrder('bare', 'control', ['a', 'b', 'c']), ['bare', 'a', 'control', 'b', 'c'])
  t.same(baseOrder('bare', 'control', []), ['bare', 'control'])
  t.same(baseOrder('bare', null, ['a', 'b']), ['bare', 'a', 'b'])
})

t.test('roundRatios divides by the reference of the same round only', async (t) => {
  const windows = [
    { variant: 'bare', round: 1, value: 50 },
    { variant: 'x', round: 0, value: 30 },
    { variant: 'bare', round: 0, value: 20 },
    { variant: 'x', round: 1, value: 100 },
    { variant: 'y', round: 1, value: 999 },
    { variant: 'x', round: 2, value: 70 }, // no bare window in round 2: left out
    { variant: 'bare', round: 3, value: 10 } // no x window in round 3: left out
  ]
  t.same(roundRatios(windows, 'x', 'bare'), [1.5, 2])
  t.same(roundRatios(windows, 'z', 'bare'), [])
  t.same(roundRatios([{ variant: 'x', round: 0, value: 5 }, { variant: 'bare', round: 0, value: 0 }], 'x', 'bare'), [], 'a zero reference gives no ratio')
})

/** A run where every rule holds and every target passes. */
function healthy (): CheckInput {
  return {
    ratios: {
      control: [0.99, 1.01, 1.0, 1.02, 0.98],
      'suite-anonymous': [1.2, 1.22, 1.18, 1.21, 1.19],
      'suite-read': [1.5, 1.52, 1.49, 1.55, 1.51],
      'suite-write': [1.9, 1.95, 1.88, 1.92, 1.97]
    },
    busy: { bare: 0.95, control: 0.95, 'suite-anonymous': 0.97, 'suite-read': 0.98, 'suite-write': 0.98 },
    rps: { bare: 12000, control: 12000, 'suite-anonymous': 10000, 'suite-read': 8000, 'suite-write': 6000 },
    loadInterference: 0.01,
    rate: null
  }
}

t.test('check: exit 0 when every target holds on a trustworthy run', async (t) => {
  const verdict = checkVerdict(healthy())
  t.equal(verdict.exitCode, 0)
  t.ok(verdict.trustworthy)
  t.same(verdict.problems, [])
  t.same(verdict.targets.map((v) => [v.variant, v.pass]), TARGETS.map((target) => [target.variant, true]))
  t.equal(verdict.targets[0]?.ratio?.median, 1.2)
  t.equal(verdict.control?.median, 1.0)
})

t.test('check: exit 1 when a median is above its target, judged on the median', async (t) => {
  const input = healthy()
  input.ratios = { ...input.ratios, 'suite-write': [2.1, 2.05, 1.9, 2.2, 2.02] }
  const verdict = checkVerdict(input)
  t.equal(verdict.exitCode, 1)
  t.ok(verdict.trustworthy)
  const write = verdict.targets.find((v) => v.variant === 'suite-write')
  t.equal(write?.pass, false)
  t.equal(write?.ratio?.median, 2.05)
  t.equal(write?.marginal, false, 'the whole middle half is above 2.0: not marginal')
  const equal = healthy()
  equal.ratios = { ...equal.ratios, 'suite-anonymous': [1.25, 1.25, 1.25] }
  t.equal(checkVerdict(equal).exitCode, 0, 'a median exactly at the limit holds (≤)')
  const marginal = healthy()
  marginal.ratios = { ...marginal.ratios, 'suite-read': [1.55, 1.59, 1.63, 1.65] }
  const read = checkVerdict(marginal).targets.find((v) => v.variant === 'suite-read')
  t.equal(read?.pass, false)
  t.equal(read?.marginal, true, 'the limit lies between the quartiles')
})

t.test('check: exit 2 when the control is off 1.00 by more than the tolerance, even if every target holds', async (t) => {
  for (const control of [[1.06, 1.07, 1.08], [0.9, 0.92, 0.94]]) {
    const input = healthy()
    input.ratios = { ...input.ratios, control }
    const verdict = checkVerdict(input)
    t.equal(verdict.exitCode, 2, `control ${control.join(', ')}`)
    t.notOk(verdict.trustworthy)
    t.match(verdict.problems.join('\n'), /control .* off 1\.00 by more than 0\.05/)
  }
  const edge = healthy()
  edge.ratios = { ...edge.ratios, control: [1.04, 1.04, 1.04] }
  t.equal(checkVerdict(edge).exitCode, 0, 'within the tolerance')
  t.equal(checkVerdict(edge, { ...DEFAULT_RULES, controlTolerance: 0.03 }).exitCode, 2, 'the tolerance is a rule of the caller')
  const none = healthy()
  none.ratios = { ...none.ratios, control: [] }
  t.match(checkVerdict(none).problems.join('\n'), /no control windows/)
  t.equal(checkVerdict(none).exitCode, 2)
})

t.test('check: exit 2 when a server was not saturated (flat out), naming it', async (t) => {
  const input = healthy()
  input.busy = { ...input.busy, bare: 0.74, 'suite-write': 0.89 }
  const verdict = checkVerdict(input)
  t.equal(verdict.exitCode, 2)
  t.match(verdict.problems.join('\n'), /not saturated .*bare 74%, suite-write 89%/)
  const failing = healthy()
  failing.busy = { ...failing.busy, bare: 0.5 }
  failing.ratios = { ...failing.ratios, 'suite-read': [2, 2, 2] }
  t.equal(checkVerdict(failing).exitCode, 2, 'an untrustworthy run gives no FAIL either')
})

t.test('check: at a fixed rate the rate must be held, and saturation is not asked for', async (t) => {
  const input = healthy()
  input.rate = 5000
  input.busy = { bare: 0.4, control: 0.4, 'suite-anonymous': 0.45, 'suite-read': 0.5, 'suite-write': 0.6 }
  input.rps = { bare: 5000, control: 4999, 'suite-anonymous': 4990, 'suite-read': 4980, 'suite-write': 4900 }
  t.equal(checkVerdict(input).exitCode, 0)
  input.rps = { ...input.rps, 'suite-write': 4100 }
  const verdict = checkVerdict(input)
  t.equal(verdict.exitCode, 2)
  t.match(verdict.problems.join('\n'), /fixed rate of 5000 req\/s was not held .*suite-write 4100 req\/s/)
})

t.test('check: exit 2 when other processes took the load generator\'s cores', async (t) => {
  const input = healthy()
  input.loadInterference = 0.25
  const verdict = checkVerdict(input)
  t.equal(verdict.exitCode, 2)
  t.match(verdict.problems.join('\n'), /load generator starved: other processes took 25% of its cores/)
})

t.test('check: a target with no windows is a problem, not a pass', async (t) => {
  const input = healthy()
  const { 'suite-read': _, ...rest } = input.ratios
  input.ratios = rest
  const verdict = checkVerdict(input)
  t.equal(verdict.exitCode, 2)
  t.equal(verdict.targets.find((v) => v.variant === 'suite-read')?.pass, false)
  t.match(verdict.problems.join('\n'), /no windows for suite-read/)
})

const PROC_STAT = `cpu  1000 20 300 9000 50 0 10 5 0 0
cpu0 600 10 200 4000 25 0 5 3 0 0
cpu1 400 10 100 5000 25 0 5 2 0 0
intr 123456 0 0
ctxt 98765
btime 1700000000
processes 4242
procs_running 2
`

t.test('parseProcStat reads the per-core lines and nothing else', async (t) => {
  const cores = parseProcStat(PROC_STAT)
  t.same([...cores.keys()], [0, 1])
  t.same(cores.get(0), { user: 600, nice: 10, system: 200, idle: 4000, iowait: 25, irq: 0, softirq: 5, steal: 3 })
  t.equal(cores.get(1)?.steal, 2)
  t.equal(parseProcStat('cpu3 1 2 3 4 5 6 7\n').get(3)?.steal, 0, 'a kernel without the steal column')
  t.equal(parseProcStat('cpu0 1 2 3\ncpux 1 2 3 4 5 6 7 8\ncpu1 a b c d e f g h\n').size, 0, 'malformed lines are skipped')
  t.equal(parseProcStat('').size, 0)
})

t.test('parsePidStat counts fields from the last parenthesis of the command name', async (t) => {
  const fields = 'S 1 2 3 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 1 0 100 1000 10'
  t.equal(parsePidStat(`4242 (node) ${fields}`), 1801)
  t.equal(parsePidStat(`4242 (a) b (c)) ${fields}`), 1801, 'a name with spaces and parentheses')
  t.throws(() => parsePidStat('4242 node S 1 2'), /no command name/)
  t.throws(() => parsePidStat('4242 (node) S 1 2'), /utime and stime/)
})

t.test('parseCpuList takes taskset lists strictly', async (t) => {
  t.same(parseCpuList('1'), [1])
  t.same(parseCpuList('0,2'), [0, 2])
  t.same(parseCpuList('2-3'), [2, 3])
  t.same(parseCpuList('4-5,0,5'), [0, 4, 5], 'sorted, without repeats')
  for (const bad of ['', ' 1', '1,', ',1', '1-', '-1', 'a', '1 2', '1;2', '0x1', '1.5', '12345']) {
    t.throws(() => parseCpuList(bad), /is not a CPU list/, JSON.stringify(bad))
  }
  t.throws(() => parseCpuList('3-1'), /runs backwards; write 1-3/)
})

t.test('choosePinning: defaults, refusals, and the unpinned cases', async (t) => {
  const pinned = choosePinning({ pin: true }, [0, 1], true)
  t.same([pinned.server, pinned.load], [[1], [0]])
  t.match(pinned.note, /servers pinned to CPU 1, load generator .* to CPU 0/)
  t.same(choosePinning({ pin: true, server: '2-3', load: '0,1' }, [0, 1, 2, 3], true).server, [2, 3])
  t.equal(choosePinning({ pin: true }, [0], true).server, null, 'one core: nothing to pin apart')
  t.match(choosePinning({ pin: true }, [0], true).note, /1 core available/)
  t.equal(choosePinning({ pin: true }, [0, 1], false).server, null, 'no taskset')
  t.equal(choosePinning({ pin: false }, [0, 1], true).load, null)
  t.throws(() => choosePinning({ pin: false, server: '1' }, [0, 1], true), /contradict/)
  t.throws(() => choosePinning({ pin: true, load: '0' }, [0, 1], false), /need taskset/)
  t.throws(() => choosePinning({ pin: true, server: '1', load: '1' }, [0, 1], true), /share CPU 1/)
  t.throws(() => choosePinning({ pin: true, server: '5' }, [0, 1], true), /--server-cpus: CPU 5 is not one this process may run on/)
  t.throws(() => choosePinning({ pin: true, load: 'x' }, [0, 1], true), /not a CPU list/)
})

function core (busy: Partial<CoreTimes>): CoreTimes {
  return { user: 0, nice: 0, system: 0, idle: 0, iowait: 0, irq: 0, softirq: 0, steal: 0, ...busy }
}

t.test('interference: what the cores did beyond the benchmark\'s own processes', async (t) => {
  const before: Snapshot = { cores: new Map([[0, core({})], [1, core({})]]), servers: 0, runner: 0 }
  // One second at 100 ticks/s: core 1 (servers) busy 95 ticks, 80 of them the servers'; core 0
  // (runner) busy 70 ticks, 60 of them the runner's; 3 ticks of steal, 6 of softirq.
  const after: Snapshot = {
    cores: new Map([[0, core({ user: 50, system: 20, steal: 3, softirq: 4 })], [1, core({ user: 60, nice: 5, system: 30, softirq: 2 })]]),
    servers: 80,
    runner: 60
  }
  const pinned = interference(before, after, { server: [1], load: [0] }, 1, 100)
  t.equal(pinned.serverCores, 0.15)
  t.equal(pinned.loadCores, 0.1)
  t.equal(pinned.total, 0.25)
  t.equal(pinned.steal, 0.03)
  t.equal(pinned.irq, 0.06)
  const unpinned = interference(before, after, { server: null, load: null }, 1, 100)
  t.equal(unpinned.total, 0.25)
  t.equal(unpinned.serverCores, 0.125, 'unpinned: the total spread over every core')
  t.equal(unpinned.loadCores, 0.125)
  const ahead: Snapshot = { ...after, servers: 200, runner: 200 }
  const clamped = interference(before, ahead, { server: [1], load: [0] }, 1, 100)
  t.same([clamped.serverCores, clamped.loadCores, clamped.total], [0, 0, 0], 'counters sampled a tick apart never give a negative share')
})

t.test('the kernel\'s counters are read on this machine', async (t) => {
  const cpus = onlineCpus()
  t.ok(cpus.length >= 1)
  t.ok(cpus.every((cpu) => Number.isInteger(cpu) && cpu >= 0))
  t.ok(clockTicks() > 0)
  const first = snapshot([process.pid])
  const started = process.cpuUsage()
  while (process.cpuUsage(started).user < 100_000) Math.sqrt(Math.random())
  const second = snapshot([process.pid, 999_999_999])
  t.ok(first.cores.size >= cpus.length, 'every core this process may use is in /proc/stat')
  t.ok(second.runner > first.runner, 'the runner\'s own ticks advance while it computes')
  t.ok(second.servers > first.servers, 'and so do those of a listed process; a process that is gone counts nothing')
  const others = await othersOver([process.pid], 200, clockTicks())
  t.ok(Number.isFinite(others) && others >= 0 && others <= cpus.length, `other processes used ${others} cores, a share of the machine`)
})

t.test('pin moves a running process and its threads to the CPUs given', async (t) => {
  if (requirePrograms(t, ['taskset']) === null) return
  const cpus = onlineCpus()
  const target = cpus[cpus.length - 1] as number
  // Started like a benchmark server: pinned once it says it is up, with its threads running.
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000); process.stdout.write("up\\n")'], { stdio: ['ignore', 'pipe', 'ignore'] })
  t.teardown(() => { child.kill() })
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()))
  pin(child.pid as number, [target])
  const affinity = execFileSync('taskset', ['-c', '-p', String(child.pid)], { encoding: 'utf8' })
  t.match(affinity, new RegExp(`: ${target}\\s*$`))
  const threads = execFileSync('ls', [`/proc/${child.pid}/task`], { encoding: 'utf8' }).trim().split('\n')
  t.ok(threads.length > 1, 'node runs several threads')
  for (const thread of threads) {
    t.match(execFileSync('taskset', ['-c', '-p', thread], { encoding: 'utf8' }), new RegExp(`: ${target}\\s*$`), `thread ${thread}`)
  }
})
