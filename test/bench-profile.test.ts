/**
 * Reading a V8 CPU profile into "what costs what per request" (bench/profile.ts), on a small
 * profile made by hand: self time by place, and inclusive time that stops at Fastify's hook
 * continuation so that a hook does not "contain" the rest of the request.
 */
import t from 'tap'
import { analyseProfile, profileMarkdown, type CpuProfile } from '../bench/profile.ts'

const ROOT = '/app/'
const frame = (id: number, functionName: string, url: string, children: number[] = [], lineNumber = 0): CpuProfile['nodes'][number] =>
  ({ id, callFrame: { functionName, url, lineNumber }, children })

const PROFILE: CpuProfile = {
  nodes: [
    frame(1, '(root)', '', [2, 6, 7, 9]),
    frame(2, 'routeHandler', 'file:///app/node_modules/fastify/lib/route.js', [3]),
    frame(3, 'hstsHeader', 'file:///app/dist/plugins/hsts.js', [4], 15),
    frame(4, 'next', 'file:///app/node_modules/fastify/lib/hooks.js', [5]),
    frame(5, 'open', 'file:///app/dist/plugins/secure-session.js', [8], 65),
    frame(6, '(garbage collector)', ''),
    frame(7, '(idle)', ''),
    frame(8, 'crypto_secretbox_open_easy', 'file:///app/node_modules/sodium-native/index.js', [], 577),
    frame(9, 'writeGeneric', 'node:internal/stream_base_commons')
  ],
  startTime: 0,
  endTime: 200,
  // Sample i lasts until sample i + 1: node 3 for 10 µs, 5 for 20, 8 for 30, GC 40, idle 50, node 9 60.
  samples: [3, 5, 8, 6, 7, 9, 8],
  timeDeltas: [0, 10, 20, 30, 40, 50, 60]
}

t.test('self time by place, per request, idle left out', async (t) => {
  const report = analyseProfile(PROFILE, 'suite-read', 10, 25, ROOT)
  t.equal(report.variant, 'suite-read')
  t.equal(report.sampledPerRequest, 16, '160 µs sampled over 10 requests, idle not counted')
  t.same(report.places, [
    { place: 'node:stream_base_commons', perRequest: 6 },
    { place: 'GC', perRequest: 4 },
    { place: 'sodium-native', perRequest: 3 },
    { place: 'fastify-secure-https plugins/secure-session', perRequest: 2 },
    { place: 'fastify-secure-https plugins/hsts', perRequest: 1 }
  ])
})

t.test('inclusive time of the suite\'s functions stops at the hook continuation', async (t) => {
  const { functions } = analyseProfile(PROFILE, 'suite-read', 10, 25, ROOT)
  t.same(functions, [
    { name: 'open (fastify-secure-https plugins/secure-session:66)', perRequest: 5 },
    { name: 'crypto_secretbox_open_easy (sodium-native index.js:578)', perRequest: 3 },
    { name: 'hstsHeader (fastify-secure-https plugins/hsts:16)', perRequest: 1 }
  ], 'hstsHeader holds only its own 10 µs: the session code below `next` is not its cost')
})

t.test('the markdown puts variants side by side', async (t) => {
  const lines = profileMarkdown([analyseProfile(PROFILE, 'a', 10, 25, ROOT), analyseProfile(PROFILE, 'b', 20, 12.5, ROOT)], 2, 1)
  const text = lines.join('\n')
  t.match(text, /^\| place \| a \| b \|$/m)
  t.match(text, /^\| node:stream_base_commons \| 6\.0 \| 3\.0 \|$/m)
  t.match(text, /^\| other \(3 places\) \| 6\.0 \| 3\.0 \|$/m, 'places beyond the first two summed')
  t.match(text, /^\| \*\*sampled total\*\* \| \*\*16\.0\*\* \| \*\*8\.0\*\* \|$/m)
  t.match(text, /^\| process CPU \(all threads, cpuUsage\) \| 25\.0 \| 12\.5 \|$/m)
  t.match(text, /^\| `open \(fastify-secure-https plugins\/secure-session:66\)` \| 5\.0 \|$/m)
  t.notMatch(text, /crypto_secretbox_open_easy/, 'one function shown per variant')
})
