/**
 * Optional dependencies: ACME (`acme-client`), Redis (`ioredis`) and metrics (`prom-client`) are
 * loaded only when the configuration asks for them, so that an app that uses none of them installs
 * and imports none of them. A missing one fails with the package to install and the setting that
 * needs it.
 */
import { ERR_MISSING_DEPENDENCY } from './errors.ts'

/** The optional packages and the settings that need them. */
export const optionalDependencies = {
  'acme-client': 'TLS_MODE=acme (certificates from Let\'s Encrypt or another ACME CA)',
  ioredis: 'SESSION_STORE=redis or TLS_STORAGE=redis',
  'prom-client': 'METRICS=true (Prometheus metrics)'
} as const

/** The name of an optional package. */
export type OptionalDependency = keyof typeof optionalDependencies

const loaded = new Map<string, Promise<unknown>>()

const notFound = (error: unknown): boolean => {
  const code = (error as NodeJS.ErrnoException).code
  return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND'
}

const missing = (name: OptionalDependency): Error =>
  new ERR_MISSING_DEPENDENCY(`${optionalDependencies[name]} needs the package ${name}, which is not installed; install it in the app: npm install ${name}`)

/**
 * Imports an optional package once. `load` is the `import()` of it, written at the call site so that
 * the package's types follow: `await importOptional('ioredis', () => import('ioredis'))`.
 * @throws ERR_SECURE_HTTPS_MISSING_DEPENDENCY when the package is not installed.
 * @internal
 */
export async function importOptional<T> (name: OptionalDependency, load: () => Promise<T>): Promise<T> {
  let pending = loaded.get(name) as Promise<T> | undefined
  if (pending === undefined) {
    pending = load().catch((error: unknown) => {
      loaded.delete(name)
      if (notFound(error)) throw missing(name)
      throw error
    })
    loaded.set(name, pending)
  }
  return await pending
}

/**
 * The synchronous twin of `importOptional`, for a CommonJS package that a synchronous API needs
 * (`redisSessionStore()` builds its client at once): `requireOptional('ioredis', () => require('ioredis'))`
 * with `require = createRequire(import.meta.url)`.
 * @throws ERR_SECURE_HTTPS_MISSING_DEPENDENCY when the package is not installed.
 * @internal
 */
export function requireOptional<T> (name: OptionalDependency, load: () => T): T {
  try {
    return load()
  } catch (error) {
    if (notFound(error)) throw missing(name)
    throw error
  }
}
