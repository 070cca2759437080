/**
 * TLS_MODE=files: PEM files from disk, validated, and watched so that a renewed certificate is served
 * without a restart.
 *
 * Files change in three ways, and all three are caught: certbot points symlinks at new files,
 * Kubernetes swaps a `..data` symlink to a new directory, and editors or `cp` write in place. Directory
 * watchers react within milliseconds; a stat poll (following symlinks) is the safety net for file
 * systems where watchers miss events (network mounts, some container overlays). A change is read
 * after a short quiet period so that a half-written file is not mistaken for a broken one.
 */
import { createHash } from 'node:crypto'
import { watch, type FSWatcher } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { ERR_CERTIFICATE } from '../errors.js'
import type { TlsConfig } from '../schemas/tls.js'
import { assertUsablePair, chainProblems } from './inspect.js'
import type { CertificatePair, CertificateSource, SourceEvents } from './source.js'

/** Tuning of the watcher; tests shorten it. */
export interface WatchTiming {
  /** Quiet period after a change before the files are read, in ms. */
  settle: number
  /** Interval of the stat poll, in ms. */
  poll: number
}

const DEFAULT_TIMING: WatchTiming = { settle: 150, poll: 1000 }

type FilesConfig = Pick<TlsConfig, 'certFile' | 'keyFile' | 'caFile' | 'passphrase'>

async function readLabelled (path: string, label: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not readable by this process' : (error as Error).message
    throw new ERR_CERTIFICATE(`${label} ${path} ${why}`)
  }
}

/** Reads and validates the files once. */
export async function readCertificateFiles (config: FilesConfig, now = Date.now()): Promise<CertificatePair> {
  if (config.certFile === undefined || config.keyFile === undefined) {
    throw new ERR_CERTIFICATE('TLS_CERT_FILE and TLS_KEY_FILE are required with TLS_MODE=files')
  }
  const [cert, key, ca] = await Promise.all([
    readLabelled(config.certFile, 'TLS_CERT_FILE'),
    readLabelled(config.keyFile, 'TLS_KEY_FILE'),
    config.caFile === undefined ? Promise.resolve(undefined) : readLabelled(config.caFile, 'TLS_CA_FILE')
  ])
  const info = assertUsablePair(cert, key, config.passphrase, now, `certificate in ${config.certFile}`)
  const problems = chainProblems(cert)
  if (problems.length > 0) throw new ERR_CERTIFICATE(`TLS_CERT_FILE ${config.certFile}: ${problems.join('; ')}`)
  const pair: CertificatePair = { key, cert, info }
  if (ca !== undefined) pair.ca = ca
  if (config.passphrase !== undefined) pair.passphrase = config.passphrase
  return pair
}

async function signature (paths: readonly string[]): Promise<string> {
  const parts = await Promise.all(paths.map(async (path) => {
    try {
      const s = await stat(path)
      return `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`
    } catch {
      return 'missing'
    }
  }))
  return parts.join('|')
}

/** The certificate files source. */
export function filesSource (config: FilesConfig, timing: WatchTiming = DEFAULT_TIMING): CertificateSource {
  const paths = [config.certFile, config.keyFile, config.caFile].filter((p): p is string => p !== undefined).map((p) => resolve(p))
  const watchers: FSWatcher[] = []
  let poller: NodeJS.Timeout | undefined
  let settleTimer: NodeJS.Timeout | undefined
  let lastSignature = ''
  let lastDigest = ''
  let running: Promise<void> = Promise.resolve()
  let stopped = false

  function digest (pair: CertificatePair): string {
    return createHash('sha256').update(pair.cert).update('\0').update(pair.key).update('\0').update(pair.ca ?? '').digest('hex')
  }

  async function load (): Promise<CertificatePair> {
    lastSignature = await signature(paths)
    const pair = await readCertificateFiles(config)
    lastDigest = digest(pair)
    return pair
  }

  return {
    mode: 'files',
    load,
    start (events: SourceEvents) {
      stopped = false
      const check = (): void => {
        running = running.then(async () => {
          if (stopped) return
          const now = await signature(paths)
          if (now === lastSignature) return
          lastSignature = now
          let pair: CertificatePair
          try {
            pair = await readCertificateFiles(config)
          } catch (error) {
            events.error(error as Error)
            return
          }
          const next = digest(pair)
          if (next === lastDigest) return
          lastDigest = next
          events.update(pair, 'certificate files changed')
        })
      }
      const schedule = (): void => {
        if (settleTimer !== undefined) clearTimeout(settleTimer)
        settleTimer = setTimeout(check, timing.settle)
        settleTimer.unref()
      }
      for (const dir of new Set(paths.map((p) => dirname(p)))) {
        try {
          const watcher = watch(dir, { persistent: false }, schedule)
          watcher.on('error', () => { /* the poll below still sees changes */ })
          watchers.push(watcher)
        } catch {
          // Directory not watchable here; the poll covers it.
        }
      }
      poller = setInterval(check, timing.poll)
      poller.unref()
    },
    async stop () {
      stopped = true
      for (const watcher of watchers.splice(0)) watcher.close()
      if (poller !== undefined) clearInterval(poller)
      if (settleTimer !== undefined) clearTimeout(settleTimer)
      await running
    }
  }
}
