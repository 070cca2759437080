/**
 * ACME renewal against a real pebble issuing short-lived certificates: a renewal replaces the
 * certificate without a restart; with pebble stopped in the middle of a renewal, it fails, is logged with
 * `acme.order-failed`, the current certificate keeps serving, and a later attempt succeeds once
 * pebble is back.
 */
import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { rmSync } from 'node:fs'
import { startApp, tempDir, type StartedApp } from './helpers/app.ts'
import { requirePrograms } from './helpers/external.ts'
import type { LogLine } from './helpers/logs.ts'
import { acmeOptions, presented, reloaded, startPebble } from './helpers/pebble.ts'

/** Pebble's certificates live this long; renewal is due after two thirds of it. */
const LIFETIME = 6

function ordering (s: StartedApp): number {
  return s.logs.lines.filter((line) => String(line.msg).startsWith('ACME: ordering')).length
}

function reloads (s: StartedApp): LogLine[] {
  return s.logs.lines.filter(reloaded)
}

async function nthReload (s: StartedApp, n: number, timeout = 30_000): Promise<LogLine> {
  await s.logs.waitFor((line) => reloaded(line) && reloads(s).length >= n, timeout)
  return reloads(s)[n - 1] as LogLine
}

async function issuedBy (port: number, intermediatePem: string): Promise<X509Certificate> {
  const [leaf] = await presented(port, 'renew.test')
  const intermediate = new X509Certificate(intermediatePem)
  if (leaf === undefined || !leaf.checkIssued(intermediate) || !leaf.verify(intermediate.publicKey)) {
    throw new Error(`the served certificate (${leaf?.issuer ?? 'none'}) was not issued by ${intermediate.subject}`)
  }
  return leaf
}

t.test('renewal against pebble issuing short-lived certificates', async (t) => {
  if (requirePrograms(t, ['pebble', 'pebble-challtestsrv']) === null) return
  const pebble = await startPebble({ validitySeconds: LIFETIME })
  t.teardown(() => pebble.close())
  const dir = tempDir()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const s = await startApp(acmeOptions(pebble, dir, ['renew.test'], pebble.httpPort))
  t.teardown(() => s.close())
  const first = await issuedBy(s.port, (await nthReload(s, 1), (await pebble.issuers()).intermediate))
  t.comment(`first certificate valid ${first.validFrom} to ${first.validTo}`)

  const second = await nthReload(s, 2, LIFETIME * 1000 + 10_000)
  t.equal(second.reason, 'ACME certificate renewed', 'a renewal is applied on the running server')
  const renewed = await issuedBy(s.port, (await pebble.issuers()).intermediate)
  t.not(renewed.fingerprint256, first.fingerprint256, 'a new certificate is served, without a restart')
  t.equal(s.app.tls.status().fingerprint, renewed.fingerprint256)
  const renewedAfter = new Date(renewed.validFrom).getTime() - new Date(first.validFrom).getTime()
  t.comment(`renewed ${renewedAfter} ms after the first was issued (lifetime ${LIFETIME} s)`)

  // The next renewal starts; pebble goes down in the middle of it.
  await s.logs.waitFor((line) => String(line.msg).startsWith('ACME: ordering') && ordering(s) === 3, LIFETIME * 1000 + 10_000)
  await pebble.stop()
  const failure = await s.logs.waitFor((line) => line.securityEvent === 'acme.order-failed', 10_000)
  t.equal(failure.level, 40, 'the failed renewal is logged at warn')
  t.match(failure.code, /^ECONN/, `with the network error: pebble went down (${String(failure.code)}: ${String(failure.error)})`)
  t.equal(failure.problem, null, 'no problem document: the CA did not answer')
  t.equal(failure.attempt, 1)
  t.ok(typeof failure.retryAt === 'string' && Date.parse(failure.retryAt) > Date.now() - 5000, 'and when it will retry')
  const [during] = await presented(s.port, 'renew.test')
  t.equal(during?.fingerprint256, renewed.fingerprint256, 'the current certificate keeps serving meanwhile')
  const retried = await s.logs.waitFor((line) => line.securityEvent === 'acme.order-failed' && line.attempt === 2, 10_000)
  t.equal(retried.code, 'ECONNREFUSED', 'the retry finds pebble down')
  const failures = s.logs.events('acme.order-failed')
  const gap = (line: LogLine | undefined): number => Date.parse(String(line?.retryAt)) - Number(line?.time)
  t.ok(gap(failures[1]) > gap(failures[0]), `the delay grows: ${gap(failures[0])} ms, then ${gap(failures[1])} ms`)
  t.equal(s.app.tls.status().fingerprint, renewed.fingerprint256, 'still the same certificate after two failures')

  await pebble.start()
  // The retry delay doubles after each failure: a slow restart of pebble can put the next attempt
  // well after it is back.
  const third = await nthReload(s, 3, 60_000)
  t.equal(third.reason, 'ACME certificate renewed', 'a later attempt succeeds once pebble is back')
  const after = await issuedBy(s.port, (await pebble.issuers()).intermediate)
  t.not(after.fingerprint256, renewed.fingerprint256, 'issued by the restarted pebble\'s new intermediate')
})
