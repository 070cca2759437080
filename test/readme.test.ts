import { readdirSync, readFileSync } from 'node:fs'
import t from 'tap'
import { environmentVariables } from '../schemas/env.ts'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')

t.test('every environment variable the suite reads is in the README table', async (t) => {
  for (const name of Object.keys(environmentVariables)) {
    t.match(readme, new RegExp(`^\\| [^|]*\`${name}\``, 'm'), `${name} is documented`)
  }
})

t.test('every docs page the README links to exists', async (t) => {
  const pages = new Set(readdirSync(new URL('../docs/', import.meta.url)))
  for (const match of readme.matchAll(/\]\(docs\/([a-z-]+\.md)\)/g)) {
    t.ok(pages.has(match[1] as string), `docs/${match[1] as string} exists`)
  }
})
