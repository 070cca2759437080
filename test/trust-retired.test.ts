/**
 * A development CA replaced for being unfit (no name constraints, or wider ones than the suite
 * writes) stays trusted by every browser that trusted it until it is taken out of the stores:
 * `trust` installs the new root and removes the earlier ones, `trust --status` names an earlier one
 * still trusted, and `trust --uninstall` removes them too. Real certutil on NSS databases in a HOME
 * of the test's own.
 */
import { mkdirSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { constraintsFor, DEV_CA_DNS, DEV_CA_IP, retiredDevCas } from '../tls/dev-ca.ts'
import { installTrust, trustStatus } from '../tls/trust-store.ts'
import { tempDir } from './helpers/app.ts'
import { plantCa, runTrust as cli } from './helpers/dev-ca.ts'
import { requirePrograms } from './helpers/external.ts'

async function present (t: Test, home: string, cert: string, certPath: string): Promise<boolean> {
  const results = await trustStatus({ cert, certPath, stores: ['nss'], home })
  t.ok(results.length > 0, 'the NSS database was looked at')
  return results.some((result) => result.status === 'present')
}

t.test('an unconstrained root trusted earlier is taken out of the stores when trust installs the new one', async (t) => {
  if (requirePrograms(t, ['certutil']) === null) return
  const home = tempDir('secure-https-home-', t)
  const dir = join(tempDir('secure-https-trust-', t), 'tls')
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const unfit = await plantCa(dir, undefined)
  const unfitPath = join(dir, 'ca', 'cert.pem')
  const installed = await installTrust({ cert: unfit, certPath: unfitPath, stores: ['nss'], home })
  t.ok(installed.some((result) => result.status === 'installed'), 'the unfit root is trusted, as an earlier version or a hand could have left it')

  const status = await cli(home, ['--status', '--dir', dir, '--store', 'nss'])
  t.equal(status.code, 0, status.err)
  t.match(status.out, /an earlier development CA, not in use: .*ca\/cert\.pem \(the development CA is not one this suite would make: it carries no name constraints/, '--status names it')
  t.match(status.out, /still trusted .*: remove it with "fastify-secure-https trust --uninstall"/)

  const run = await cli(home, ['--dir', dir, '--store', 'nss', '--json'])
  t.equal(run.code, 0, run.err)
  const report = JSON.parse(run.out) as { ca: { path: string }, results: Array<{ status: string }>, retired: Array<{ path: string, reason: string, results: Array<{ status: string }> }> }
  t.ok(report.results.some((result) => result.status === 'installed'), 'the new root is installed')
  t.equal(report.retired.length, 1, 'one earlier root')
  t.match(report.retired[0]?.path, /ca\.replaced-[^/]+\/cert\.pem$/, 'kept as ca.replaced-TIME')
  t.ok(report.retired[0]?.results.some((result) => result.status === 'removed'), 'and removed from the store')
  const replacedFolder = readdirSync(dir).find((name) => name.startsWith('ca.replaced-'))
  t.ok(replacedFolder !== undefined)
  t.notOk(await present(t, home, unfit, join(dir, replacedFolder as string, 'cert.pem')), 'certutil no longer lists the unconstrained root')

  const again = await cli(home, ['--dir', dir, '--store', 'nss'])
  t.equal(again.code, 0, again.err)
  t.notMatch(again.out, /earlier development CA/, 'a second run has nothing earlier to show: absent everywhere')

  const removed = await cli(home, ['--uninstall', '--dir', dir, '--store', 'nss', '--json'])
  t.equal(removed.code, 0, removed.err)
  t.ok((JSON.parse(removed.out) as { results: Array<{ status: string }> }).results.some((result) => result.status === 'removed'), 'uninstall removes the current root')
})

t.test('trust --uninstall removes a root with a public suffix in its constraints, still in TLS_DIR/ca', async (t) => {
  if (requirePrograms(t, ['certutil']) === null) return
  const home = tempDir('secure-https-home-', t)
  const dir = join(tempDir('secure-https-trust-', t), 'tls')
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  // What an earlier version wrote for ALLOWED_HOSTS=*.co.uk.
  const wide = await plantCa(dir, { dns: [...DEV_CA_DNS, 'co.uk'], ip: [...DEV_CA_IP] })
  const path = join(dir, 'ca', 'cert.pem')
  await installTrust({ cert: wide, certPath: path, stores: ['nss'], home })
  t.ok(await present(t, home, wide, path))
  t.match(await retiredDevCas(dir), [{ certPath: path, reason: /its name constraints permit co\.uk, wider than a development CA needs/ }], 'judged unfit: co.uk is a public suffix')
  const run = await cli(home, ['--uninstall', '--dir', dir, '--store', 'nss'])
  t.equal(run.code, 0, run.err)
  t.match(run.out, /no development CA in use/)
  t.match(run.out, /an earlier development CA, not in use: .*co\.uk/)
  t.notOk(await present(t, home, wide, path), 'removed from the store')
})

t.test('constraintsFor leaves out public suffixes given as exact hosts', async (t) => {
  const permitted = constraintsFor(['co.uk', 'github.io', 'app.example.com', 'myapp.github.io'])
  t.notOk(permitted.dns.includes('co.uk'), 'co.uk (ICANN section of the list)')
  t.notOk(permitted.dns.includes('github.io'), 'github.io (private section)')
  t.ok(permitted.dns.includes('app.example.com'))
  t.ok(permitted.dns.includes('myapp.github.io'), 'a site under a public suffix is a host like any other')
})
