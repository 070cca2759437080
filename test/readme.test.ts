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

t.test('every section of the configuration is in the README\'s options example and on a docs page', async (t) => {
  const { resolveConfig } = await import('../index.ts')
  const example = readme.slice(readme.indexOf('## Options in code'), readme.indexOf('## Production rules'))
  const docs = readdirSync(new URL('../docs/', import.meta.url)).map((page) => readFileSync(new URL(`../docs/${page}`, import.meta.url), 'utf8')).join('\n')
  for (const section of Object.keys(resolveConfig({}))) {
    t.match(example, new RegExp(`^ {2}${section}: `, 'm'), `${section} in the README's resolveConfig example`)
    t.match(docs, new RegExp(`\`${section}\``), `${section} named on a docs page`)
  }
})
