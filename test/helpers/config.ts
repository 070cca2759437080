/**
 * Catching the ConfigError a call must throw.
 */
import { ConfigError } from '../../errors.ts'

/** Runs `fn` and returns the ConfigError it throws; any other outcome fails the test. */
export function configErrorOf (fn: () => unknown): ConfigError {
  try {
    fn()
  } catch (error) {
    if (error instanceof ConfigError) return error
    throw error
  }
  throw new Error('expected a ConfigError')
}
