/**
 * A challenge answer that could not be published in the storage is not kept either: the order
 * fails, and nothing would ever withdraw an answer kept here alone (it would be served for as long
 * as the process lives). Against a real pebble, which hands out the tokens; the storage's writes of
 * challenge answers fail.
 */
import t from 'tap'
import { resolveConfig } from '../index.ts'
import { fileStorage } from '../storage/file.ts'
import type { Storage } from '../storage/storage.ts'
import { acmeSource, type AcmeEvent } from '../tls/acme-source.ts'
import { tempDir } from './helpers/app.ts'
import { requirePrograms } from './helpers/external.ts'
import { acmeOptions, startPebble } from './helpers/pebble.ts'

/** Waits for a condition, polling (the source's own timers are unref'd). */
async function until (condition: () => boolean, ms: number): Promise<void> {
  for (const end = Date.now() + ms; !condition() && Date.now() < end;) await new Promise((resolve) => setTimeout(resolve, 5))
}

t.test('answers that could not be published are taken back', async (t) => {
  if (requirePrograms(t, ['pebble', 'pebble-challtestsrv']) === null) return
  const pebble = await startPebble()
  t.teardown(() => pebble.close())

  for (const challenge of ['http-01', 'tls-alpn-01'] as const) {
    t.test(challenge, async (t) => {
      const dir = tempDir('review-challenges-', t)
      const files = fileStorage(dir)
      const refused: string[] = []
      // The storage refuses to keep challenge answers (full, read-only, its write timed out).
      const storage: Storage = {
        ...files,
        description: 'a storage refusing challenge answers',
        async store (key, value, options) {
          if (/\/(challenges|alpn)\//.test(key)) {
            refused.push(key.slice(key.lastIndexOf('/') + 1))
            throw new Error('the storage is read-only')
          }
          await files.store(key, value, options)
        }
      }
      const name = `${challenge}.publish.test`
      const options = acmeOptions(pebble, dir, [name], pebble.httpPort, { challenge, retryDelay: 60 })
      const config = resolveConfig({ ...options, tls: { ...(options.tls as object), storage } }).tls
      if (config === false) throw new Error('no tls')
      const events: AcmeEvent[] = []
      const source = acmeSource(config, { onEvent: (event) => { events.push(event) } })
      t.teardown(() => source.stop())
      await source.load()
      source.start({ update: () => {}, error: () => {} })
      await until(() => events.some((event) => event.type === 'order-failed'), 30_000)
      t.match(events.find((event) => event.type === 'order-failed'), { error: /read-only/ }, 'the order fails on the storage\'s refusal')
      t.equal(refused.length, 1, 'one answer could not be published')
      if (challenge === 'http-01') {
        t.equal(await source.challenge(refused[0] as string), null, 'its token is not answered from memory')
      } else {
        t.equal(await source.alpnChallenge?.(name), null, 'its TLS-ALPN-01 certificate is not presented from memory')
      }
    })
  }
})
