/**
 * TLS_MODE=files: PEM files from disk, validated, and watched so that a renewed certificate is served
 * without a restart.
 *
 * Files change in three ways, and all three are caught: certbot points symlinks at new files,
 * Kubernetes swaps a `..data` symlink to a new directory, and editors or `cp` write in place. The
 * watchers cover both the directory named in the option and the directory the symlinks resolve to
 * (an in-place write there changes nothing in the first one), and are moved when the symlinks move.
 * A stat poll that follows symlinks is the safety net for file systems where watchers miss events
 * (network mounts, some container overlays).
 *
 * Every change, seen by a watcher or by the poll, is read only after a quiet period, and a read is
 * trusted only if the files did not change while it ran: a file still being written is looked at
 * again rather than reported as broken. What is read must pass the same checks as at start (key
 * matches, in date, chain in order); otherwise the error is reported once and the pair in service
 * stays.
 */
import { createHash } from 'node:crypto'
import { watch, type FSWatcher } from 'node:fs'
import { readFile, realpath, stat } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { ERR_CERTIFICATE } from '../errors.ts'
import { certificateFiles, type TlsConfig } from '../schemas/tls.ts'
import { assertUsablePair, chainProblems, truncatedPem } from './inspect.ts'
import type { CertificatePair, CertificateSource, NamedCertificate, SourceEvents } from './source.ts'

/** Tuning of the watcher; tests shorten it. */
export interface WatchTiming {
  /** Quiet period after a change before the files are read, in ms. */
  settle: number
  /** Interval of the stat poll, in ms. */
  poll: number
}

/**
 * Defaults: a change is served within about 0.2 s when a watcher sees it and within about 1.2 s
 * when only the poll does, under the 2 s the suite promises.
 */
export const DEFAULT_WATCH_TIMING: Readonly<WatchTiming> = Object.freeze({ settle: 200, poll: 1000 })

type FilesConfig = Pick<TlsConfig, 'certFile' | 'keyFile' | 'caFile' | 'passphrase'>

async function readLabelled (path: string, label: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    const why = code === 'ENOENT'
      ? 'does not exist (or is a symlink to a missing file)'
      : code === 'EACCES'
        ? 'is not readable by this process; give its user read access'
        : code === 'EISDIR' ? 'is a directory, not a PEM file' : (error as Error).message
    throw new ERR_CERTIFICATE(`${label} ${path} ${why}`)
  }
}

/**
 * Reads and validates the files once: key matches the certificate, certificate in date, chain leaf
 * first. @throws ERR_SECURE_HTTPS_CERTIFICATE naming the variable, the file and the problem
 */
export async function readCertificateFiles (config: FilesConfig, now = Date.now()): Promise<CertificatePair> {
  if (config.certFile === undefined || config.keyFile === undefined) {
    throw new ERR_CERTIFICATE('TLS_CERT_FILE and TLS_KEY_FILE are required with TLS_MODE=files')
  }
  const results = await Promise.allSettled([
    readLabelled(config.certFile, 'TLS_CERT_FILE'),
    readLabelled(config.keyFile, 'TLS_KEY_FILE'),
    config.caFile === undefined ? Promise.resolve(undefined) : readLabelled(config.caFile, 'TLS_CA_FILE')
  ])
  // Every unreadable file in one message, in a stable order.
  const failed = results.flatMap((result) => result.status === 'rejected' ? [(result.reason as Error).message] : [])
  if (failed.length > 0) throw new ERR_CERTIFICATE(failed.join('; '))
  const [cert, key, ca] = results.map((result) => result.status === 'fulfilled' ? result.value : undefined) as [string, string, string | undefined]
  // Order first: with the chain reversed, the key would seem not to match, which misleads.
  const problems = chainProblems(cert)
  if (problems.length > 0) throw new ERR_CERTIFICATE(`TLS_CERT_FILE ${config.certFile}: ${problems.join('; ')}`)
  const caTruncated = ca === undefined ? null : truncatedPem(ca)
  if (caTruncated !== null) throw new ERR_CERTIFICATE(`TLS_CA_FILE ${config.caFile ?? ''}: ${caTruncated}`)
  const info = assertUsablePair(cert, key, config.passphrase, now, `certificate in TLS_CERT_FILE ${config.certFile}`, `private key in TLS_KEY_FILE ${config.keyFile}`)
  const pair: CertificatePair = { key, cert, info }
  if (ca !== undefined) pair.ca = ca
  if (config.passphrase !== undefined) pair.passphrase = config.passphrase
  return pair
}

/** Identity of the files' current content, following symlinks; changes on any replacement or write. */
async function signature (paths: readonly string[]): Promise<string> {
  const parts = await Promise.all(paths.map(async (path) => {
    try {
      const s = await stat(path, { bigint: true })
      return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`
    } catch (error) {
      return `error:${(error as NodeJS.ErrnoException).code ?? 'unknown'}`
    }
  }))
  return parts.join('|')
}

/** Directories whose entries decide what the paths read: each path's own and its symlink target's. */
async function directoriesOf (paths: readonly string[]): Promise<Set<string>> {
  const dirs = new Set<string>()
  await Promise.all(paths.map(async (path) => {
    dirs.add(dirname(path))
    try {
      dirs.add(dirname(await realpath(path)))
    } catch {
      // A dangling symlink: its own directory is watched, which is where the fix will appear.
    }
  }))
  return dirs
}

/** Content digest of a pair, to skip reloads that would change nothing. @internal */
export function pairDigest (pair: Pick<CertificatePair, 'cert' | 'key' | 'ca'>): string {
  return createHash('sha256').update(pair.cert).update('\0').update(pair.key).update('\0').update(pair.ca ?? '').digest('hex')
}

/**
 * The certificate files source. With comma lists in TLS_CERT_FILE and TLS_KEY_FILE, one pair per
 * position, each read, validated and watched on its own, chosen by SNI; the first is the default.
 */
export function filesSource (config: FilesConfig, timing: WatchTiming = DEFAULT_WATCH_TIMING): CertificateSource {
  const pairs = certificateFiles(config)
  if (pairs.length <= 1) return pairSource(config, timing)
  return severalPairs(pairs.map((files) => ({ ...config, ...files })), timing)
}

/** A name for the certificate at `index`: `default` for the first, its first DNS name for the others. */
function pairName (index: number, pair: CertificatePair, taken: ReadonlySet<string>): string {
  if (index === 0) return 'default'
  const first = pair.info.sans.find((san) => !/^[\d.:]+$/.test(san)) ?? pair.info.sans[0] ?? `certificate ${index + 1}`
  return taken.has(first) ? `${first} (${index + 1})` : first
}

/**
 * The error of a `load()` in which some pairs of several failed, after the first load: the pairs
 * that did load are in `certificates()` and must be applied, each failure is reported under its own
 * certificate's name. @internal
 */
export interface PartialLoadError extends Error {
  failures: Array<{ name: string, error: Error }>
}

/** True for the error of a load in which only some pairs failed. @internal */
export function isPartialLoadError (error: unknown): error is PartialLoadError {
  return error instanceof Error && Array.isArray((error as Partial<PartialLoadError>).failures)
}

/** Several pairs: each its own watched source, reported by name. */
function severalPairs (configs: FilesConfig[], timing: WatchTiming): CertificateSource {
  const sources = configs.map((files) => pairSource(files, timing))
  const current: Array<CertificatePair | null> = sources.map(() => null)
  const names: string[] = []
  return {
    mode: 'files',
    async load () {
      // Every pair is read and checked; all problems at once, each naming its files.
      const results = await Promise.allSettled(sources.map((source) => source.load()))
      const failed = results.flatMap((result, i) => result.status === 'rejected' ? [{ i, error: new ERR_CERTIFICATE(`pair ${i + 1} (${configs[i]?.certFile ?? ''}): ${(result.reason as Error).message}`) }] : [])
      const loaded = names.length === sources.length
      if (failed.length > 0 && !loaded) throw new ERR_CERTIFICATE(failed.map(({ error }) => error.message).join('; '))
      // After the first load (a manual reload), the pairs that did load are handed over all the
      // same: each pair's own source now counts them as served, and would not offer them again.
      results.forEach((result, i) => {
        if (result.status !== 'fulfilled') return
        current[i] = result.value
        if (names[i] === undefined) names[i] = pairName(i, result.value, new Set(names))
      })
      if (failed.length > 0) {
        const error = new ERR_CERTIFICATE(failed.map(({ error }) => error.message).join('; ')) as unknown as PartialLoadError
        error.failures = failed.map(({ i, error }) => ({ name: names[i] as string, error }))
        throw error
      }
      return current[0] as CertificatePair
    },
    certificates () {
      const list: NamedCertificate[] = []
      current.forEach((pair, i) => {
        if (pair !== null) list.push({ name: names[i] as string, names: [], pair })
      })
      return list
    },
    start (events: SourceEvents) {
      sources.forEach((source, i) => {
        source.start({
          update (pair, reason) {
            current[i] = pair
            events.update(pair, `${reason} (${configs[i]?.certFile ?? ''})`, names[i])
          },
          error (error) {
            events.error(error, names[i])
          }
        })
      })
    },
    async stop () {
      await Promise.all(sources.map((source) => source.stop()))
    }
  }
}

/** One certificate and key file pair, watched. */
function pairSource (config: FilesConfig, timing: WatchTiming): CertificateSource {
  const paths = [config.certFile, config.keyFile, config.caFile].filter((p): p is string => p !== undefined).map((p) => resolve(p))
  const watchers = new Map<string, FSWatcher>()
  let poller: NodeJS.Timeout | undefined
  let settleTimer: NodeJS.Timeout | undefined
  /** Signature of the files as last read (successfully or not). */
  let seen = ''
  /** Digest of the pair last handed out. */
  let served = ''
  let running: Promise<void> = Promise.resolve()
  let events: SourceEvents | undefined

  let pendingSince = 0

  function schedule (): void {
    if (events === undefined) return
    if (settleTimer !== undefined) {
      // Debounced, but a directory that never goes quiet (a log file beside the certificate)
      // must not postpone the check forever.
      if (Date.now() - pendingSince >= timing.settle * 4) return
      clearTimeout(settleTimer)
    } else {
      pendingSince = Date.now()
    }
    settleTimer = setTimeout(() => {
      settleTimer = undefined
      running = running.then(check, check)
    }, timing.settle)
    settleTimer.unref()
  }

  async function rewatch (): Promise<void> {
    if (events === undefined) return
    const wanted = await directoriesOf(paths)
    if (events === undefined) return
    for (const [dir, watcher] of watchers) {
      if (!wanted.has(dir)) {
        watcher.close()
        watchers.delete(dir)
      }
    }
    for (const dir of wanted) {
      if (watchers.has(dir)) continue
      try {
        const watcher = watch(dir, { persistent: false }, schedule)
        // A watched directory can vanish (Kubernetes deletes the old data directory); the next
        // rewatch drops it, and the poll covers the gap.
        watcher.on('error', () => {
          watcher.close()
          if (watchers.get(dir) === watcher) watchers.delete(dir)
        })
        watchers.set(dir, watcher)
      } catch {
        // Not watchable (missing, or a file system without notifications): the poll covers it.
      }
    }
  }

  async function check (): Promise<void> {
    const target = events
    if (target === undefined) return
    const before = await signature(paths)
    if (before === seen) return
    let pair: CertificatePair | undefined
    let failure: Error | undefined
    try {
      pair = await readCertificateFiles(config)
    } catch (error) {
      failure = error as Error
    }
    const after = await signature(paths)
    if (after !== before) {
      // Written to while being read: judge the files once they are quiet.
      schedule()
      return
    }
    seen = after
    await rewatch()
    if (events !== target) return
    if (failure !== undefined || pair === undefined) {
      target.error(failure ?? new ERR_CERTIFICATE('the certificate files could not be read'))
      return
    }
    const digest = pairDigest(pair)
    if (digest === served) return
    served = digest
    target.update(pair, 'certificate files changed')
  }

  async function load (): Promise<CertificatePair> {
    const before = await signature(paths)
    try {
      const pair = await readCertificateFiles(config)
      served = pairDigest(pair)
      return pair
    } finally {
      // A broken state reported to the caller of load() is not reported again by the watcher.
      seen = before
    }
  }

  return {
    mode: 'files',
    load,
    start (target: SourceEvents) {
      events = target
      running = running.then(rewatch, rewatch)
      poller = setInterval(() => {
        signature(paths).then((now) => { if (now !== seen) schedule() }, () => {})
      }, timing.poll)
      poller.unref()
      // Anything that changed between load() and start() is picked up too.
      schedule()
    },
    async stop () {
      events = undefined
      if (poller !== undefined) clearInterval(poller)
      if (settleTimer !== undefined) clearTimeout(settleTimer)
      poller = undefined
      settleTimer = undefined
      for (const watcher of watchers.values()) watcher.close()
      watchers.clear()
      await running
    }
  }
}
