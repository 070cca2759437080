/**
 * The development session key: made once under TLS_DIR (mode 0600, beside the development CA) and
 * read at every start, so that a restart (`node --watch`) keeps the developer logged in. Production
 * never uses it: there SESSION_KEYS is required.
 *
 * Knows nothing of Fastify. @internal
 */
import { randomBytes } from 'node:crypto'
import { link, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { ERR_INSECURE_STORAGE } from '../errors.ts'
import { checkPrivateFile, ensurePrivateDir } from './private-dir.ts'

/** File name of the key under TLS_DIR. */
export const DEV_SESSION_KEY_FILE = 'session-key'
const KEY_BYTES = 32

/** The key, where it lives, and whether this call made it. */
export interface DevSessionKey {
  key: Buffer
  path: string
  created: boolean
}

function decode (text: string): Buffer | null {
  const trimmed = text.trim()
  if (!/^[A-Za-z0-9+/]{43}=$/.test(trimmed)) return null
  const key = Buffer.from(trimmed, 'base64')
  return key.length === KEY_BYTES ? key : null
}

/**
 * Reads TLS_DIR/session-key, or makes it (base64 of 32 random bytes, mode 0600). Two processes
 * starting at once get the same key: the file is created exclusively and the loser reads it.
 * @throws ERR_SECURE_HTTPS_INSECURE_STORAGE when TLS_DIR or the file could have been written by
 * another user (a planted key would let them forge sessions)
 */
export async function loadOrCreateDevSessionKey (dir: string): Promise<DevSessionKey> {
  await ensurePrivateDir(dir, { variable: 'TLS_DIR' })
  const path = join(resolve(dir), DEV_SESSION_KEY_FILE)
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await checkPrivateFile(path, true)
      const key = decode(await readFile(path, 'utf8'))
      if (key !== null) return { key, path, created: false }
      // Unreadable as a key (truncated, edited): set aside, and a new one is made below.
      await rename(path, `${path}.invalid-${Date.now()}`).catch(async () => { await rm(path, { force: true }) })
    } catch (error) {
      if (error instanceof ERR_INSECURE_STORAGE) throw error
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    }
    const key = randomBytes(KEY_BYTES)
    // Written whole under another name, then linked into place: link() fails if the name exists,
    // so no reader ever sees a half-written key and no second writer replaces the first.
    const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
    try {
      await writeFile(temp, `${key.toString('base64')}\n`, { mode: 0o600, flag: 'wx' })
      await link(temp, path)
      return { key, path, created: true }
    } catch (error) {
      // Another process made it first: read theirs on the next round.
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    } finally {
      await rm(temp, { force: true })
    }
  }
  throw new ERR_INSECURE_STORAGE(`${path} keeps changing while it is read; delete it and start again`)
}
