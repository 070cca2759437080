/**
 * Debian's Chromium driven by playwright-core (no browser download), headless, in a fresh
 * user-data directory per test. See TOOLING.md for the flags and why `launchPersistentContext`.
 */
import { createHash, X509Certificate } from 'node:crypto'
import { rmSync } from 'node:fs'
import { chromium, type BrowserContext } from 'playwright-core'
import { requirePrograms } from './external.ts'
import { tempDir } from './app.ts'

/** What launchChromium needs of a tap test (tap's own `skip` typings insist on a callback). */
interface BrowserTest {
  skip: unknown
  teardown (fn: () => unknown): void
}

export interface LaunchedChromium {
  context: BrowserContext
  /** Closes the browser and removes its user-data directory; also run in teardown. Idempotent. */
  close (): Promise<void>
}

export interface LaunchChromiumOptions {
  /** Extra command-line flags, e.g. `--host-resolver-rules=...`, `--ignore-certificate-errors-spki-list=...`. */
  args?: string[]
  /** Accept any certificate (playwright's switch). HSTS is not stored with it: prefer the SPKI list. */
  ignoreHTTPSErrors?: boolean
  /** The browser's environment, e.g. a `HOME` whose NSS database (`$HOME/.pki/nssdb`) it trusts. */
  env?: NodeJS.ProcessEnv
}

/** The flags that keep Chromium quiet, deterministic and off the network on these machines. */
export const baseChromiumArgs: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync'
]

/**
 * Launches /usr/bin/chromium (headless) in a fresh temporary profile. Returns null after skipping
 * the test when chromium is not installed (under CI=true that throws instead). Closed in teardown.
 */
export async function launchChromium (t: BrowserTest, options: LaunchChromiumOptions = {}): Promise<LaunchedChromium | null> {
  const bins = requirePrograms(t as Parameters<typeof requirePrograms>[0], ['chromium'])
  if (bins === null) return null
  const dir = tempDir('secure-https-chromium-')
  let context: BrowserContext
  try {
    context = await chromium.launchPersistentContext(dir, {
      executablePath: bins.chromium ?? '/usr/bin/chromium',
      args: [...baseChromiumArgs, ...(options.args ?? [])],
      ignoreHTTPSErrors: options.ignoreHTTPSErrors ?? false,
      ...(options.env === undefined ? {} : { env: options.env })
    })
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
  let closed: Promise<void> | null = null
  const close = async (): Promise<void> => {
    closed ??= (async () => {
      try {
        await context.close()
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })()
    return closed
  }
  t.teardown(close)
  return { context, close }
}

/**
 * Base64 SHA-256 of a certificate's SubjectPublicKeyInfo (DER), the form Chromium's
 * `--ignore-certificate-errors-spki-list` expects.
 */
export function spkiHash (certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' })
  return createHash('sha256').update(spki).digest('base64')
}
