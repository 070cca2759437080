/**
 * External programs (nginx, haproxy, pebble, redis-server, chromium, testssl, ...). Under CI
 * (CI=true) a missing program fails the test loudly; on a laptop the test is skipped, saying why.
 */
import { execFileSync } from 'node:child_process'

/** Absolute path of a program on PATH, or null. */
export function which (program: string): string | null {
  try {
    return execFileSync('sh', ['-c', `command -v ${program}`], { encoding: 'utf8' }).trim() || null
  } catch {
    return null
  }
}

/** A tap test: tap types `skip` with a callback, but a message alone records a skip. */
interface SkippableTest {
  skip: unknown
}

/**
 * Returns the programs' paths, or null after skipping the test (laptop) / throwing (CI).
 * Usage: `const bins = requirePrograms(t, ['nginx']); if (bins === null) return`
 */
export function requirePrograms (t: SkippableTest, programs: readonly string[]): Record<string, string> | null {
  const found: Record<string, string> = {}
  const missing: string[] = []
  for (const program of programs) {
    const path = which(program)
    if (path === null) missing.push(program)
    else found[program] = path
  }
  if (missing.length === 0) return found
  const message = `needs ${missing.join(', ')} (apt-get install ${missing.join(' ')}); .ci/run installs them`
  if (process.env.CI === 'true') throw new Error(`CI=true and ${message}`)
  const test = t as { skip (message: string): void }
  test.skip(`skipped: ${message}`)
  return null
}
