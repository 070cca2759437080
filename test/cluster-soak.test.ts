/**
 * A short soak (bench/soak.ts) in CI: Redis sessions, two instances behind haproxy, logins, reads
 * and logouts under load while an instance restarts and SESSION_KEYS rotates in two phases.
 */
import t from 'tap'
import { formatReport, measureCost, runSoak } from '../bench/soak.ts'
import { requirePrograms } from './helpers/external.ts'

/** RSS an instance may gain over the steady window of a short run (JIT and heap still settling). */
const GROWTH_BOUND = 48 * 1024 * 1024

t.test('soak: no error and bounded memory through a restart and a key rotation', async (t) => {
  if (requirePrograms(t, ['redis-server', 'redis-cli', 'haproxy']) === null) return
  const report = await runSoak({ duration: 10, store: 'redis', users: 4, rate: 100 })
  t.comment(formatReport(report))
  t.ok(report.requests > 300, `load was applied (${report.requests} requests)`)
  t.ok(report.logins > 30, `users logged in and out (${report.logins} logins)`)
  t.equal(report.restarts.length, 5, 'a plain restart, then both rotation phases on both instances')
  t.equal(report.errors, 0, `no request failed and no session was lost: ${report.errorSamples.join('; ')}`)
  t.equal(report.replayedAfterLogout, 0, 'no logged-out cookie opened its session again (server-side store)')
  t.ok(report.latencyMs.p99 > 0)
  for (const { instance, pid, from, to } of report.steadyWindow.growth) {
    t.ok(from > 0 && to > 0, `${instance} was measured`)
    t.ok(to - from < GROWTH_BOUND, `${instance} (pid ${pid}) grew ${((to - from) / 1048576).toFixed(1)} MB over the steady window (bound ${GROWTH_BOUND / 1048576} MB)`)
  }
  t.ok(report.redis !== undefined && report.redis.keysAfter < report.logins * 2 + 10, 'Redis holds no more keys than the sessions made (no leak of ids)')
})

t.test('soak --cost measures both stores, reads and writes', async (t) => {
  if (requirePrograms(t, ['redis-server', 'redis-cli', 'haproxy']) === null) return
  const figures = await measureCost({ seconds: 1, rounds: 1, connections: 4 })
  t.same(figures.map((f) => f.store), ['cookie', 'redis'])
  for (const f of figures) {
    for (const kind of ['read', 'write'] as const) {
      t.ok(f[kind].rps > 0 && f[kind].appCpuUs > 0, `${f.store} ${kind}: ${f[kind].rps} req/s, ${f[kind].appCpuUs} us app CPU per request`)
    }
  }
  t.ok((figures[1]?.write.redisCpuUs ?? 0) > 0, 'Redis does work for Redis sessions')
  t.equal(figures[0]?.write.redisCpuUs, 0, 'and none for cookie sessions')
})
