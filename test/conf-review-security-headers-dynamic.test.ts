/**
 * A CSP directive given as a function makes helmet run per request on the raw response. The headers
 * helmet does not know (Permissions-Policy) and the API set's Cache-Control: no-store must still be
 * sent, as with static options.
 */
import Fastify from 'fastify'
import t from 'tap'
import { securityHeaders } from '../index.ts'

const imgSrc = (): string => 'https://images.example'

t.test('directive functions: Permissions-Policy on HTML answers, Cache-Control: no-store on JSON answers', async (t) => {
  const app = Fastify()
  await app.register(securityHeaders, {
    permissionsPolicy: { camera: [] },
    contentSecurityPolicy: { directives: { 'img-src': ["'self'", imgSrc] } }
  })
  app.get('/html', async (_request, reply) => reply.type('text/html; charset=utf-8').send('<p>page'))
  app.get('/json', async () => ({ a: 1 }))
  app.get('/route', { helmet: { permissionsPolicy: { geolocation: [] } } as never }, async (_request, reply) => reply.type('text/html').send('<p>page'))
  app.get('/own-cache', async (_request, reply) => reply.header('cache-control', 'private, max-age=60').send({ a: 1 }))
  t.teardown(() => app.close())

  const html = await app.inject('/html')
  t.match(html.headers['content-security-policy'], "img-src 'self' https://images.example", 'helmet ran with the function')
  t.equal(html.headers['permissions-policy'], 'camera=()', 'the plugin\'s Permissions-Policy is sent')
  t.notOk(html.headers['cache-control'], 'no Cache-Control on a page')

  const json = await app.inject('/json')
  t.equal(json.headers['cache-control'], 'no-store', 'a JSON answer is not stored')
  t.notOk(json.headers['permissions-policy'], 'Permissions-Policy on HTML answers only')
  t.equal(json.headers['x-content-type-options'], 'nosniff')

  const route = await app.inject('/route')
  t.equal(route.headers['permissions-policy'], 'geolocation=()', 'a route\'s own Permissions-Policy is sent')

  const own = await app.inject('/own-cache')
  t.equal(own.headers['cache-control'], 'private, max-age=60', 'the route\'s Cache-Control wins')
})

t.test('directive functions on one route only: that route\'s Permissions-Policy is sent', async (t) => {
  const app = Fastify()
  await app.register(securityHeaders, { permissionsPolicy: { camera: [] } })
  app.get('/fn', { helmet: { contentSecurityPolicy: { directives: { 'img-src': ["'self'", imgSrc] } } } }, async (_request, reply) => reply.type('text/html').send('<p>page'))
  t.teardown(() => app.close())
  const res = await app.inject('/fn')
  t.match(res.headers['content-security-policy'], 'https://images.example')
  t.equal(res.headers['permissions-policy'], 'camera=()')
})
