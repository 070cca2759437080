/**
 * The connection tracker the session store and the certificate storage share, on a client's events
 * as ioredis emits them (the real outages are in storage-redis, cluster-redis-store and
 * diagnostics tests, against a real Redis stopped and started).
 */
import { EventEmitter } from 'node:events'
import t from 'tap'
import { trackRedisHealth } from '../storage/redis-ready.ts'

function tracked (): { client: EventEmitter, seen: string[], health: ReturnType<typeof trackRedisHealth> } {
  const client = new EventEmitter()
  const seen: string[] = []
  const health = trackRedisHealth(client as unknown as Parameters<typeof trackRedisHealth>[0], {
    down: (reason) => seen.push(`down ${reason}`),
    up: (downMs) => seen.push(`up ${downMs >= 0 ? 'after' : 'before'}`)
  })
  return { client, seen, health }
}

t.test('one down per outage, with the first reason; up when ready again', async (t) => {
  const { client, seen, health } = tracked()
  t.equal(health.reason(), 'not connected yet')
  client.emit('ready')
  t.same(seen, [], 'a first ready is no recovery')
  client.emit('error', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))
  client.emit('close')
  client.emit('error', new Error('still refused'))
  t.same(seen, ['down ECONNREFUSED'], 'reported once, the errors and closes that follow are the same outage')
  t.equal(health.reason(), 'still refused', 'the reason is the latest, for the messages')
  client.emit('ready')
  t.same(seen, ['down ECONNREFUSED', 'up after'])
  client.emit('close')
  t.same(seen, ['down ECONNREFUSED', 'up after', 'down CONNECTION_CLOSED'], 'a close without an error is an outage too')
})

t.test('muted: a close in progress is no outage; stopped: no listener left', async (t) => {
  const { client, seen, health } = tracked()
  client.emit('ready')
  health.mute()
  client.emit('close')
  client.emit('error', new Error('gone'))
  t.same(seen, [], 'nothing reported while closing')
  t.equal(client.listenerCount('error'), 1, 'still listening (an error without a listener would be thrown)')
  health.stop()
  for (const event of ['error', 'ready', 'close']) t.equal(client.listenerCount(event), 0, `no ${event} listener`)
})
