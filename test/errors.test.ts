import { readFileSync } from 'node:fs'
import t from 'tap'
import { errorCodes } from '../errors.ts'

t.test('every error code is documented in docs/errors.md, and only those', async (t) => {
  const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8')
  const documented = [...doc.matchAll(/^\| `(ERR_SECURE_HTTPS_[A-Z_]+)` \|/gm)].map((m) => m[1])
  t.same([...documented].sort(), [...errorCodes].sort())
})
