/**
 * `fastify-secure-https trust` reads ALLOWED_HOSTS as loadConfig does (the host-authorization
 * schema) before a development CA made by it takes those names into its constraints: `[2001:db8::1]`
 * and `App.Example.com.` are the address and the name, wildcards are left out, and an entry that is
 * no host is refused, naming ALLOWED_HOSTS. The raw text went to the CA as written.
 */
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { trustedHosts } from '../bin/cli.ts'
import { tempDir } from './helpers/app.ts'
import { runTrust } from './helpers/dev-ca.ts'
import { requirePrograms } from './helpers/external.ts'

async function trust (t: Test, allowedHosts: string, args: string[]): Promise<{ code: number, out: string, err: string }> {
  return await runTrust(tempDir('secure-https-home-', t), args, allowedHosts)
}

t.test('a CA made by trust is constrained to the exact hosts of ALLOWED_HOSTS, parsed as the app parses them', async (t) => {
  if (requirePrograms(t, ['certutil']) === null) return
  const dir = join(tempDir('secure-https-trust-', t), 'tls')
  const run = await trust(t, ' App.Example.com. , *.example.org, [2001:DB8::1], 203.0.113.7 ,', ['--dir', dir, '--store', 'nss', '--json'])
  t.equal(run.code, 0, run.err)
  const { ca } = JSON.parse(run.out) as { ca: { permitted: { dns: string[], ip: string[] } } }
  t.ok(ca.permitted.dns.includes('app.example.com'), 'the name without its trailing dot, lower-cased')
  t.notOk(ca.permitted.dns.some((name) => name.includes('example.org') || name.includes('*')), 'no wildcard, nor its parent')
  t.ok(ca.permitted.ip.includes('2001:db8::1/128'), 'an IPv6 address written in brackets')
  t.ok(ca.permitted.ip.includes('203.0.113.7/32'), 'an IPv4 address')
  t.match(await trust(t, '', ['--uninstall', '--dir', dir, '--store', 'nss']), { code: 0 })
})

t.test('an ALLOWED_HOSTS entry that is no host is a usage error naming ALLOWED_HOSTS; the CA is not made', async (t) => {
  const dir = join(tempDir('secure-https-trust-', t), 'tls')
  const run = await trust(t, 'example.com,https://evil.test/', ['--dir', dir, '--store', 'nss'])
  t.equal(run.code, 2)
  t.match(run.err, /ALLOWED_HOSTS: "https:\/\/evil\.test\/" is not a host name/)
  t.equal(run.out, '')
  t.match(await trust(t, 'https://evil.test/', ['--status', '--dir', dir]), { code: 0, out: /no development CA in/ }, 'no CA was made; --status does not read ALLOWED_HOSTS')
})

t.test('the hosts given to the CA: exact names only, as the app reads them', async (t) => {
  t.same(trustedHosts(' App.Example.com. ,*.example.org,,[2001:db8::1]'), ['app.example.com', '2001:db8::1'])
  t.same(trustedHosts('*.example.org'), [], 'a wildcard alone gives nothing')
  t.same(trustedHosts(undefined), [])
  t.throws(() => trustedHosts('example.com:8443'), /ALLOWED_HOSTS: "example\.com:8443" is not a host name/)
})
