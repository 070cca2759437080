/**
 * docs/security-headers.md says what the code does: its usage example runs, its options block is
 * the defaults, every option is documented, and its table is what answers carry.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { securityHeadersSchema } from '../index.ts'
import { API_SET, FULL_SET } from './helpers/security-headers.ts'

const page = readFileSync(new URL('../docs/security-headers.md', import.meta.url), 'utf8')

/** The first ```ts block after a heading. */
function blockAfter (heading: string): string {
  const at = page.indexOf(`\n## ${heading}\n`)
  const match = /```ts\n([\s\S]*?)```/.exec(page.slice(at))
  if (at === -1 || match === null) throw new Error(`no code block under "## ${heading}"`)
  return match[1] as string
}

t.test('the usage example runs, and its routes answer as the page says', async (t) => {
  const code = blockAfter('Usage').replace("from 'fastify-secure-https'", "from '../index.ts'") + `
export const answers = {
  page: await app.inject('/'),
  api: await app.inject('/api/me'),
  embed: await app.inject('/embed'),
  raw: await app.inject('/raw'),
  csv: await app.inject('/report.csv')
}
await app.close()
`
  const file = fileURLToPath(new URL(`./.docs-usage-${process.pid}.ts`, import.meta.url))
  writeFileSync(file, code)
  t.teardown(() => rmSync(file, { force: true }))
  const { answers } = await import(file) as { answers: Record<string, { statusCode: number, headers: Record<string, unknown> }> }
  for (const answer of Object.values(answers)) t.equal(answer.statusCode, 200)
  const { page: html, api, embed, raw, csv } = answers as Record<string, { headers: Record<string, unknown> }>
  t.match(html?.headers['content-security-policy'], /img-src 'self' https:\/\/images\.example/)
  t.equal(html?.headers['permissions-policy'], 'camera=(), geolocation=(self)')
  t.equal(api?.headers['cache-control'], 'no-store')
  t.match(embed?.headers['content-security-policy'], /frame-ancestors https:\/\/partner\.example/)
  t.notOk(embed?.headers['x-frame-options'])
  t.notOk(raw?.headers['content-security-policy'])
  t.equal(csv?.headers['x-frame-options'], 'DENY')
})

t.test('the options block is the defaults, and every option is documented', async (t) => {
  // eslint-disable-next-line no-new-func -- the block is an object literal from our own docs
  const documented = new Function(`return (${blockAfter('Options')})`)() as Record<string, unknown>
  t.strictSame(securityHeadersSchema.parse(documented), securityHeadersSchema.parse({}))
  const names = Object.keys(securityHeadersSchema.in.shape)
  for (const name of names) t.match(page, new RegExp(`\`${name}\``), `${name} is documented`)
})

t.test('the table lists what each set carries with default options', async (t) => {
  const rows = new Map([...page.matchAll(/^\| `([A-Za-z-]+)` \| (.*?) \| ?(.*?) ?\|$/gm)].map((m) => [(m[1] as string).toLowerCase(), [m[2] as string, m[3] as string]]))
  for (const [name, value] of Object.entries(FULL_SET)) t.equal(rows.get(name)?.[0], `\`${value}\``, `HTML ${name}`)
  for (const [name, value] of Object.entries(API_SET)) t.match(rows.get(name)?.[1], `\`${value}\``, `API ${name}`)
})
