/**
 * A number of seconds too large for a JavaScript number is refused saying so, naming the variable,
 * not as "not a whole number" (it is one, written in digits).
 */
import t from 'tap'
import { loadConfig } from '../index.ts'
import { configErrorOf } from './helpers/config.ts'

t.test('seconds: digits beyond 2^53 - 1 are too large, not "not whole"', async (t) => {
  for (const [name, raw] of [['HSTS_MAX_AGE', '99999999999999999999999'], ['SESSION_MAX_AGE', '9007199254740993'], ['SESSION_IDLE_TIMEOUT', '1' + '0'.repeat(400)]] as const) {
    const message = configErrorOf(() => loadConfig({ [name]: raw })).message
    t.match(message, new RegExp(`${name}: ".*" is too large; write a whole number of seconds up to 9007199254740991, e\\.g\\. 86400`), name)
    t.notMatch(message, /whole number of seconds$/m, `${name}: not the message for a fraction`)
  }
  const hsts = loadConfig({ HSTS_MAX_AGE: '9007199254740991' }).hsts
  t.equal(hsts !== false && hsts.maxAge, 9007199254740991, 'the largest safe integer is still read')
})
