import t from 'tap'
import { chmodSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { generateSessionKey } from '../index.ts'
import { startApp, tempDir } from './helpers/app.ts'
import { createPki } from './helpers/certs.ts'

interface DoctorLine { level: number, msg?: string, doctor?: Array<{ id: string, severity: string, message: string }> }

const doctorLines = (lines: readonly unknown[]): DoctorLine[] => (lines as DoctorLine[]).filter((line) => Array.isArray(line.doctor))

t.test('in production, secureHttps logs the failed doctor checks once at ready, as a warning', async (t) => {
  const dir = tempDir('secure-https-summary-')
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const pair = await (await createPki()).leaf()
  const certFile = join(dir, 'cert.pem')
  const keyFile = join(dir, 'key.pem')
  writeFileSync(certFile, pair.fullchain)
  writeFileSync(keyFile, pair.key)
  chmodSync(keyFile, 0o644)
  const s = await startApp({
    production: true,
    allowedHosts: ['localhost'],
    tls: { mode: 'files', certFile, keyFile },
    secureSession: { keys: [generateSessionKey()] },
    hsts: { maxAge: 600 }
  })
  t.teardown(() => s.close())
  const lines = doctorLines(s.logs.lines)
  t.equal(lines.length, 1, 'one summary line')
  const line = lines[0] as DoctorLine
  t.equal(line.level, 40, 'at warn')
  t.same(line.doctor?.map((check) => check.id).sort(), ['SH-HSTS-003', 'SH-TLS-008'], 'the key file mode and the short HSTS, nothing else')
  t.match(line.msg, /2 checks failed \(SH-TLS-008, SH-HSTS-003\); run `npx fastify-secure-https doctor`/)
  await s.app.ready()
  t.equal(doctorLines(s.logs.lines).length, 1, 'still once')
})

t.test('in development the summary is a debug line, and a clean production config logs none', async (t) => {
  const dev = await startApp({})
  t.teardown(() => dev.close())
  const lines = doctorLines(dev.logs.lines)
  t.equal(lines.length, 1)
  t.equal(lines[0]?.level, 20, 'at debug: most deploy checks fail in development by design')
  t.ok(lines[0]?.doctor?.some((check) => check.id === 'SH-TLS-002'), 'the self-signed certificate is among them')

  const dir = tempDir('secure-https-summary-')
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const pair = await (await createPki()).leaf()
  const certFile = join(dir, 'cert.pem')
  const keyFile = join(dir, 'key.pem')
  writeFileSync(certFile, pair.fullchain)
  writeFileSync(keyFile, pair.key, { mode: 0o600 })
  const clean = await startApp({ production: true, allowedHosts: ['localhost'], tls: { mode: 'files', certFile, keyFile }, secureSession: { keys: [generateSessionKey()] } })
  t.teardown(() => clean.close())
  t.same(doctorLines(clean.logs.lines), [], 'nothing to report')
})
