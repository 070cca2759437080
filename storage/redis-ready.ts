/**
 * Waiting for an ioredis client to be ready, with a deadline: shared by the session store and the
 * certificate storage. @internal
 */
import type { Redis } from 'ioredis'

/** Resolves when `client` is ready; rejects with `timedOut()` after `timeout` ms. @internal */
export async function redisReady (client: Pick<Redis, 'status' | 'once' | 'off'>, timeout: number, timedOut: () => Error): Promise<void> {
  if (client.status === 'ready') return
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('ready', ok)
      reject(timedOut())
    }, timeout)
    const ok = (): void => { clearTimeout(timer); resolve() }
    client.once('ready', ok)
  })
}
