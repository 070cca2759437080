/**
 * What else ran on the machine while the benchmark measured: the kernel's per-core CPU counters
 * (/proc/stat) and each process's own (/proc/PID/stat), read before and after every window. What
 * the cores did minus what the servers and the runner did is what other processes took. Also the
 * cores the servers and the load generator are pinned to (taskset).
 * @internal
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'

/** One core's cumulative time in clock ticks, from a `cpuN` line of /proc/stat. @internal */
export interface CoreTimes {
  user: number
  nice: number
  system: number
  idle: number
  iowait: number
  irq: number
  softirq: number
  steal: number
}

const CORE_FIELDS = ['user', 'nice', 'system', 'idle', 'iowait', 'irq', 'softirq', 'steal'] as const

/**
 * The per-core lines of /proc/stat (`cpu0 ...`, `cpu1 ...`; the aggregate `cpu` line is left out).
 * Kernels before 2.6.11 have no steal column: it reads as 0. @internal
 */
export function parseProcStat (text: string): Map<number, CoreTimes> {
  const cores = new Map<number, CoreTimes>()
  for (const line of text.split('\n')) {
    const match = /^cpu(\d+)((?: \d+)+)$/.exec(line.trimEnd())
    if (match === null) continue
    const numbers = (match[2] as string).trim().split(' ').map(Number)
    if (numbers.length < 7) continue
    const times = Object.fromEntries(CORE_FIELDS.map((field, i) => [field, numbers[i] ?? 0])) as unknown as CoreTimes
    cores.set(Number(match[1]), times)
  }
  return cores
}

/**
 * User + system clock ticks of a process (all its threads) from its /proc/PID/stat line. The
 * command name, second field, is in parentheses and may itself contain spaces and parentheses: the
 * fields are counted from the last `)`. @internal
 */
export function parsePidStat (text: string): number {
  const end = text.lastIndexOf(')')
  if (end === -1) throw new Error('not a /proc/PID/stat line: no command name in parentheses')
  // After ") ": state (field 3), ppid, pgrp, session, tty_nr, tpgid, flags, minflt, cminflt,
  // majflt, cmajflt, utime (field 14), stime (field 15).
  const fields = text.slice(end + 2).trim().split(' ')
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  if (!Number.isInteger(utime) || !Number.isInteger(stime)) throw new Error('not a /proc/PID/stat line: utime and stime are not whole numbers')
  return utime + stime
}

/**
 * A taskset CPU list (`1`, `0,2`, `2-3`, `0,4-7`), strictly: whole numbers, ascending ranges, no
 * spaces or empty items. Returns the CPUs in ascending order without repeats. @internal
 */
export function parseCpuList (text: string): number[] {
  if (!/^\d{1,4}(-\d{1,4})?(,\d{1,4}(-\d{1,4})?)*$/.test(text)) {
    throw new Error(`"${text}" is not a CPU list; write CPU numbers and ranges such as 1, 0,2 or 2-3`)
  }
  const cpus = new Set<number>()
  for (const item of text.split(',')) {
    const [first, last] = item.split('-').map(Number) as [number, number | undefined]
    const to = last ?? first
    if (to < first) throw new Error(`"${item}" in the CPU list "${text}" is a range that runs backwards; write ${to}-${first}`)
    for (let cpu = first; cpu <= to; cpu++) cpus.add(cpu)
  }
  return [...cpus].sort((a, b) => a - b)
}

/** Where the servers and the load generator run. @internal */
export interface Pinning {
  /** taskset CPU lists, or null when not pinned. */
  server: number[] | null
  load: number[] | null
  note: string
}

/** Whether `taskset` (util-linux) can be run. @internal */
export function tasksetAvailable (): boolean {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/**
 * Pins a running process and all its threads to `cpus`. `taskset -a` walks /proc/PID/task and fails
 * when a thread ends during the walk (Node's threads come and go: it happened to the runner in CI),
 * so a failure is tried again, and only a process that is gone or a third failure is an error.
 * @internal
 */
export function pin (pid: number, cpus: readonly number[]): void {
  for (let attempt = 1; ; attempt++) {
    try {
      execFileSync('taskset', ['-a', '-c', '-p', cpus.join(','), String(pid)], { stdio: 'ignore' })
      return
    } catch (error) {
      if (attempt >= 3 || !existsSync(`/proc/${pid}`)) throw error
    }
  }
}

/**
 * The cores to pin to: the ones asked for, checked against the machine; by default the servers on
 * core 1 and the load generator on core 0 when there are two cores or more and taskset exists.
 * @internal
 */
export function choosePinning (asked: { server?: string, load?: string, pin: boolean }, online: readonly number[], taskset: boolean): Pinning {
  if (!asked.pin) {
    if (asked.server !== undefined || asked.load !== undefined) throw new Error('--no-pin and --server-cpus/--load-cpus contradict each other; drop one')
    return { server: null, load: null, note: 'not pinned (--no-pin): servers and load generator share every core' }
  }
  if (!taskset) {
    if (asked.server !== undefined || asked.load !== undefined) throw new Error('--server-cpus/--load-cpus need taskset (Debian package util-linux), which is not installed')
    return { server: null, load: null, note: 'not pinned: taskset (util-linux) is not installed' }
  }
  if (asked.server === undefined && asked.load === undefined && online.length < 2) {
    return { server: null, load: null, note: `not pinned: ${online.length} core available` }
  }
  const server = asked.server === undefined ? [online.length > 1 ? online[1] as number : online[0] as number] : parseCpuList(asked.server)
  const load = asked.load === undefined ? [online[0] as number] : parseCpuList(asked.load)
  for (const [name, cpus] of [['--server-cpus', server], ['--load-cpus', load]] as const) {
    const absent = cpus.filter((cpu) => !online.includes(cpu))
    if (absent.length > 0) throw new Error(`${name}: CPU ${absent.join(', ')} is not one this process may run on (${online.join(',')})`)
  }
  const shared = server.filter((cpu) => load.includes(cpu))
  if (shared.length > 0) throw new Error(`--server-cpus and --load-cpus share CPU ${shared.join(', ')}; give them separate cores, or use --no-pin`)
  return { server, load, note: `servers pinned to CPU ${server.join(',')}, load generator (autocannon, the runner) to CPU ${load.join(',')} with taskset` }
}

/** The CPUs this process may run on, from its affinity (`taskset -p`), else every core /proc/stat lists. @internal */
export function onlineCpus (): number[] {
  try {
    const out = execFileSync('taskset', ['-c', '-p', String(process.pid)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    const list = /:\s*([\d,-]+)\s*$/.exec(out.trim())?.[1]
    if (list !== undefined) return parseCpuList(list)
  } catch {}
  return [...parseProcStat(readFileSync('/proc/stat', 'utf8')).keys()].sort((a, b) => a - b)
}

/** Clock ticks per second of /proc's counters (USER_HZ). @internal */
export function clockTicks (): number {
  try {
    const hz = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim())
    if (Number.isInteger(hz) && hz > 0) return hz
  } catch {}
  return 100
}

/** The counters read at one instant. @internal */
export interface Snapshot {
  cores: Map<number, CoreTimes>
  /** User + system ticks of every benchmark server process, summed. */
  servers: number
  /** User + system ticks of the runner (this process: autocannon). */
  runner: number
}

/** Reads /proc/stat and the /proc/PID/stat of the runner and each server. @internal */
export function snapshot (serverPids: readonly number[]): Snapshot {
  let servers = 0
  for (const pid of serverPids) {
    try {
      servers += parsePidStat(readFileSync(`/proc/${pid}/stat`, 'utf8'))
    } catch {}
  }
  return {
    cores: parseProcStat(readFileSync('/proc/stat', 'utf8')),
    servers,
    runner: parsePidStat(readFileSync('/proc/self/stat', 'utf8'))
  }
}

/** What the cores did over a window besides the benchmark's own processes, as shares of the cores' time (0 to 1). @internal */
export interface Interference {
  /** Other processes' user + system time on the servers' cores. */
  serverCores: number
  /** Other processes' user + system time on the load generator's cores. */
  loadCores: number
  /** Other processes on every core, in cores (0.5: half a core on average). */
  total: number
  /** Time the hypervisor gave the machine's cores to someone else, over every core, in cores. */
  steal: number
  /** Interrupt and softirq time (mostly the loopback network of the benchmark itself), in cores. */
  irq: number
}

function busyOf (before: Map<number, CoreTimes>, after: Map<number, CoreTimes>, cpus: readonly number[]): { busy: number, steal: number, irq: number } {
  let busy = 0
  let steal = 0
  let irq = 0
  for (const cpu of cpus) {
    const a = before.get(cpu)
    const b = after.get(cpu)
    if (a === undefined || b === undefined) continue
    busy += (b.user - a.user) + (b.nice - a.nice) + (b.system - a.system)
    steal += b.steal - a.steal
    irq += (b.irq - a.irq) + (b.softirq - a.softirq)
  }
  return { busy, steal, irq }
}

/**
 * Other processes' share of the cores between two snapshots. With the servers and the runner each
 * pinned to their own cores, what a core set did beyond its own benchmark process is someone
 * else's; unpinned, only the total is known (the two per-set figures are then that total's share
 * of every core). Never negative: the kernel's counters and the processes' are sampled at slightly
 * different instants. @internal
 */
export function interference (before: Snapshot, after: Snapshot, pinning: Pick<Pinning, 'server' | 'load'>, seconds: number, hz: number): Interference {
  const all = [...after.cores.keys()]
  const ticks = seconds * hz
  const servers = after.servers - before.servers
  const runner = after.runner - before.runner
  const whole = busyOf(before.cores, after.cores, all)
  const total = Math.max(0, whole.busy - servers - runner) / ticks
  const base = { total, steal: whole.steal / ticks, irq: whole.irq / ticks }
  if (pinning.server === null || pinning.load === null) {
    const share = all.length === 0 ? 0 : total / all.length
    return { serverCores: share, loadCores: share, ...base }
  }
  const onServer = busyOf(before.cores, after.cores, pinning.server)
  const onLoad = busyOf(before.cores, after.cores, pinning.load)
  return {
    serverCores: Math.max(0, onServer.busy - servers) / (ticks * pinning.server.length),
    loadCores: Math.max(0, onLoad.busy - runner) / (ticks * pinning.load.length),
    ...base
  }
}

/**
 * What other processes use of the whole machine over `ms` milliseconds, in cores, the benchmark's
 * own processes (`pids` and this one) left out. @internal
 */
export async function othersOver (pids: readonly number[], ms: number, hz: number): Promise<number> {
  const before = snapshot(pids)
  await new Promise((resolve) => setTimeout(resolve, ms))
  return interference(before, snapshot(pids), { server: null, load: null }, ms / 1000, hz).total
}
