/**
 * The demo app: a login page in the style of the Flask HTTPS tutorials, on top of the suite.
 * Routes (stable, the tests use them): GET /, POST /login, GET /dashboard, GET /api/me,
 * POST /logout, GET /healthz; and GET /style.css for the page's looks.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyServerOptions } from 'fastify'
import secureHttps, { findDevCa, serverOptions, trustStatus, type SecureHttpsConfig } from 'fastify-secure-https'

// request.session is @fastify/secure-session's session: its values are typed there.
declare module '@fastify/secure-session' {
  interface SessionData {
    user: string
  }
}

const escape = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

// Served from its own route: the CSP (style-src 'self') allows it without a per-request nonce.
const STYLE = `:root { color-scheme: light dark; --accent: #0b7a3e; --muted: #6b7280; }
body { font: 16px/1.5 system-ui, sans-serif; margin: 0; min-height: 100vh; display: flex; flex-direction: column; align-items: center; }
main { width: min(32rem, 100% - 2rem); margin: 3rem 0 1rem; padding: 1.5rem 2rem; border: 1px solid #8883; border-radius: 12px; }
h1 { font-size: 1.4rem; margin-top: 0; }
h1::before { content: "\\1F512  "; }
form { display: flex; gap: .5rem; align-items: center; margin: 1rem 0 0; flex-wrap: wrap; }
input { font: inherit; padding: .35rem .6rem; border: 1px solid #8886; border-radius: 6px; }
button { font: inherit; padding: .35rem .9rem; border: 0; border-radius: 6px; background: var(--accent); color: #fff; cursor: pointer; }
button.secondary { background: transparent; color: inherit; border: 1px solid #8886; }
footer { width: min(32rem, 100% - 2rem); color: var(--muted); font-size: .85rem; }
.ok { color: var(--accent); } .warn { color: #b45309; }
code { font-size: .85em; }
`

function page (title: string, body: string, footer: string): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escape(title)}</title><link rel="stylesheet" href="/style.css"></head>
<body>
<main>
<h1>${escape(title)}</h1>
${body}
</main>
<footer>${footer}</footer>
</body>
</html>
`
}

const USER = /^[\p{L}\p{N}_.@-]{1,64}$/u
const TRUST_TTL = 30_000

/** Builds the demo app for a resolved config; the caller listens. */
export async function buildDemo (config: SecureHttpsConfig, fastifyOptions: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ ...fastifyOptions, ...(await serverOptions(config)) }) as unknown as FastifyInstance
  // HTML forms post application/x-www-form-urlencoded; URLSearchParams reads it (the last value wins).
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 4096 }, (_request, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)))
  })
  await app.register(secureHttps, config)
  const csrf = config.secureSession !== false && config.secureSession.csrf
  // With SESSION_CSRF=true every form carries the session's CSRF token; the plugin checks it on POST.
  const csrfField = (reply: FastifyReply): string => csrf ? `<input type="hidden" name="_csrf" value="${escape(reply.generateCsrf())}">` : ''
  const logoutForm = (reply: FastifyReply): string =>
    `<form method="post" action="/logout">${csrfField(reply)}<button id="logout" class="secondary" type="submit">Log out</button></form>`

  // Whether the development CA is in the browsers' stores: asked at most every 30 s (a certutil -L).
  let trust: { at: number, text: Promise<string> } | null = null
  const trustText = async (): Promise<string> => {
    if (config.tls === false || config.tls.mode !== 'self-signed') return ''
    const ca = await findDevCa(config.tls.dir)
    if (ca === null) return ''
    const results = await trustStatus({ cert: ca.cert, certPath: ca.certPath, interactive: false })
    const by = results.filter((result) => result.status === 'present').map((result) => result.store)
    return by.length > 0
      ? ` · <span class="ok">development CA trusted by ${escape(by.join(', '))}</span>`
      : ' · <span class="warn">development CA not trusted yet: run <code>npx fastify-secure-https trust</code></span>'
  }
  const certificateFooter = async (): Promise<string> => {
    if (config.tls === false || !app.hasDecorator('tls') || config.tls.mode === 'proxy' || config.tls.mode === 'off') {
      return `<p id="certificate">${config.tls !== false && config.tls.mode === 'proxy' ? 'TLS ends at the proxy in front of this app.' : 'Plain HTTP: no certificate.'}</p>`
    }
    const status = app.tls.status()
    if (trust === null || Date.now() - trust.at > TRUST_TTL) trust = { at: Date.now(), text: trustText().catch(() => '') }
    const kind = config.tls.mode === 'self-signed' ? 'development certificate' : config.tls.mode === 'acme' ? 'ACME certificate' : 'certificate from files'
    return `<p id="certificate">Certificate: ${kind} for ${escape(status.sans.join(', '))} · expires ${status.notAfter.toISOString().slice(0, 10)}${await trust.text}</p>`
  }

  app.get('/style.css', async (_request, reply) => reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=300').send(STYLE))

  app.get('/', async (request, reply) => {
    const user = config.secureSession === false ? undefined : request.session.get('user')
    const body = user === undefined
      ? `<p id="status">Not logged in.</p>
<form method="post" action="/login">${csrfField(reply)}
<label>User <input id="login-user" name="user" autocomplete="username" required maxlength="64"></label>
<button id="login" type="submit">Log in</button>
</form>`
      : `<p id="status">Logged in as <strong id="user">${escape(user)}</strong>. <a href="/dashboard">Dashboard</a></p>
${logoutForm(reply)}`
    return reply.type('text/html; charset=utf-8').send(page('fastify-secure-https demo', body, await certificateFooter()))
  })

  app.post<{ Body: { user?: unknown } | undefined }>('/login', async (request, reply) => {
    const user = request.body?.user
    if (typeof user !== 'string' || !USER.test(user)) {
      return reply.code(400).type('text/html; charset=utf-8').send(page('Log in', '<p>A user name is 1 to 64 letters, digits, or _ . @ -</p><p><a href="/">Back</a></p>', ''))
    }
    // A new session at login, so that a session planted before it (fixation) is worth nothing.
    request.session.regenerate()
    request.session.set('user', user)
    return reply.redirect('/dashboard', 303)
  })

  app.get('/dashboard', async (request, reply) => {
    const user = request.session.get('user')
    if (user === undefined) return reply.redirect('/', 303)
    return reply.type('text/html; charset=utf-8').send(page('Dashboard', `<p>Welcome, <strong id="user">${escape(user)}</strong>.</p>
${logoutForm(reply)}`, await certificateFooter()))
  })

  app.get('/api/me', async (request) => ({ user: request.session.get('user') ?? null }))

  app.post('/logout', async (request, reply) => {
    request.session.delete()
    return reply.redirect('/', 303)
  })

  app.get('/healthz', async (_request, reply) => reply.type('text/plain; charset=utf-8').send('ok'))

  return app
}
