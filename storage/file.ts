/**
 * The filesystem implementation of `Storage`, under TLS_DIR: each key is a file (`a/b/c` is
 * `TLS_DIR/a/b/c`), each folder private (0700, see private-dir.ts), each value written 0600
 * atomically (a temporary file, then a rename). Values stay in clear, as certbot and Caddy keep
 * them: the owner and the mode protect them, and both are checked before anything is read (a
 * folder or a key file another user could write is refused with ERR_SECURE_HTTPS_INSECURE_STORAGE).
 * Files whose name contains `key` are private keys and must not be readable by others either.
 *
 * Locks are files created with O_EXCL holding their holder, token, lease time and fence (a counter
 * kept beside the lock, moved only by whoever holds it); the holder refreshes the file's mtime
 * every third of the lease. A lock whose mtime is older than its lease,
 * or whose holder is a dead process of this machine's process table, is taken over: the lock names
 * its host, boot and PID namespace (`scope`), since containers that share a hostname and a volume
 * each number their processes from 1. Instances that share TLS_DIR (a
 * shared volume, NFS) share the locks. A guarded write re-reads the lock file just before the
 * rename: a holder that lost its lease does not overwrite the new holder's work, short of a pause
 * between that check and the rename (Redis checks and writes in one step).
 */
import { randomBytes } from 'node:crypto'
import { readFileSync, readlinkSync } from 'node:fs'
import { open, readdir, readFile, rename, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join, resolve } from 'node:path'
import { ERR_LOCK_LOST } from '../errors.ts'
import { checkPrivateFile, ensurePrivateDir, type PrivateDirOptions } from './private-dir.ts'
import { assertKey, assertPrefix, DEFAULT_LOCK_TTL, ownerName, type KeyInfo, type Lease, type LockHolder, type LockOptions, type Storage, type StoreOptions } from './storage.ts'

/** What a lock file holds. */
interface LockFile {
  owner: string
  pid: number
  host: string
  /**
   * Where `pid` means something: the host, its boot and the PID namespace (see `lockScope`).
   * Absent in locks written by earlier versions, which are then judged by their age alone.
   */
  scope?: string
  token: string
  fence: number
  since: string
  ttl: number
}

/** A lease on a lock file, with its renewal timer. */
interface FileLease extends Lease {
  path: string
  content: string
  timer: NodeJS.Timeout
  controller: AbortController
}

/** Options of `fileStorage`. */
export interface FileStorageOptions extends PrivateDirOptions {}

function isSecretName (key: string): boolean {
  const last = key.slice(key.lastIndexOf('/') + 1)
  return /key/i.test(last)
}

function processAlive (pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function readOr (read: () => string): string {
  try {
    return read().trim()
  } catch {
    return ''
  }
}

let scope: string | undefined
/**
 * The process table a lock's `pid` belongs to: the hostname, the kernel's boot id and the PID
 * namespace. Two containers with one hostname (host networking, a fixed `hostname:`) sharing
 * TLS_DIR have different PID namespaces: a PID of one says nothing about the other's processes,
 * and a lock must never be taken over because its holder's PID is free in another namespace.
 * @internal
 */
export function lockScope (): string {
  scope ??= [hostname(),
    readOr(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8')),
    readOr(() => readlinkSync('/proc/self/ns/pid'))].join(' ')
  return scope
}

const isMissing = (error: unknown): boolean => (error as NodeJS.ErrnoException).code === 'ENOENT'

/** Increments the fencing counter of a lock (a file beside it) and returns the new value. */
async function nextFence (path: string): Promise<number> {
  let current = 0
  try {
    current = Number(await readFile(path, 'utf8')) || 0
  } catch (error) {
    if (!isMissing(error)) throw error
  }
  const next = current + 1
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  await writeFile(temp, String(next), { mode: 0o600 })
  await rename(temp, path)
  return next
}

/**
 * Storage in a private folder (TLS_DIR). `options.variable` names the setting in messages.
 */
export function fileStorage (root: string, options: FileStorageOptions = {}): Storage & { readonly root: string, pathOf (key: string): string } {
  const base = resolve(root)
  const privacy: PrivateDirOptions = { variable: options.variable ?? 'TLS_DIR', ...(options.uid === undefined ? {} : { uid: options.uid }) }
  const leases = new Set<FileLease>()

  function pathOf (key: string): string {
    assertKey(key)
    return join(base, ...key.split('/'))
  }

  /** Creates (0700) or checks every folder from the root down to the key's parent. */
  async function ensureParents (key: string): Promise<void> {
    await ensurePrivateDir(base, privacy)
    const segments = key.split('/')
    let dir = base
    for (const segment of segments.slice(0, -1)) {
      dir = join(dir, segment)
      await ensurePrivateDir(dir, privacy)
    }
  }

  async function readLock (path: string): Promise<{ data: LockFile | null, text: string, modified: number } | null> {
    try {
      const text = await readFile(path, 'utf8')
      const modified = (await stat(path)).mtimeMs
      let data: LockFile | null = null
      try {
        const parsed = JSON.parse(text) as Partial<LockFile>
        if (typeof parsed.token === 'string') {
          data = {
            owner: String(parsed.owner),
            pid: Number(parsed.pid),
            host: String(parsed.host),
            ...(typeof parsed.scope === 'string' ? { scope: parsed.scope } : {}),
            token: parsed.token,
            fence: Number(parsed.fence) || 0,
            since: String(parsed.since),
            ttl: Number(parsed.ttl) > 0 ? Number(parsed.ttl) : DEFAULT_LOCK_TTL
          }
        }
      } catch {
        // Half-written by its creator a moment ago, or garbage: judged by its age alone.
      }
      return { data, text, modified }
    } catch (error) {
      if (isMissing(error)) return null
      throw error
    }
  }

  /** The live holder, or null when the lock is free or stale. */
  function liveHolder (found: NonNullable<Awaited<ReturnType<typeof readLock>>>, now: number): LockHolder | null {
    const ttl = found.data?.ttl ?? DEFAULT_LOCK_TTL
    if (now - found.modified > ttl) return null
    const data = found.data
    if (data === null) return { owner: 'unknown', since: new Date(found.modified), expires: new Date(found.modified + ttl) }
    // A dead holder is known at once only within its own process table.
    if (data.scope === lockScope() && !processAlive(data.pid)) return null
    return { owner: data.owner, since: new Date(data.since), expires: new Date(found.modified + ttl) }
  }

  async function stillHeld (lease: FileLease): Promise<boolean> {
    try {
      return await readFile(lease.path, 'utf8') === lease.content
    } catch {
      return false
    }
  }

  function startRenewal (lease: Omit<FileLease, 'timer'>, ttl: number): FileLease {
    const timer = setInterval(() => {
      // Refreshing the mtime tells other instances that the holder is alive; a lock that is no
      // longer ours means the lease was lost.
      stillHeld(full).then(async (held) => {
        if (!held) {
          lost()
          return
        }
        const t = new Date()
        await utimes(lease.path, t, t)
      }).catch(() => lost())
    }, Math.max(50, Math.floor(ttl / 3)))
    timer.unref()
    const full: FileLease = { ...lease, timer }
    function lost (): void {
      clearInterval(timer)
      leases.delete(full)
      full.controller.abort(new ERR_LOCK_LOST(`the lock ${lease.name} was lost: its lease ran out and another instance took it`))
    }
    leases.add(full)
    return full
  }

  async function release (lease: FileLease): Promise<void> {
    clearInterval(lease.timer)
    leases.delete(lease)
    try {
      if (await readFile(lease.path, 'utf8') === lease.content) await unlink(lease.path)
    } catch (error) {
      if (!isMissing(error)) throw error
    }
  }

  async function list (prefix: string, recursive = false): Promise<string[]> {
    assertPrefix(prefix)
    const dir = prefix === '' ? base : pathOf(prefix)
    let entries: import('node:fs').Dirent[]
    try {
      entries = await readdir(dir, { withFileTypes: true })
    } catch (error) {
      if (isMissing(error) || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return []
      throw error
    }
    const keys: string[] = []
    for (const entry of entries) {
      // .gitignore, temporary files of a write in progress, lock files: not values.
      if (entry.name.startsWith('.') || entry.name.endsWith('.tmp') || entry.name.endsWith('.lock') || entry.name.endsWith('.fence')) continue
      const key = prefix === '' ? entry.name : `${prefix}/${entry.name}`
      if (entry.isDirectory()) {
        if (recursive) keys.push(...await list(key, true))
        else keys.push(key)
      } else if (entry.isFile()) {
        keys.push(key)
      }
    }
    return keys.sort()
  }

  return {
    description: `file: ${base}`,
    root: base,
    pathOf,

    async store (key: string, value: string, storeOptions: StoreOptions = {}) {
      const path = pathOf(key)
      await ensureParents(key)
      const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
      await writeFile(temp, value, { mode: 0o600 })
      const guard = storeOptions.guard
      if (guard !== undefined) {
        const lease = [...leases].find((candidate) => candidate.token === guard.token)
        if (lease === undefined || !await stillHeld(lease)) {
          await rm(temp, { force: true })
          throw new ERR_LOCK_LOST(`not writing ${key}: the lock ${guard.name} was lost (its lease ran out and another instance may hold it)`)
        }
      }
      await rename(temp, path)
    },

    async load (key) {
      const path = pathOf(key)
      await ensureParents(key)
      try {
        await checkPrivateFile(path, isSecretName(key), privacy)
        return await readFile(path, 'utf8')
      } catch (error) {
        if (isMissing(error) || (error as NodeJS.ErrnoException).code === 'EISDIR') return null
        throw error
      }
    },

    async delete (key) {
      await rm(pathOf(key), { force: true, recursive: true })
    },

    async exists (key) {
      try {
        await stat(pathOf(key))
        return true
      } catch (error) {
        if (isMissing(error)) return false
        throw error
      }
    },

    list,

    async stat (key): Promise<KeyInfo | null> {
      try {
        const info = await stat(pathOf(key))
        return { key, modified: info.mtime, size: info.size, terminal: info.isFile() }
      } catch (error) {
        if (isMissing(error)) return null
        throw error
      }
    },

    async lock (name: string, lockOptions: LockOptions = {}): Promise<Lease | LockHolder> {
      const path = `${pathOf(name)}.lock`
      await ensureParents(name)
      const ttl = lockOptions.ttl ?? DEFAULT_LOCK_TTL
      const host = hostname()
      const token = randomBytes(16).toString('hex')
      for (let attempt = 0; attempt < 2; attempt++) {
        const now = Date.now()
        const data: LockFile = { owner: ownerName(process.pid, host), pid: process.pid, host, scope: lockScope(), token, fence: 0, since: new Date(now).toISOString(), ttl }
        let content = ''
        try {
          const handle = await open(path, 'wx', 0o600)
          try {
            // Holding the lock (its file was created exclusively), the fence counter beside it is ours to move.
            data.fence = await nextFence(`${path}.fence`)
            content = JSON.stringify(data)
            await handle.writeFile(content)
          } finally {
            await handle.close()
          }
          const controller = new AbortController()
          return startRenewal({ name, token, fence: data.fence, path, content, controller, signal: controller.signal }, ttl)
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
        }
        const found = await readLock(path)
        if (found !== null) {
          const holder = liveHolder(found, Date.now())
          if (holder !== null) return holder
          // Stale: remove it (only if it is still the one judged stale) and try once more; if
          // another instance beats us to it, that one holds the lock.
          if (await readFile(path, 'utf8').catch(() => null) === found.text) await rm(path, { force: true })
        }
      }
      const last = await readLock(path)
      return (last === null ? null : liveHolder(last, Date.now())) ?? { owner: 'unknown', since: new Date(), expires: null }
    },

    async unlock (lease) {
      const own = [...leases].find((candidate) => candidate.token === lease.token)
      if (own !== undefined) await release(own)
    },

    async close () {
      await Promise.allSettled([...leases].map((lease) => release(lease)))
    }
  }
}
