/**
 * The outside reference: Express 5 over TLS with helmet (defaults) and express-session on its
 * MemoryStore, the combination most Node HTTPS tutorials end with. Same routes as the Fastify
 * variants.
 */
import express from 'express'
import session from 'express-session'
import helmet from 'helmet'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { benchEnvironment, controlled, failed } from './control.ts'

declare module 'express-session' {
  interface SessionData {
    user: string
    n: number
  }
}

try {
  const env = benchEnvironment()
  const app = express()
  app.set('etag', false)
  app.use(helmet())
  app.use(session({
    secret: env.sessionKey,
    name: '__Host-session',
    resave: false,
    saveUninitialized: false,
    cookie: { path: '/', httpOnly: true, secure: true, sameSite: 'lax', maxAge: 86_400_000 }
  }))
  app.get('/anonymous', (_req, res) => { res.json({ hello: 'world' }) })
  app.get('/login', (req, res) => {
    req.session.user = 'alice'
    res.json({ user: 'alice' })
  })
  app.get('/read', (req, res) => { res.json({ user: req.session.user ?? null }) })
  app.get('/write', (req, res) => {
    const n = (req.session.n ?? 0) + 1
    req.session.n = n
    res.json({ user: req.session.user ?? null, n })
  })
  const server = createServer({ key: env.key, cert: env.cert }, app)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  controlled((server.address() as AddressInfo).port, null, () => new Promise((resolve) => {
    server.closeAllConnections()
    server.close(resolve)
  }))
} catch (error) {
  failed(error)
}
