/**
 * The routes every Fastify variant with a session serves, so that the suite and the hand-wired
 * plugins answer the very same requests. Each returns a tiny JSON body: the cost measured is the
 * framework's and the plugins', not the handler's.
 * @internal
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'

/**
 * The part of a session both the suite and @fastify/secure-session offer. Typed here rather than
 * through either package's SessionData, so that the same routes serve both.
 */
interface SessionLike {
  get (key: string): unknown
  set (key: string, value: unknown): void
}

function sessionOf (request: FastifyRequest): SessionLike {
  return (request as unknown as { session: SessionLike }).session
}

/** Registers /anonymous, /login, /read and /write. @internal */
export function sessionRoutes (app: FastifyInstance): void {
  // Never touches the session.
  app.get('/anonymous', async () => ({ hello: 'world' }))
  // Called once by the runner to obtain the cookie the read and write requests send.
  app.get('/login', async (request) => {
    sessionOf(request).set('user', 'alice')
    return { user: 'alice' }
  })
  // Reads the session; nothing changes, so no Set-Cookie is needed.
  app.get('/read', async (request) => ({ user: sessionOf(request).get('user') ?? null }))
  // Reads and changes the session: a new cookie on every response.
  app.get('/write', async (request) => {
    const session = sessionOf(request)
    const previous = session.get('n')
    const n = (typeof previous === 'number' ? previous : 0) + 1
    session.set('n', n)
    return { user: session.get('user') ?? null, n }
  })
}
