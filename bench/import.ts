/**
 * What importing the suite costs an app at start: `import('fastify-secure-https')` against
 * `import('fastify')` alone, each in a fresh Node.js process (nothing cached in memory), the two
 * alternated run by run so that the machine's load falls on both alike; medians of many runs.
 *
 *   npm run build && node dist/bench/import.js [--runs 31] [--check]
 *
 * `--check` exits 1 when the suite costs more than twice Fastify's own import.
 */
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** Milliseconds one fresh process takes to import `specifier` (timed inside it). */
function importTime (specifier: string): number {
  const script = `const t = performance.now(); await import(${JSON.stringify(specifier)}); process.stdout.write(String(performance.now() - t))`
  return Number(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8' }))
}

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] as number : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}

const { values } = parseArgs({ options: { runs: { type: 'string', default: '31' }, check: { type: 'boolean', default: false } } })
const runs = Number(values.runs)
const subjects = ['fastify', 'zod', 'fastify-secure-https'] as const
const times: Record<string, number[]> = Object.fromEntries(subjects.map((subject) => [subject, []]))
// One warm-up round for the file system cache, then the measured rounds, in rotating order.
for (const subject of subjects) importTime(subject)
for (let round = 0; round < runs; round++) {
  for (let i = 0; i < subjects.length; i++) {
    const subject = subjects[(round + i) % subjects.length] as string
    times[subject]?.push(importTime(subject))
  }
}
const fastify = median(times.fastify as number[])
const suite = median(times['fastify-secure-https'] as number[])
const ratio = suite / fastify
console.log(`Node.js ${process.version}, ${runs} fresh processes each, medians:`)
console.log('')
console.log('| import | median | of fastify |')
console.log('| --- | --- | --- |')
for (const subject of subjects) {
  const value = median(times[subject] as number[])
  console.log(`| \`import('${subject}')\` | ${value.toFixed(0)} ms | ${(value / fastify).toFixed(2)}x |`)
}
if (values.check === true && ratio > 2) {
  console.error(`importing fastify-secure-https costs ${ratio.toFixed(2)}x importing fastify, more than 2x`)
  process.exitCode = 1
}
