/**
 * The package's functions whose code loads on their first call, not on import: the deploy audit
 * (`doctor`), the live audit (`checkSite`), the trust stores, the development CA and standalone
 * self-signed certificates. An app that imports the package for its plugins never loads that code
 * (docs/benchmarks.md, "Import"). Each forwards to the function of the same name and signature.
 */
import type { CheckSiteOptions, SiteReport } from './audit/check.ts'
import type { DoctorOptions, DoctorReport } from './audit/doctor.ts'
import type { SecureHttpsConfig } from './schemas/config.ts'
import type { Env } from './schemas/env.ts'
import type { DevCa } from './tls/dev-ca.ts'
import type { PemPair } from './tls/self-signed.ts'
import type { TrustResult, TrustStoreOptions } from './tls/trust-store.ts'

/**
 * The deploy audit of an environment: reads it as `loadConfig` does, with the production rules on
 * whatever NODE_ENV says, and runs every check of `doctorCheckIds`. Never throws for a bad
 * environment: each problem is a failed check.
 */
export async function doctor (env: Env = process.env, options: DoctorOptions = {}): Promise<DoctorReport> {
  return await (await import('./audit/doctor.ts')).doctor(env, options)
}

/**
 * The same checks on a resolved config (what `secureHttps` runs at ready). The production rules
 * apply whatever `config.production` says, so a development config fails some of them.
 */
export async function doctorConfig (config: SecureHttpsConfig, options: DoctorOptions = {}): Promise<DoctorReport> {
  return await (await import('./audit/doctor.ts')).doctorConfig(config, options)
}

/**
 * Audits a live HTTPS site. Never throws for a site that is down or broken: an unreachable site
 * gives a report with SH-LIVE-001 failed and the rest skipped.
 * @throws TypeError when `url` is not an https:// URL or `connectTo` not an IP address
 */
export async function checkSite (url: string | URL, options: CheckSiteOptions = {}): Promise<SiteReport> {
  return await (await import('./audit/check.ts')).checkSite(url, options)
}

/** Installs the CA in the stores; one result per store tried. */
export async function installTrust (options: TrustStoreOptions): Promise<TrustResult[]> {
  return await (await import('./tls/trust-store.ts')).installTrust(options)
}

/** Removes the CA from the stores; one result per store tried. */
export async function uninstallTrust (options: TrustStoreOptions): Promise<TrustResult[]> {
  return await (await import('./tls/trust-store.ts')).uninstallTrust(options)
}

/**
 * Tells, per store, whether the CA is there (`present` or `absent`), without changing anything.
 * Costs one `certutil -L` per NSS database and a file check for the Linux system store.
 */
export async function trustStatus (options: TrustStoreOptions): Promise<TrustResult[]> {
  return await (await import('./tls/trust-store.ts')).trustStatus(options)
}

/**
 * Loads the CA of TLS_DIR, or makes one: on first use, or when the old one is unusable or about to
 * expire (then the old folder is kept beside it as `ca.replaced-TIME`, and the new root must be
 * trusted again). Two processes starting at once agree on one CA.
 * @throws ERR_SECURE_HTTPS_INSECURE_STORAGE when TLS_DIR or the CA's files are not private
 */
export async function loadOrCreateDevCa (dir: string, hosts: readonly string[] = [], now = Date.now()): Promise<DevCa> {
  return await (await import('./tls/dev-ca.ts')).loadOrCreateDevCa(dir, hosts, now)
}

/** The CA of TLS_DIR if there is a usable one; never makes one. */
export async function findDevCa (dir: string, now = Date.now()): Promise<DevCa | null> {
  return await (await import('./tls/dev-ca.ts')).findDevCa(dir, now)
}

/**
 * Generates a standalone self-signed ECDSA P-256 certificate for the hosts (and localhost,
 * 127.0.0.1, ::1). Clients must pin it; for browsers, TLS_MODE=self-signed issues from the
 * development CA instead, which can be trusted once.
 */
export async function generateSelfSigned (hosts: readonly string[], days = 90, now = Date.now()): Promise<PemPair> {
  return await (await import('./tls/self-signed.ts')).generateSelfSigned(hosts, days, now)
}
