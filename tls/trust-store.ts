/**
 * Installs the development CA where browsers and tools look, removes it, and tells whether it is
 * there, as `mkcert -install` and `caddy trust` do:
 *
 * - `nss`: the NSS databases of the user, read by Chromium and Chrome on Linux
 *   (`$HOME/.pki/nssdb`, made if missing) and by Firefox everywhere (each profile's cert9.db),
 *   through `certutil` (Debian: libnss3-tools);
 * - `system`: the operating system's store: Debian and Ubuntu (update-ca-certificates), Fedora
 *   and Arch (update-ca-trust), openSUSE, the macOS login keychain (`security`), the Windows user
 *   Root store (`certutil -user`). On Linux it needs root: sudo is asked for when there is a
 *   terminal, otherwise the command to run is reported.
 *
 * Nothing is done silently: every store tried is reported with what happened and, when it could
 * not be done, how to do it. Knows nothing of Fastify.
 */
import { execFile, spawn } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { constants } from 'node:fs'
import { access, mkdir, readdir, stat } from 'node:fs/promises'
import { homedir } from 'node:os'
import { delimiter, join } from 'node:path'
import { DEV_CA_NAME } from './dev-ca.ts'
import { trustStoreKinds, type TrustStoreKind } from './trust-kinds.ts'

/** What happened to one store. */
export interface TrustResult {
  kind: TrustStoreKind
  /** For people: `Chromium and Chrome (NSS)`, `Firefox profile abc.default`, `system store (Debian)`. */
  store: string
  /** The database, folder or keychain. */
  location: string
  /**
   * `installed` / `removed`: done now; `present` / `absent`: already so (or, for a status, the
   * answer); `skipped`: not there to act on; `failed`: could not, see `detail`.
   */
  status: 'installed' | 'removed' | 'present' | 'absent' | 'skipped' | 'failed'
  /** Why, and for `failed` how to do it by hand. */
  detail?: string
}

/** The outcome of one command. */
export interface CommandResult {
  code: number
  stdout: string
  stderr: string
}

/** Runs a program; `interactive` lets it talk to the terminal (sudo's password prompt). */
export type CommandRunner = (file: string, args: readonly string[], options?: { interactive?: boolean }) => Promise<CommandResult>

/** Options of every trust-store call. */
export interface TrustStoreOptions {
  /** The CA certificate (PEM) and its file. */
  cert: string
  certPath: string
  /** Stores to act on (default both). */
  stores?: readonly TrustStoreKind[]
  /** Home folder whose stores are used (default the user's). */
  home?: string
  /** Default `process.platform`. */
  platform?: NodeJS.Platform
  /** Runs the programs (tests record or fake them). */
  run?: CommandRunner
  /** Finds a program on PATH; default searches PATH. */
  which?: (program: string) => Promise<string | null>
  /** Whether sudo may prompt for a password (default: stdin is a terminal). */
  interactive?: boolean
  /** User id (default `process.getuid()`); 0 needs no sudo. */
  uid?: number
}

const defaultRun: CommandRunner = async (file, args, options = {}) => {
  if (options.interactive === true) {
    return await new Promise((resolve) => {
      const child = spawn(file, args, { stdio: ['inherit', 'pipe', 'inherit'] })
      let stdout = ''
      child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
      child.once('error', (error) => resolve({ code: 127, stdout, stderr: error.message }))
      child.once('close', (code) => resolve({ code: code ?? 1, stdout, stderr: '' }))
    })
  }
  return await new Promise((resolve) => {
    execFile(file, args, { timeout: 60_000, maxBuffer: 4 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : 127
      resolve({ code, stdout: String(stdout), stderr: String(stderr) || (error?.message ?? '') })
    })
  })
}

async function defaultWhich (program: string): Promise<string | null> {
  const extensions = process.platform === 'win32' ? ['.exe', '.cmd', ''] : ['']
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue
    for (const extension of extensions) {
      const candidate = join(dir, program + extension)
      try {
        await access(candidate, constants.X_OK)
        return candidate
      } catch {
        // Not here.
      }
    }
  }
  return null
}

async function exists (path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch {
    return false
  }
}

/** The nickname (NSS) and file name (system stores) of a CA: its name and fingerprint prefix. */
export function trustNickname (cert: string): string {
  return `${DEV_CA_NAME} ${fingerprintPrefix(cert)}`
}

function fingerprintPrefix (cert: string): string {
  return new X509Certificate(cert).fingerprint256.replace(/:/g, '').slice(0, 16)
}

const NSS_PACKAGES = 'certutil is not installed: apt-get install libnss3-tools (Debian, Ubuntu), dnf install nss-tools (Fedora), pacman -S nss (Arch), zypper install mozilla-nss-tools (openSUSE), brew install nss (macOS)'

interface Context {
  cert: string
  certPath: string
  home: string
  platform: NodeJS.Platform
  run: CommandRunner
  which: (program: string) => Promise<string | null>
  interactive: boolean
  uid: number | undefined
  nickname: string
}

function context (options: TrustStoreOptions): Context {
  return {
    cert: options.cert,
    certPath: options.certPath,
    home: options.home ?? homedir(),
    platform: options.platform ?? process.platform,
    run: options.run ?? defaultRun,
    which: options.which ?? defaultWhich,
    interactive: options.interactive ?? process.stdin.isTTY === true,
    uid: options.uid ?? (typeof process.getuid === 'function' ? process.getuid() : undefined),
    nickname: trustNickname(options.cert)
  }
}

// --- NSS -----------------------------------------------------------------------------------------

interface NssDatabase { store: string, dir: string, create: boolean }

async function firefoxProfiles (parent: string): Promise<string[]> {
  let names: string[]
  try {
    names = await readdir(parent)
  } catch {
    return []
  }
  const found: string[] = []
  for (const name of names.sort()) {
    if (await exists(join(parent, name, 'cert9.db'))) found.push(join(parent, name))
  }
  return found
}

/** The NSS databases of a home folder: Chromium's (made if missing, on Linux) and each Firefox profile's. */
async function nssDatabases (ctx: Context): Promise<NssDatabase[]> {
  const list: NssDatabase[] = []
  if (ctx.platform === 'linux') {
    list.push({ store: 'Chromium and Chrome (NSS)', dir: join(ctx.home, '.pki', 'nssdb'), create: true })
    const snap = join(ctx.home, 'snap', 'chromium', 'current', '.pki', 'nssdb')
    if (await exists(snap)) list.push({ store: 'Chromium snap (NSS)', dir: snap, create: false })
  }
  const parents = ctx.platform === 'darwin'
    ? [join(ctx.home, 'Library', 'Application Support', 'Firefox', 'Profiles')]
    : ctx.platform === 'win32'
      ? []
      : [
          join(ctx.home, '.mozilla', 'firefox'),
          join(ctx.home, 'snap', 'firefox', 'common', '.mozilla', 'firefox'),
          join(ctx.home, '.var', 'app', 'org.mozilla.firefox', '.mozilla', 'firefox')
        ]
  for (const parent of parents) {
    for (const profile of await firefoxProfiles(parent)) {
      list.push({ store: `Firefox profile ${profile.slice(parent.length + 1)} (NSS)`, dir: profile, create: false })
    }
  }
  return list
}

async function nssHas (ctx: Context, certutil: string, dir: string): Promise<boolean> {
  return (await ctx.run(certutil, ['-d', `sql:${dir}`, '-L', '-n', ctx.nickname])).code === 0
}

async function nss (ctx: Context, action: 'install' | 'uninstall' | 'status'): Promise<TrustResult[]> {
  const databases = await nssDatabases(ctx)
  if (ctx.platform === 'win32') {
    return [{ kind: 'nss', store: 'Firefox (NSS)', location: '', status: 'skipped', detail: 'on Windows, Firefox reads the Windows store (security.enterprise_roots.enabled), which the system step fills' }]
  }
  const certutil = await ctx.which('certutil')
  const results: TrustResult[] = []
  for (const db of databases) {
    const present = db.create ? await exists(db.dir) : true
    const base = { kind: 'nss' as const, store: db.store, location: db.dir }
    if (certutil === null) {
      if (present || action === 'install') results.push({ ...base, status: action === 'status' ? 'absent' : 'failed', detail: NSS_PACKAGES })
      continue
    }
    if (!present) {
      if (action !== 'install') {
        results.push({ ...base, status: action === 'status' ? 'absent' : 'skipped', detail: 'no NSS database (Chromium has not run as this user)' })
        continue
      }
      // Chromium makes this database at its first start; made now, it finds the CA already there.
      await mkdir(db.dir, { recursive: true, mode: 0o700 })
      const made = await ctx.run(certutil, ['-d', `sql:${db.dir}`, '-N', '--empty-password'])
      if (made.code !== 0) {
        results.push({ ...base, status: 'failed', detail: `certutil -N failed: ${firstLine(made)}` })
        continue
      }
    }
    const has = await nssHas(ctx, certutil, db.dir)
    if (action === 'status') {
      results.push({ ...base, status: has ? 'present' : 'absent' })
    } else if (action === 'install') {
      if (has) {
        results.push({ ...base, status: 'present' })
        continue
      }
      // C,,: a CA trusted to issue TLS server certificates, and nothing else (no e-mail, no code).
      const added = await ctx.run(certutil, ['-d', `sql:${db.dir}`, '-A', '-t', 'C,,', '-n', ctx.nickname, '-i', ctx.certPath])
      results.push(added.code === 0
        ? { ...base, status: 'installed' }
        : { ...base, status: 'failed', detail: `certutil -A failed: ${firstLine(added)}; by hand: certutil -d sql:${db.dir} -A -t C,, -n "${ctx.nickname}" -i ${ctx.certPath}` })
    } else {
      if (!has) {
        results.push({ ...base, status: 'absent' })
        continue
      }
      // A nickname can be there more than once (imported twice by hand): remove until it is gone.
      let removed = false
      for (let i = 0; i < 10 && await nssHas(ctx, certutil, db.dir); i++) {
        const deleted = await ctx.run(certutil, ['-d', `sql:${db.dir}`, '-D', '-n', ctx.nickname])
        if (deleted.code !== 0) break
        removed = true
      }
      results.push(removed && !await nssHas(ctx, certutil, db.dir)
        ? { ...base, status: 'removed' }
        : { ...base, status: 'failed', detail: `could not delete it; by hand: certutil -d sql:${db.dir} -D -n "${ctx.nickname}"` })
    }
  }
  return results
}

function firstLine (result: CommandResult): string {
  return (result.stderr || result.stdout).trim().split('\n')[0] ?? `exit code ${result.code}`
}

// --- System stores ---------------------------------------------------------------------------------

interface LinuxStore { name: string, dir: string, extension: string, update: string[] }

const linuxStores: readonly LinuxStore[] = [
  { name: 'Debian, Ubuntu', dir: '/usr/local/share/ca-certificates', extension: '.crt', update: ['update-ca-certificates'] },
  { name: 'Fedora, RHEL', dir: '/etc/pki/ca-trust/source/anchors', extension: '.pem', update: ['update-ca-trust', 'extract'] },
  { name: 'Arch', dir: '/etc/ca-certificates/trust-source/anchors', extension: '.crt', update: ['update-ca-trust', 'extract'] },
  { name: 'openSUSE', dir: '/usr/share/pki/trust/anchors', extension: '.pem', update: ['update-ca-certificates'] }
]

async function linuxSystem (ctx: Context, action: 'install' | 'uninstall' | 'status'): Promise<TrustResult> {
  let found: LinuxStore | undefined
  for (const candidate of linuxStores) {
    if (await exists(candidate.dir) && await ctx.which(candidate.update[0] as string) !== null) {
      found = candidate
      break
    }
  }
  if (found === undefined) {
    return { kind: 'system', store: 'system store', location: '', status: action === 'status' ? 'absent' : 'skipped', detail: 'no known system store (update-ca-certificates or update-ca-trust) on this system' }
  }
  const file = join(found.dir, `${ctx.nickname.replace(/ /g, '-')}${found.extension}`)
  const base = { kind: 'system' as const, store: `system store (${found.name})`, location: file }
  const there = await exists(file)
  if (action === 'status') return { ...base, status: there ? 'present' : 'absent' }
  if (action === 'install' && there) return { ...base, status: 'present' }
  if (action === 'uninstall' && !there) return { ...base, status: 'absent' }
  const steps: string[][] = action === 'install'
    ? [['install', '-m', '644', ctx.certPath, file], found.update]
    : [['rm', '-f', file], found.update]
  const byHand = steps.map((step) => `sudo ${step.join(' ')}`).join(' && ')
  let prefix: string[] = []
  if (ctx.uid !== 0) {
    const sudo = await ctx.which('sudo')
    if (sudo === null || !ctx.interactive) {
      return { ...base, status: 'failed', detail: `needs root${sudo === null ? '' : ' (no terminal for sudo\'s password)'}; run: ${byHand}` }
    }
    prefix = ['sudo', '--']
  }
  for (const step of steps) {
    const [file0, ...args] = [...prefix, ...step] as [string, ...string[]]
    const result = await ctx.run(file0, args, { interactive: prefix.length > 0 })
    if (result.code !== 0) return { ...base, status: 'failed', detail: `${step.join(' ')} failed: ${firstLine(result)}; run: ${byHand}` }
  }
  return { ...base, status: action === 'install' ? 'installed' : 'removed' }
}

function sha1 (cert: string): string {
  return new X509Certificate(cert).fingerprint.replace(/:/g, '')
}

async function macSystem (ctx: Context, action: 'install' | 'uninstall' | 'status'): Promise<TrustResult> {
  const keychain = join(ctx.home, 'Library', 'Keychains', 'login.keychain-db')
  const base = { kind: 'system' as const, store: 'macOS login keychain', location: keychain }
  const listed = await ctx.run('security', ['find-certificate', '-a', '-Z', '-c', DEV_CA_NAME, keychain])
  const there = listed.code === 0 && listed.stdout.toUpperCase().includes(sha1(ctx.cert))
  if (action === 'status') return { ...base, status: there ? 'present' : 'absent' }
  if (action === 'install') {
    if (there) return { ...base, status: 'present' }
    // Trusted as a root for this user (macOS asks for the login password in a dialog).
    const added = await ctx.run('security', ['add-trusted-cert', '-r', 'trustRoot', '-k', keychain, ctx.certPath], { interactive: true })
    return added.code === 0
      ? { ...base, status: 'installed' }
      : { ...base, status: 'failed', detail: `security add-trusted-cert failed: ${firstLine(added)}; by hand: security add-trusted-cert -r trustRoot -k ${keychain} ${ctx.certPath}` }
  }
  if (!there) return { ...base, status: 'absent' }
  await ctx.run('security', ['remove-trusted-cert', ctx.certPath], { interactive: true })
  const deleted = await ctx.run('security', ['delete-certificate', '-Z', sha1(ctx.cert), keychain])
  return deleted.code === 0
    ? { ...base, status: 'removed' }
    : { ...base, status: 'failed', detail: `security delete-certificate failed: ${firstLine(deleted)}; remove "${DEV_CA_NAME}" in Keychain Access` }
}

async function windowsSystem (ctx: Context, action: 'install' | 'uninstall' | 'status'): Promise<TrustResult> {
  const base = { kind: 'system' as const, store: 'Windows user Root store', location: 'Cert:\\CurrentUser\\Root' }
  const serial = new X509Certificate(ctx.cert).serialNumber
  const there = (await ctx.run('certutil', ['-user', '-verifystore', 'Root', serial])).code === 0
  if (action === 'status') return { ...base, status: there ? 'present' : 'absent' }
  if (action === 'install') {
    if (there) return { ...base, status: 'present' }
    // Windows shows a confirmation dialog for a new root in the user store.
    const added = await ctx.run('certutil', ['-user', '-addstore', '-f', 'Root', ctx.certPath], { interactive: true })
    return added.code === 0
      ? { ...base, status: 'installed' }
      : { ...base, status: 'failed', detail: `certutil -addstore failed: ${firstLine(added)}; by hand: certutil -user -addstore Root ${ctx.certPath}` }
  }
  if (!there) return { ...base, status: 'absent' }
  const deleted = await ctx.run('certutil', ['-user', '-delstore', 'Root', serial], { interactive: true })
  return deleted.code === 0
    ? { ...base, status: 'removed' }
    : { ...base, status: 'failed', detail: `certutil -delstore failed: ${firstLine(deleted)}; by hand: certutil -user -delstore Root ${serial}` }
}

async function system (ctx: Context, action: 'install' | 'uninstall' | 'status'): Promise<TrustResult> {
  if (ctx.platform === 'darwin') return await macSystem(ctx, action)
  if (ctx.platform === 'win32') return await windowsSystem(ctx, action)
  return await linuxSystem(ctx, action)
}

async function each (options: TrustStoreOptions, action: 'install' | 'uninstall' | 'status'): Promise<TrustResult[]> {
  const ctx = context(options)
  const stores = options.stores ?? trustStoreKinds
  const results: TrustResult[] = []
  if (stores.includes('nss')) results.push(...await nss(ctx, action))
  if (stores.includes('system')) results.push(await system(ctx, action))
  return results
}

/** Installs the CA in the stores; one result per store tried. */
export async function installTrust (options: TrustStoreOptions): Promise<TrustResult[]> {
  return await each(options, 'install')
}

/** Removes the CA from the stores; one result per store tried. */
export async function uninstallTrust (options: TrustStoreOptions): Promise<TrustResult[]> {
  return await each(options, 'uninstall')
}

/**
 * Tells, per store, whether the CA is there (`present` or `absent`), without changing anything.
 * Costs one `certutil -L` per NSS database and a file check for the Linux system store.
 */
export async function trustStatus (options: TrustStoreOptions): Promise<TrustResult[]> {
  return await each(options, 'status')
}
