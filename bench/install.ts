/**
 * What installing the suite costs an app: the tarball (`npm pack`) installed into a new app beside
 * fastify, against an app with fastify alone; packages counted in node_modules and bytes on disk.
 * Needs the npm registry for the dependencies.
 *
 *   npm run build && node dist/bench/install.js
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const FASTIFY = '5.12.1'

/** Bytes of every file under a folder (what `du -sb` counts, without the folders' blocks). */
function bytes (dir: string): number {
  let total = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) total += bytes(path)
    else if (entry.isFile()) total += statSync(path).size
  }
  return total
}

/** Packages in node_modules (scoped ones counted one by one). */
function packages (dir: string): number {
  let count = 0
  for (const name of readdirSync(dir)) {
    if (name.startsWith('.')) continue
    if (name.startsWith('@')) count += readdirSync(join(dir, name)).length
    else count++
  }
  return count
}

function app (work: string, name: string, install: string[]): { packages: number, bytes: number } {
  const dir = join(work, name)
  mkdirSync(dir)
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true, type: 'module' }))
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...install], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] })
  // npm ls lists the nested copies too; node_modules/ alone would miss them.
  const listed = execFileSync('npm', ['ls', '--all', '--parseable'], { cwd: dir, encoding: 'utf8' }).trim().split('\n').length - 1
  return { packages: Math.max(listed, packages(join(dir, 'node_modules'))), bytes: bytes(join(dir, 'node_modules')) }
}

const work = mkdtempSync(join(tmpdir(), 'secure-https-install-'))
try {
  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: ROOT, encoding: 'utf8' })) as Array<{ filename: string, size: number, unpackedSize: number, entryCount: number }>
  const tarball = packed[0]
  if (tarball === undefined) throw new Error('npm pack printed nothing')
  const alone = app(work, 'fastify-alone', [`fastify@${FASTIFY}`])
  const both = app(work, 'with-suite', [`fastify@${FASTIFY}`, join(work, tarball.filename)])
  const mb = (n: number): string => `${(n / 1_000_000).toFixed(1)} MB`
  console.log(`npm ${execFileSync('npm', ['--version'], { encoding: 'utf8' }).trim()}, Node.js ${process.version}; tarball ${(tarball.size / 1000).toFixed(0)} kB (${tarball.entryCount} files, ${(tarball.unpackedSize / 1000).toFixed(0)} kB unpacked)`)
  console.log('')
  console.log('| new app with | packages | node_modules |')
  console.log('| --- | --- | --- |')
  console.log(`| fastify ${FASTIFY} | ${alone.packages} | ${mb(alone.bytes)} |`)
  console.log(`| fastify ${FASTIFY} + fastify-secure-https | ${both.packages} | ${mb(both.bytes)} |`)
  console.log(`| the suite adds | ${both.packages - alone.packages} | ${mb(both.bytes - alone.bytes)} |`)
} finally {
  rmSync(work, { recursive: true, force: true })
}
