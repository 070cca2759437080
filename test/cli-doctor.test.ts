import t from 'tap'
import { execFile } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { doctor, doctorCheckIds, doctorConfig, generateSessionKey, keyFingerprint, resolveConfig } from '../index.ts'
import { main } from '../bin/cli.ts'
import { checkIdOfIssue, keysInText, wideRangesOf, type DoctorReport } from '../audit/doctor.ts'
import { generateSelfSigned } from '../tls/self-signed.ts'
import { tempDir } from './helpers/app.ts'
import { createPki } from './helpers/certs.ts'

const CLI = fileURLToPath(new URL('../dist/bin/cli.js', import.meta.url))
/** Printed in docs/doctor.md as the example of a published key. */
const PUBLISHED_KEY = 'RCcK/iCSa1cX8012Sctny5pg3Sca50SznAP1d4uVEQQ='

interface Run { code: number | null, stdout: string, stderr: string }

/** Runs the built CLI with exactly this environment (plus PATH), as a user would. */
function cli (args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, stdout, stderr })
    })
  })
}

function failedIds (report: DoctorReport): string[] {
  return report.checks.filter((check) => check.status === 'fail').map((check) => check.id).sort()
}

t.before(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`)
})

const dir = tempDir('secure-https-doctor-')
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

// Certificates from a CA, as in production: root, intermediate, leaf (fullchain in TLS_CERT_FILE).
const pki = await createPki()
const good = await pki.leaf({ hosts: ['app.example.com', 'www.example.com'] })
const other = await pki.leaf({ hosts: ['app.example.com'] })
const expiring = await pki.leaf({ hosts: ['app.example.com'], days: 10 })
const selfSigned = await generateSelfSigned(['app.example.com', 'www.example.com'])
const file = (name: string, content: string, mode = 0o600): string => {
  const path = join(dir, name)
  writeFileSync(path, content)
  chmodSync(path, mode)
  return path
}
const certFile = file('cert.pem', good.fullchain, 0o644)
const keyFile = file('key.pem', good.key)
const otherKeyFile = file('other-key.pem', other.key)
const expiringCert = file('expiring-cert.pem', expiring.fullchain, 0o644)
const notADir = file('plain-file', 'not a directory')
mkdirSync(join(dir, 'tls'))
const sessionKey = generateSessionKey()
const stagingEnv = file('staging.env', `NODE_ENV=production\nSESSION_KEYS=${sessionKey}\n`)

/** A production environment that passes every check. */
const goodEnv: Record<string, string> = {
  NODE_ENV: 'production',
  TLS_MODE: 'files',
  TLS_CERT_FILE: certFile,
  TLS_KEY_FILE: keyFile,
  TLS_DIR: join(dir, 'tls'),
  SESSION_KEYS: sessionKey,
  ALLOWED_HOSTS: 'app.example.com,www.example.com',
  TRUST_PROXY: '127.0.0.1'
}

const without = (...names: string[]): Record<string, string> => Object.fromEntries(Object.entries(goodEnv).filter(([name]) => !names.includes(name)))

t.test('a good production environment passes: exit 0, no failed error or warning', async (t) => {
  const [table, json] = await Promise.all([cli(['doctor'], goodEnv), cli(['doctor', '--json'], goodEnv)])
  t.equal(table.code, 0, table.stdout + table.stderr)
  t.match(table.stdout, /0 errors, 0 warnings/)
  t.notMatch(table.stdout, /FAIL/)
  t.match(table.stdout, /pass\s+error\s+SH-TLS-005/, 'the certificate files were read and match')
  t.equal(json.code, 0)
  const report = JSON.parse(json.stdout) as DoctorReport
  t.same(report.checks.map((check) => check.id), doctorCheckIds, 'every check is reported, in order')
  t.equal(report.errors, 0)
  t.equal(report.warnings, 0)
  t.ok(report.production)
  t.same(failedIds(report).filter((id) => id !== 'SH-HSTS-004' && id !== 'SH-METRICS-001'), [], 'nothing fails but the preload and metrics advice')
  t.equal(report.checks.find((check) => check.id === 'SH-TLS-007')?.status, 'pass')
  t.notMatch(json.stdout, sessionKey, 'the session key itself is never printed')
  t.match(json.stdout, keyFingerprint(Buffer.from(sessionKey, 'base64')), 'only its fingerprint')
})

// Each unsafe setting, the check that must name it, and whether it is an error (exit 1).
const cases: Array<{ name: string, env: Record<string, string>, id: string }> = [
  { name: 'TLS_MODE unset', env: without('TLS_MODE', 'TLS_CERT_FILE', 'TLS_KEY_FILE'), id: 'SH-TLS-001' },
  { name: 'TLS_MODE=self-signed', env: { ...without('TLS_CERT_FILE', 'TLS_KEY_FILE'), TLS_MODE: 'self-signed' }, id: 'SH-TLS-002' },
  { name: 'a self-signed certificate in TLS_CERT_FILE', env: { ...goodEnv, TLS_CERT_FILE: file('self-signed.pem', selfSigned.cert, 0o644), TLS_KEY_FILE: file('self-signed-key.pem', selfSigned.key) }, id: 'SH-TLS-002' },
  { name: 'TLS_MODE=off', env: { ...without('TLS_CERT_FILE', 'TLS_KEY_FILE'), TLS_MODE: 'off' }, id: 'SH-TLS-003' },
  { name: 'TLS_MODE=files without TLS_CERT_FILE', env: without('TLS_CERT_FILE'), id: 'SH-TLS-004' },
  { name: 'a key that does not match the certificate', env: { ...goodEnv, TLS_KEY_FILE: otherKeyFile }, id: 'SH-TLS-005' },
  { name: 'a certificate file that does not exist', env: { ...goodEnv, TLS_CERT_FILE: join(dir, 'missing.pem') }, id: 'SH-TLS-005' },
  { name: 'TLS_MODE=acme without its settings', env: { ...without('TLS_CERT_FILE', 'TLS_KEY_FILE'), TLS_MODE: 'acme' }, id: 'SH-ACME-001' },
  { name: 'SESSION_KEYS unset', env: without('SESSION_KEYS'), id: 'SH-SESSION-001' },
  { name: 'a short session key', env: { ...goodEnv, SESSION_KEYS: 'c2hvcnQ=' }, id: 'SH-SESSION-002' },
  { name: 'the session key printed in docs/doctor.md', env: { ...goodEnv, SESSION_KEYS: PUBLISHED_KEY }, id: 'SH-SESSION-003' },
  { name: 'TRUST_PROXY=true', env: { ...goodEnv, TRUST_PROXY: 'true' }, id: 'SH-PROXY-001' },
  { name: 'TRUST_PROXY as a hop count', env: { ...goodEnv, TRUST_PROXY: '2' }, id: 'SH-PROXY-002' },
  { name: 'TLS_MODE=proxy without TRUST_PROXY', env: { ...without('TLS_CERT_FILE', 'TLS_KEY_FILE', 'TRUST_PROXY'), TLS_MODE: 'proxy' }, id: 'SH-PROXY-003' },
  { name: 'HSTS_PRELOAD without includeSubDomains', env: { ...goodEnv, HSTS_PRELOAD: 'true' }, id: 'SH-HSTS-001' },
  { name: 'ALLOWED_HOSTS unset', env: without('ALLOWED_HOSTS'), id: 'SH-REDIRECT-001' },
  { name: 'PORT not a number', env: { ...goodEnv, PORT: 'https' }, id: 'SH-CONFIG-001' }
]

/** Runs tasks at most `limit` at a time: the machine has two cores, and each run is a Node start. */
async function pool<T, R> (items: readonly T[], limit: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length)
  let next = 0
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) {
      const i = next++
      results[i] = await task(items[i] as T)
    }
  }))
  return results
}

t.test('each unsafe setting alone is named by its id and exits 1', async (t) => {
  // Independent subprocesses: run a few at a time, assert in order.
  const runs = await pool(cases, 4, (c) => cli(['doctor'], c.env))
  cases.forEach((c, i) => {
    const run = runs[i] as Run
    t.equal(run.code, 1, `${c.name}: exit 1`)
    t.match(run.stdout, new RegExp(`FAIL\\s+error\\s+${c.id}\\b`), `${c.name}: the table names ${c.id}`)
    t.match(run.stdout, /fix: /, `${c.name}: with the fix`)
    t.equal(run.stderr, '', `${c.name}: nothing on stderr`)
  })
})

t.test('risky settings are warnings, each named by its id, and exit 0', async (t) => {
  const filesEnv = {
    ...goodEnv,
    NODE_ENV: 'development', // SH-ENV-001
    ALLOWED_HOSTS: 'app.example.com,shop.example.com', // SH-TLS-006
    TLS_CERT_FILE: expiringCert, // SH-TLS-007 (10 days left)
    TLS_KEY_FILE: file('expiring-key-open.pem', expiring.key, 0o644), // SH-TLS-008
    TRUST_PROXY: '127.0.0.1,10.0.0.0/8', // SH-PROXY-004
    HSTS_MAX_AGE: '600', // SH-HSTS-003
    HTTP_PORT: 'off' // SH-REDIRECT-002
  }
  const acmeEnv = {
    ...without('TLS_CERT_FILE', 'TLS_KEY_FILE'),
    TLS_MODE: 'acme',
    ACME_DOMAINS: 'app.example.com,www.example.com',
    ACME_EMAIL: 'ops@example.com',
    ACME_AGREE_TOS: 'true',
    TLS_DIR: join(notADir, 'tls'), // SH-TLS-009: cannot be created inside a file
    TRUST_PROXY: 'uniquelocal', // SH-PROXY-004
    HSTS_MAX_AGE: '0' // SH-HSTS-002
  }
  const [files, acme] = await Promise.all([cli(['doctor', '--compare-env', stagingEnv], filesEnv), cli(['doctor'], acmeEnv)])
  const failed = (run: Run): string[] => [...run.stdout.matchAll(/FAIL\s+(error|warning)\s+(SH-[A-Z]+-\d{3})/g)].map((match) => `${match[1] ?? ''} ${match[2] ?? ''}`).sort()
  t.equal(files.code, 0, files.stdout)
  t.same(failed(files), ['SH-ENV-001', 'SH-PROXY-004', 'SH-REDIRECT-002', 'SH-SESSION-004', 'SH-TLS-006', 'SH-TLS-007', 'SH-TLS-008', 'SH-HSTS-003'].map((id) => `warning ${id}`).sort(),
    'each risky setting of the files environment, and nothing else')
  t.match(files.stdout, /shop\.example\.com is not in the certificate/)
  t.match(files.stdout, /expires in (9|10) days/)
  t.match(files.stdout, /mode 0644: every user on the machine can read the private key/)
  t.match(files.stdout, /is also used by staging\.env/)
  t.match(files.stdout, /10\.0\.0\.0\/8 trusts the whole of 10\.0\.0\.0\/8/)
  t.equal(acme.code, 0, acme.stdout)
  t.same(failed(acme), ['SH-HSTS-002', 'SH-PROXY-004', 'SH-TLS-009'].map((id) => `warning ${id}`), 'each risky setting of the acme environment')
  t.match(acme.stdout, /uniquelocal trusts the whole of 10\.0\.0\.0\/8, 172\.16\.0\.0\/12, 192\.168\.0\.0\/16, fc00::\/7/)
})

t.test('several certificate pairs (TLS_CERT_FILE and TLS_KEY_FILE as lists, chosen by SNI): each pair checked, each key file\'s mode', async (t) => {
  const shop = await pki.leaf({ hosts: ['shop.example.com'] })
  const shopCert = file('shop-cert.pem', shop.fullchain, 0o644)
  const shopKey = file('shop-key.pem', shop.key)
  const pairs = { ...goodEnv, TLS_CERT_FILE: `${certFile},${shopCert}`, TLS_KEY_FILE: `${keyFile},${shopKey}`, ALLOWED_HOSTS: 'app.example.com,www.example.com,shop.example.com' }
  const baseline = failedIds(await doctor(goodEnv))
  const report = await doctor(pairs)
  t.same(failedIds(report), baseline, 'a valid list of pairs passes the certificate checks (the rest as for one pair)')
  t.match(report.checks.find((check) => check.id === 'SH-TLS-006')?.message, /the certificates cover app\.example\.com, www\.example\.com, shop\.example\.com/)
  chmodSync(shopKey, 0o644)
  const open = await doctor(pairs)
  t.same(failedIds(open), [...baseline, 'SH-TLS-008'].sort(), 'one key file readable by everyone fails SH-TLS-008')
  t.match(open.checks.find((check) => check.id === 'SH-TLS-008')?.message, new RegExp(`TLS_KEY_FILE ${shopKey.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} has mode 0644`), 'naming that file')
  const mismatched = await doctor({ ...pairs, TLS_KEY_FILE: `${shopKey},${keyFile}` })
  t.match(mismatched.checks.find((check) => check.id === 'SH-TLS-005')?.message, /private key .* does not match/, 'keys swapped between pairs are caught')
  const short = await doctor({ ...pairs, TLS_KEY_FILE: keyFile })
  const messages = short.checks.filter((check) => check.status === 'fail').map((check) => check.message)
  t.equal(messages.filter((message) => /lists 1 key file for 2 certificate files/.test(message)).length, 1, 'a key missing from the list: the configuration\'s message, once')
  t.notOk(messages.some((message) => /cannot be read|does not exist/.test(message)), 'and no file read for the missing key')
})

t.test('SH-TLS-009 applies the app\'s own check of TLS_DIR: owned by this user, writable by no one else', async (t) => {
  const shared = join(dir, 'shared-tls')
  mkdirSync(shared)
  chmodSync(shared, 0o777)
  const report = await doctorConfig(resolveConfig({ tls: { dir: shared } }))
  const check = report.checks.find((c) => c.id === 'SH-TLS-009')
  t.equal(check?.status, 'fail', 'a TLS_DIR of mode 0777 fails, as the app refuses it at start')
  t.match(check?.message, /writable by other users \(mode 0?777\).*chmod 700/)
})

t.test('--json gives the same verdict as data', async (t) => {
  const run = await cli(['doctor', '--json'], { ...goodEnv, TRUST_PROXY: 'true', HSTS_MAX_AGE: '600' })
  t.equal(run.code, 1)
  const report = JSON.parse(run.stdout) as DoctorReport
  t.same(failedIds(report), ['SH-PROXY-001'], 'the config does not resolve, so the HSTS checks are skipped')
  t.equal(report.checks.find((check) => check.id === 'SH-HSTS-003')?.status, 'skip')
  t.equal(report.errors, 1)
  t.notOk(report.ok)
})

/** Runs the command line in this process, capturing what it writes. */
async function inProcess (args: string[]): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const code = await main(args, { out: (text) => { stdout += text }, err: (text) => { stderr += text } })
  return { code, stdout, stderr }
}

t.test('usage errors exit 2 with one message and no stack trace', async (t) => {
  const run = await cli(['doctor', '--no-such-option'])
  t.equal(run.code, 2, 'as a subprocess')
  t.match(run.stderr, /Unknown option '--no-such-option'[\s\S]*Run "fastify-secure-https doctor --help"/)
  t.equal(run.stdout, '')
  for (const [args, message] of [
    [['doctor', '--env', join(dir, 'missing.env')], /--env .*missing\.env: no such file/],
    [['doctor', '--compare-env', join(dir, 'missing.env')], /--compare-env .*missing\.env: no such file/],
    [['doctor', 'extra'], /Unexpected argument 'extra'/],
    [['keygen', '--count', '2'], /Unknown option '--count'/],
    [['frobnicate'], /unknown command "frobnicate"; the commands are doctor, check, keygen and trust/],
    [[], /Usage: fastify-secure-https <command>/]
  ] as const) {
    const result = await inProcess([...args])
    t.equal(result.code, 2, args.join(' '))
    t.match(result.stderr, message)
    t.notMatch(result.stderr, /\n\s+at /, 'no stack trace')
  }
})

t.test('--help for the tool and each command', async (t) => {
  const run = await cli(['doctor', '--help'])
  t.equal(run.code, 0)
  t.match(run.stdout, /Usage: fastify-secure-https doctor[\s\S]*--json[\s\S]*--env FILE[\s\S]*--compare-env[\s\S]*--strict/)
  const help = await inProcess(['--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /Commands:[\s\S]*doctor[\s\S]*check <url>[\s\S]*keygen/)
  const check = await inProcess(['check', '-h'])
  t.match(check.stdout, /Usage: fastify-secure-https check[\s\S]*--ca FILE[\s\S]*--http-port N[\s\S]*--timeout MS[\s\S]*--connect-to IP/)
  const keygen = await inProcess(['keygen', '--help'])
  t.match(keygen.stdout, /SESSION_KEYS=new,old/)
  const version = await inProcess(['--version'])
  t.match(version.stdout, /^\d+\.\d+\.\d+\n$/)
})

t.test('--env audits a file alone; --strict makes a warning fail the run', async (t) => {
  const envFile = (name: string, env: Record<string, string>): string => file(name, Object.entries(env).map(([key, value]) => `${key}=${value}`).join('\n'))
  const fromFile = await inProcess(['doctor', '--env', envFile('production.env', goodEnv)])
  t.equal(fromFile.code, 0, fromFile.stdout)
  t.match(fromFile.stdout, /doctor: .*production\.env, NODE_ENV=production/)

  const short = envFile('short-hsts.env', { ...goodEnv, HSTS_MAX_AGE: '600' })
  const lenient = await inProcess(['doctor', '--env', short])
  t.equal(lenient.code, 0, 'a warning alone exits 0')
  t.match(lenient.stdout, /0 errors, 1 warning/)
  const strict = await inProcess(['doctor', '--strict', '--env', short])
  t.equal(strict.code, 1, '--strict: a warning exits 1')
})

t.test('keygen prints a fresh 32-byte base64 key that doctor accepts', async (t) => {
  const run = await cli(['keygen'])
  t.equal(run.code, 0)
  const key = run.stdout.trim()
  t.equal(Buffer.from(key, 'base64').length, 32)
  t.equal(Buffer.from(key, 'base64').toString('base64'), key)
  t.not(key, (await inProcess(['keygen'])).stdout.trim(), 'a new key each time')
  const report = await doctor({ ...goodEnv, SESSION_KEYS: key })
  t.equal(report.checks.find((check) => check.id === 'SH-SESSION-002')?.status, 'pass')
})

t.test('library: doctor() reads an env object, doctorConfig() a resolved config', async (t) => {
  const report = await doctor(goodEnv, { compareEnvs: [{ name: 'staging', env: { SESSION_KEYS: generateSessionKey() } }] })
  t.ok(report.ok)
  t.match(report.checks.find((check) => check.id === 'SH-SESSION-004')?.message, /none is used by staging/)
  const published = await doctor({ ...goodEnv, SESSION_KEYS: `${generateSessionKey()},${sessionKey}` }, { publishedKeys: [sessionKey] })
  t.match(published.checks.find((check) => check.id === 'SH-SESSION-003')?.message, /key 2 .* is printed in a key given as published/)

  // A development config: the production rules fail on it, without throwing.
  const dev = await doctorConfig(resolveConfig({ tls: { dir: join(dir, 'dev-tls') }, proxyTrust: { trust: true } }))
  t.notOk(dev.production)
  const failed = failedIds(dev)
  for (const id of ['SH-ENV-001', 'SH-TLS-002', 'SH-SESSION-001', 'SH-PROXY-001', 'SH-ERRORS-001']) t.ok(failed.includes(id), `development fails ${id}`)
  t.equal(dev.checks.find((check) => check.id === 'SH-TLS-009')?.status, 'pass', 'a TLS_DIR that does not exist yet but can be created')

  const off = await doctorConfig(resolveConfig({ tls: false, hsts: false, secureSession: false }))
  t.ok(failedIds(off).includes('SH-TLS-003'))
  t.ok(failedIds(off).includes('SH-HSTS-002'))
  t.equal(off.checks.find((check) => check.id === 'SH-SESSION-001')?.status, 'skip')
  t.equal(off.checks.find((check) => check.id === 'SH-REDIRECT-002')?.status, 'skip', 'no redirect to ask for without HTTPS')
})

t.test('helpers: issue classification, private ranges, keys in text', async (t) => {
  t.equal(checkIdOfIssue({ path: 'tls.profile', variable: 'TLS_PROFILE', message: 'must be one of intermediate, modern' }), 'SH-CONFIG-001', 'an unknown problem falls back to SH-CONFIG-001')
  t.equal(checkIdOfIssue({ path: 'proxyTrust.trust', message: 'trusting every peer is refused in production' }), 'SH-PROXY-001', 'the variable is found from the path')
  t.same(wideRangesOf('10.0.0.0/8'), ['10.0.0.0/8'])
  t.same(wideRangesOf('0.0.0.0/0').length, 5, 'everything contains every IPv4 range')
  t.same(wideRangesOf('10.0.3.0/24'), [], 'a proxy subnet is fine')
  t.same(wideRangesOf('127.0.0.1'), [], 'a single address is fine')
  t.same(wideRangesOf('loopback'), [], 'loopback is this machine')
  t.same(wideRangesOf('linklocal'), ['169.254.0.0/16', 'fe80::/10'])
  t.same(wideRangesOf('fd00::/7'), ['fc00::/7'])
  t.equal(keysInText(`SESSION_KEYS=${PUBLISHED_KEY} and ${'A'.repeat(60)}=`).length, 1, 'only whole 32-byte base64 tokens')
})
