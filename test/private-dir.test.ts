/**
 * TLS_DIR holds private keys: created 0700 with a .gitignore, and refused when another local user
 * owns it or can write it, or owns or can read a key in it (as ssh's StrictModes refuses ~/.ssh).
 * Before, a TLS_DIR prepared by another user, with a key pair in it, was served as is.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { chmodSync, chownSync, copyFileSync, cpSync, existsSync, linkSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import t from 'tap'
import { ERR_INSECURE_STORAGE } from '../index.ts'
import { checkPrivateDir, checkPrivateFile, ensurePrivateDir, PRIVATE_DIR_GITIGNORE } from '../storage/private-dir.ts'
import { AcmeStore } from '../tls/acme-store.ts'
import { generateSelfSigned, loadOrCreateSelfSigned } from '../tls/self-signed.ts'
import { startApp, tempDir } from './helpers/app.ts'
import { request } from './helpers/http.ts'

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
const me = typeof process.getuid === 'function' ? process.getuid() : 0
/** A user id other than ours: `nobody` when we are root (chown needs root), else any other id. */
const NOBODY = 65534

const insecure = (error: unknown): string => {
  if (!(error instanceof ERR_INSECURE_STORAGE)) throw error
  return (error as Error).message
}

t.test('a new folder is made 0700 with a .gitignore that keeps it out of git', async (t) => {
  const root = tempDir(undefined, t)
  const dir = join(root, 'a', '.secure-https')
  await ensurePrivateDir(dir, { variable: 'TLS_DIR' })
  t.equal(statSync(dir).mode & 0o777, 0o700)
  t.equal(readFileSync(join(dir, '.gitignore'), 'utf8'), PRIVATE_DIR_GITIGNORE)
  // git itself agrees: nothing in the folder would be committed.
  writeFileSync(join(dir, 'key.pem'), 'x', { mode: 0o600 })
  const git = spawnSync('git', ['check-ignore', '-q', join(dir, 'key.pem')], { cwd: root })
  if (git.error === undefined) {
    execFileSync('git', ['init', '-q'], { cwd: root })
    t.equal(spawnSync('git', ['check-ignore', '-q', join(dir, 'key.pem')], { cwd: root }).status, 0, 'git ignores the key')
  }
  // An existing folder of ours is used as it is: a .gitignore the user removed is not forced back.
  await ensurePrivateDir(dir, { variable: 'TLS_DIR' })
  t.equal(statSync(dir).mode & 0o777, 0o700)
})

t.test('a folder writable by group or others is refused, with the chmod that fixes it', async (t) => {
  for (const mode of [0o777, 0o770, 0o722, 0o702]) {
    const dir = tempDir(undefined, t)
    chmodSync(dir, mode)
    const message = insecure(await ensurePrivateDir(dir, { variable: 'TLS_DIR' }).then(() => null, (error: unknown) => error))
    t.match(message, /^TLS_DIR \(.+\) is writable by other users \(mode 0\d{3}\)/, `mode ${mode.toString(8)}`)
    t.match(message, `chmod 700 ${dir}`)
    chmodSync(dir, 0o750)
    await t.resolves(checkPrivateDir(dir), 'readable by the group is fine: the keys themselves are 0600')
  }
})

t.test('a folder owned by another user is refused, with the chown that fixes it', async (t) => {
  const dir = tempDir(undefined, t)
  // Checked against another user id: the same as a folder owned by someone else.
  const message = insecure(await checkPrivateDir(dir, { variable: 'TLS_DIR', uid: me + 1 }).then(() => null, (error: unknown) => error))
  t.match(message, new RegExp(`is owned by user ${me}, not by the user this process runs as \\(${me + 1}\\)`))
  t.match(message, /chown -R/)
  if (isRoot) {
    chownSync(dir, NOBODY, NOBODY)
    t.match(insecure(await ensurePrivateDir(dir).then(() => null, (error: unknown) => error)), `owned by user ${NOBODY}`)
  }
})

t.test('key files: 0600 and ours; certificates: ours and not writable by others', async (t) => {
  const dir = tempDir(undefined, t)
  const key = join(dir, 'key.pem')
  const cert = join(dir, 'cert.pem')
  writeFileSync(key, 'k', { mode: 0o600 })
  writeFileSync(cert, 'c', { mode: 0o644 })
  await t.resolves(checkPrivateFile(key, true))
  await t.resolves(checkPrivateFile(cert, false))
  for (const mode of [0o640, 0o604, 0o660, 0o666]) {
    chmodSync(key, mode)
    t.match(insecure(await checkPrivateFile(key, true).then(() => null, (error: unknown) => error)), `chmod 600 ${key}`, `key mode ${mode.toString(8)}`)
  }
  chmodSync(cert, 0o664)
  t.match(insecure(await checkPrivateFile(cert, false).then(() => null, (error: unknown) => error)), /writable by other users/)
  chmodSync(cert, 0o644)
  t.match(insecure(await checkPrivateFile(cert, false, { uid: me + 1 }).then(() => null, (error: unknown) => error)), /may have been planted by another user/)
  await t.rejects(checkPrivateFile(join(dir, 'missing.pem'), true), { code: 'ENOENT' }, 'a missing file is for the caller to handle')
})

t.test('a path that is a file, or a folder this user cannot create, says what to do', async (t) => {
  const root = tempDir(undefined, t)
  writeFileSync(join(root, 'file'), 'x')
  t.match(insecure(await ensurePrivateDir(join(root, 'file'), { variable: 'TLS_DIR' }).then(() => null, (error: unknown) => error)), /is not a folder/)
  if (isRoot) {
    // Root can write anywhere: try as `nobody`, with the built code, in a folder only root can write.
    chmodSync(root, 0o755)
    const locked = join(root, 'locked')
    mkdirSync(locked, { mode: 0o755 })
    if (!existsSync(new URL('../dist/storage/private-dir.js', import.meta.url))) {
      t.fail('dist/ is missing: run npm run build (npm test does)')
      return
    }
    // `nobody` may not be able to read this checkout (a clone in a 0700 mktemp folder, as CI makes):
    // the module and what it imports are copied where it can, and the child gets an empty
    // environment (tap's loader, named in NODE_OPTIONS, lives in the checkout too).
    const pkg = join(root, 'pkg')
    cpSync(new URL('../dist/storage/private-dir.js', import.meta.url), join(pkg, 'dist', 'storage', 'private-dir.js'))
    cpSync(new URL('../dist/errors.js', import.meta.url), join(pkg, 'dist', 'errors.js'))
    cpSync(new URL('../node_modules/@fastify/error', import.meta.url), join(pkg, 'node_modules', '@fastify', 'error'), { recursive: true })
    writeFileSync(join(pkg, 'package.json'), '{ "type": "module" }\n')
    // The node binary too: CI runs other Node versions from a cache under root's 0700 home.
    const node = join(pkg, 'node')
    try {
      linkSync(process.execPath, node)
    } catch {
      copyFileSync(process.execPath, node)
      chmodSync(node, 0o755)
    }
    const script = `import('${pathToFileURL(join(pkg, 'dist', 'storage', 'private-dir.js')).href}').then(({ ensurePrivateDir }) => ensurePrivateDir(${JSON.stringify(join(locked, '.secure-https'))}, { variable: 'TLS_DIR' })).then(() => console.log('created'), (e) => console.log(e.code + ' ' + e.message))`
    // `env -i`: tap's coverage adds its loader to every child's environment, whatever env is given.
    const run = spawnSync('setpriv', ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', 'env', '-i', node, '--input-type=module', '-e', script], { encoding: 'utf8' })
    t.match(run.stdout, /^ERR_SECURE_HTTPS_INSECURE_STORAGE TLS_DIR \(.+\) cannot be created \(EACCES\): this user cannot write to .+locked; set TLS_DIR to a folder this user can write, e\.g\. TLS_DIR=\$HOME\/\.secure-https/, run.stderr)
  }
})

t.test('a TLS_DIR planted by another user is not served (real server start)', { skip: isRoot ? false : 'needs root to give a folder to another user (chown)' }, async (t) => {
  const dir = tempDir(undefined, t)
  const planted = await generateSelfSigned(['localhost'])
  mkdirSync(join(dir, 'self-signed'), { mode: 0o755 })
  writeFileSync(join(dir, 'self-signed', 'key.pem'), planted.key, { mode: 0o644 })
  writeFileSync(join(dir, 'self-signed', 'cert.pem'), planted.cert, { mode: 0o644 })
  chmodSync(dir, 0o755)
  for (const path of [dir, join(dir, 'self-signed'), join(dir, 'self-signed', 'key.pem'), join(dir, 'self-signed', 'cert.pem')]) chownSync(path, NOBODY, NOBODY)

  await t.rejects(startApp({ tls: { dir } }), { code: 'ERR_SECURE_HTTPS_INSECURE_STORAGE', message: /owned by user 65534/ }, 'the folder of another user is refused')

  // The folder is ours again, but the key in it is still someone else's: refused too.
  chownSync(dir, me, me)
  chmodSync(dir, 0o700)
  chownSync(join(dir, 'self-signed'), me, me)
  chmodSync(join(dir, 'self-signed'), 0o700)
  await t.rejects(loadOrCreateSelfSigned(dir, ['localhost']), { code: 'ERR_SECURE_HTTPS_INSECURE_STORAGE', message: /key\.pem is owned by user 65534/ })

  // Fixed as the message says: the folder is used again. (The planted self-signed pair is then
  // replaced by a certificate from the development CA, which did not issue it.)
  chownSync(join(dir, 'self-signed', 'key.pem'), me, me)
  chmodSync(join(dir, 'self-signed', 'key.pem'), 0o600)
  chownSync(join(dir, 'self-signed', 'cert.pem'), me, me)
  const app = await startApp({ tls: { dir } }, (app) => { app.get('/', async () => 'ok') })
  t.teardown(() => app.close())
  const served = await request(`${app.url}/`, { ca: app.cert as string })
  t.equal(served.body, 'ok', 'once owned by this user and 0600, the folder is used')
})

t.test('the ACME store refuses an account key or a certificate key it did not write', async (t) => {
  const dir = tempDir(undefined, t)
  const store = new AcmeStore(dir, 'https://127.0.0.1:14000/dir')
  await store.ensureFolder()
  t.equal(statSync(join(dir, 'acme')).mode & 0o777, 0o700)
  const account = join(store.folder, 'account-key.pem')
  writeFileSync(account, 'planted', { mode: 0o644 })
  t.match(insecure(await store.accountKey(async () => 'new').then(() => null, (error: unknown) => error)), /private key that other users can read or write/)
  chmodSync(account, 0o600)
  t.equal(await store.accountKey(async () => 'new'), 'planted', 'a key of ours with the right mode is used')
  const pair = await generateSelfSigned(['example.test'])
  writeFileSync(join(store.folder, 'key.pem'), pair.key, { mode: 0o666 })
  writeFileSync(join(store.folder, 'cert.pem'), pair.cert, { mode: 0o644 })
  await t.rejects(store.readPair(['example.test']), { code: 'ERR_SECURE_HTTPS_INSECURE_STORAGE' })
  chmodSync(join(store.folder, 'key.pem'), 0o600)
  t.ok(await store.readPair(['example.test']), 'read once the key is 0600')
})
