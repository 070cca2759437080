/**
 * tick-shape.ts: importing the package keeps one nextTick entry alive, so that the object literal
 * nextTick builds its entries with keeps one shape through full garbage collections instead of
 * turning megamorphic (docs/benchmarks.md, "The nextTick literal"). The state of the literal is
 * read from V8's own feedback (%DebugPrint, in a child process started with
 * --allow-natives-syntax); the control, without the package, shows that three full collections
 * with no entry queued do turn it megamorphic on this Node.js, so the check can fail. The children
 * compile on the main thread (--no-concurrent-recompilation): a compile job running on another
 * thread holds the maps it reads, and whether one is running when gc() is called is a matter of
 * timing.
 */
import { spawn } from 'node:child_process'
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import t, { type Test } from 'tap'
import { keptTickEntry } from '../tick-shape.ts'
import { tempDir } from './helpers/app.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

interface Feedback {
  /** The keys of nextTick's entry literal whose feedback is monomorphic, and megamorphic. */
  monomorphic: number
  megamorphic: number
}

/**
 * In a fresh process: queues entries, optionally imports the built package first, runs `collections`
 * full collections with nothing queued, queues entries again, and reads nextTick's feedback.
 */
async function feedbackAfter (t: Test, collections: number, importPackage: boolean): Promise<Feedback> {
  const script = `const drain = () => new Promise((resolve) => setImmediate(resolve));
const burst = async () => { for (let i = 0; i < 2000; i++) process.nextTick(() => {}); await drain() };
${importPackage ? `await import(${JSON.stringify(pathToFileURL(join(ROOT, 'dist', 'index.js')).href)});` : ''}
await burst();
for (let i = 0; i < ${collections}; i++) globalThis.gc();
await burst();
%DebugPrint(process.nextTick);
`
  const dir = tempDir('secure-https-tick-', t)
  const file = join(dir, 'feedback.mjs')
  writeFileSync(file, script)
  // V8 prints to the C library's stdout: into a file, since through a pipe Node.js 22 can lose
  // its tail at exit. Started through `env -i`: under coverage, tap adds its coverage settings to
  // the environment of every process a test spawns, and V8's coverage mode changes the very
  // feedback read here (the literal is megamorphic from the start).
  const output = join(dir, 'feedback.txt')
  const fd = openSync(output, 'w')
  const child = spawn('env', ['-i', `PATH=${process.env.PATH ?? ''}`, process.execPath, '--allow-natives-syntax', '--expose-gc', '--no-concurrent-recompilation', file], {
    cwd: ROOT,
    stdio: ['ignore', fd, 'pipe']
  })
  closeSync(fd)
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  if (code !== 0) throw new Error(`the child process failed (${code}):\n${stderr}`)
  const stdout = readFileSync(output, 'utf8')
  const count = (state: string): number => stdout.split('\n').filter((line) => line.includes(`DefineKeyedOwnPropertyInLiteral ${state}`)).length
  return { monomorphic: count('MONOMORPHIC'), megamorphic: count('MEGAMORPHIC') }
}

t.test('the entry kept is a nextTick entry: its callback, the async ids under symbol keys', async (t) => {
  await new Promise((resolve) => setImmediate(resolve))
  const entry = keptTickEntry() as { callback?: unknown } | undefined
  t.type(entry, 'object', 'kept once the tick queued on import has run')
  t.type(entry?.callback, 'function')
  t.ok(entry !== undefined && Object.getOwnPropertySymbols(entry).length >= 2, 'with the computed keys of the literal')
})

t.test('without the package, full collections with no entry queued turn the literal megamorphic', async (t) => {
  const fresh = await feedbackAfter(t, 0, false)
  t.ok(fresh.monomorphic >= 4, `nextTick builds its entries with an object literal of computed keys (${fresh.monomorphic} keys), each monomorphic at first`)
  t.equal(fresh.megamorphic, 0)
  const collected = await feedbackAfter(t, 3, false)
  t.ok(collected.megamorphic >= 3, `after three full collections ${collected.megamorphic} of its keys are megamorphic (V8 keeps unused maps through two)`)
})

t.test('with the package imported, the literal stays monomorphic through full collections', async (t) => {
  for (const collections of [3, 8]) {
    const kept = await feedbackAfter(t, collections, true)
    t.equal(kept.megamorphic, 0, `no key megamorphic after ${collections} full collections`)
    t.ok(kept.monomorphic >= 4, `${kept.monomorphic} keys monomorphic`)
  }
})
