/**
 * Folders and files that hold private keys (TLS_DIR): created so that only this user can read them,
 * and refused when another local user could have planted or swapped what is in them, the way ssh's
 * StrictModes refuses a private key or an authorized_keys file that someone else can write.
 *
 * The rules (POSIX; skipped where the platform has no user ids, i.e. Windows):
 * - a folder made here is created 0700 with a `.gitignore` that keeps it out of version control;
 * - an existing folder must be owned by the user the process runs as and not writable by its group
 *   or by others (otherwise another user can replace the files in it);
 * - a private key file must be owned by that user and not readable or writable by group or others
 *   (0600 or stricter);
 * - other files (certificates) must be owned by that user and not writable by group or others.
 *
 * Knows nothing of Fastify. @internal
 */
import { constants } from 'node:fs'
import { mkdir, open, stat } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { ERR_INSECURE_STORAGE } from '../errors.ts'

/** Content of the `.gitignore` written into a new private folder. */
export const PRIVATE_DIR_GITIGNORE = '# Private keys and certificates made by fastify-secure-https: never commit them.\n*\n'

/** Where a folder's name came from, for messages (`TLS_DIR`). */
export interface PrivateDirOptions {
  /** The setting that named the folder, e.g. `TLS_DIR`. */
  variable?: string
  /** User id to check ownership against; default `process.getuid()`. Tests set it. */
  uid?: number
}

function currentUid (options: PrivateDirOptions): number | undefined {
  if (options.uid !== undefined) return options.uid
  return typeof process.getuid === 'function' ? process.getuid() : undefined
}

const octal = (mode: number): string => (mode & 0o777).toString(8).padStart(4, '0')

function describe (options: PrivateDirOptions, path: string): string {
  return options.variable === undefined ? path : `${options.variable} (${path})`
}

/**
 * Creates the folder (and its parents) with mode 0700 and a `.gitignore`, or checks an existing one.
 * @throws ERR_SECURE_HTTPS_INSECURE_STORAGE when the folder cannot be created, or when it is owned
 * by another user or writable by group or others.
 */
export async function ensurePrivateDir (dir: string, options: PrivateDirOptions = {}): Promise<void> {
  const path = resolve(dir)
  let created = false
  try {
    const made = await mkdir(path, { recursive: true, mode: 0o700 })
    created = made !== undefined
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error'
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
      throw new ERR_INSECURE_STORAGE(`${describe(options, path)} cannot be created (${code}): this user cannot write to ${dirname(path)}; ` +
        `set ${options.variable ?? 'the folder'} to a folder this user can write, e.g. ${options.variable ?? 'TLS_DIR'}=$HOME/.secure-https, or create it with: mkdir -m 700 ${path}`)
    }
    if (code === 'ENOTDIR' || code === 'EEXIST') {
      throw new ERR_INSECURE_STORAGE(`${describe(options, path)} is not a folder (${code}); point ${options.variable ?? 'it'} at a folder`)
    }
    throw error
  }
  await checkPrivateDir(path, options)
  if (created) await writeGitignore(path)
}

/** Writes `.gitignore` unless one is there. */
async function writeGitignore (dir: string): Promise<void> {
  try {
    const handle = await open(join(dir, '.gitignore'), 'wx', 0o600)
    try {
      await handle.writeFile(PRIVATE_DIR_GITIGNORE)
    } finally {
      await handle.close()
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
  }
}

/**
 * Checks that an existing folder is owned by this user and writable by nobody else.
 * @throws ERR_SECURE_HTTPS_INSECURE_STORAGE
 */
export async function checkPrivateDir (dir: string, options: PrivateDirOptions = {}): Promise<void> {
  const uid = currentUid(options)
  const path = resolve(dir)
  const info = await stat(path)
  if (!info.isDirectory()) throw new ERR_INSECURE_STORAGE(`${describe(options, path)} is not a folder; point ${options.variable ?? 'it'} at a folder`)
  if (uid === undefined) return
  if (info.uid !== uid) {
    throw new ERR_INSECURE_STORAGE(`${describe(options, path)} is owned by user ${info.uid}, not by the user this process runs as (${uid}): another user could have put keys and certificates there; ` +
      `use a folder of this user's, or fix the owner: chown -R ${uid} ${path} && chmod 700 ${path}`)
  }
  if ((info.mode & (constants.S_IWGRP | constants.S_IWOTH)) !== 0) {
    throw new ERR_INSECURE_STORAGE(`${describe(options, path)} is writable by other users (mode ${octal(info.mode)}): they could replace the keys and certificates in it; fix it with: chmod 700 ${path}`)
  }
}

/**
 * Checks a file read from a private folder before it is used: owned by this user, not writable by
 * group or others, and for a private key (`secret`) not readable by them either.
 * @throws ERR_SECURE_HTTPS_INSECURE_STORAGE (ENOENT and other I/O errors are passed through)
 */
export async function checkPrivateFile (file: string, secret: boolean, options: PrivateDirOptions = {}): Promise<void> {
  const uid = currentUid(options)
  if (uid === undefined) return
  const path = resolve(file)
  const info = await stat(path)
  if (info.uid !== uid) {
    throw new ERR_INSECURE_STORAGE(`${path} is owned by user ${info.uid}, not by the user this process runs as (${uid}): it may have been planted by another user; ` +
      `delete it to have a new one made, or fix the owner: chown ${uid} ${path}`)
  }
  const forbidden = secret ? 0o077 : (constants.S_IWGRP | constants.S_IWOTH)
  if ((info.mode & forbidden) !== 0) {
    throw new ERR_INSECURE_STORAGE(secret
      ? `${path} is a private key that other users can read or write (mode ${octal(info.mode)}); fix it with: chmod 600 ${path}`
      : `${path} is writable by other users (mode ${octal(info.mode)}); fix it with: chmod 644 ${path}`)
  }
}
