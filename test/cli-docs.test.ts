import t from 'tap'
import { readFileSync } from 'node:fs'
import { doctorChecks, siteChecks } from '../index.ts'
import { publishedKeyFingerprints } from '../audit/doctor.ts'
import { keyFingerprint } from '../audit/keygen.ts'

/** The `| id | severity |` rows of a page's check table. */
function documented (page: string): Map<string, string> {
  const text = readFileSync(new URL(`../docs/${page}`, import.meta.url), 'utf8')
  return new Map([...text.matchAll(/^\| (SH-[A-Z]+-\d{3}) \| (error|warning|info) \|/gm)].map((match) => [match[1] as string, match[2] as string]))
}

for (const [page, checks] of [['doctor.md', doctorChecks], ['check.md', siteChecks]] as const) {
  t.test(`every check id in code is documented in docs/${page} with its severity, and no other`, async (t) => {
    const rows = documented(page)
    for (const [id, check] of Object.entries(checks)) {
      t.equal(rows.get(id), check.severity, `${id} is documented as ${check.severity}`)
    }
    t.same([...rows.keys()], Object.keys(checks), 'the table lists the ids in code order, and no stale id')
  })
}

t.test('the key printed in docs/doctor.md as published is one doctor refuses', async (t) => {
  const text = readFileSync(new URL('../docs/doctor.md', import.meta.url), 'utf8')
  const key = /SESSION_KEYS=(\S+)\s+# published/.exec(text)?.[1]
  t.ok(key, 'the page shows a published key')
  const published = await publishedKeyFingerprints()
  t.equal(published.get(keyFingerprint(Buffer.from(key ?? '', 'base64'))), 'docs/doctor.md')
})
