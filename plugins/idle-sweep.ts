/**
 * The listener's `connectionTimeout`, kept off the request path. Node's own socket timeout (what
 * Fastify's `connectionTimeout` option sets) re-arms a timer on every read and every write, and the
 * HTTP server moves it between the keep-alive and the request timeout on every request: about 2,400
 * instructions of an anonymous request over TLS, 3,000 of a session write (docs/benchmarks.md). The
 * sweep below costs nothing per request: each connection is remembered once, when it opens, and a
 * timer looks at them all a few times per timeout, closing one whose byte counts (read and written,
 * on the TCP socket, so TLS and HTTP/2 alike) have not moved for the timeout.
 *
 * The same connections are cut as by Node's timer: one idle that long, and one whose client stopped
 * reading a response (Node's timer, too, sees a write handed to the kernel in one piece as one
 * event). A connection is closed no sooner than `timeout` after its bytes last moved, and at most
 * two periods of the sweep later (a quarter of the timeout each, at most 5 s): the sweep notes a
 * movement when it next looks, and closes on the first look at least `timeout` after that.
 */
import type { Server, Socket } from 'node:net'

/** How often the sweep looks at the connections, for a timeout of `timeout` ms. @internal */
export function sweepPeriod (timeout: number): number {
  return Math.min(Math.max(Math.ceil(timeout / 4), 10), 5_000)
}

/** What the sweep remembers of a connection: its byte count when last seen to move, and when. */
interface Seen {
  moved: number
  since: number
}

/**
 * A running sweep; it stops by itself when the server has closed and its last connection has ended
 * (the server's 'close' event). `stop()` clears its timer and forgets the connections (they stay
 * open). @internal
 */
export interface IdleSweep {
  /** Connections being watched. */
  readonly size: number
  stop (): void
}

/**
 * Closes every connection of `server` whose bytes have not moved for `timeout` ms. The timer is
 * unref'd (it never keeps the process alive) and starts with the first connection. @internal
 */
export function sweepIdleConnections (server: Server, timeout: number): IdleSweep {
  const seen = new Map<Socket, Seen>()
  const period = sweepPeriod(timeout)
  let timer: NodeJS.Timeout | null = null
  let stopped = false

  function forget (this: Socket): void {
    seen.delete(this)
  }

  function sweep (): void {
    const now = performance.now()
    for (const [socket, entry] of seen) {
      const moved = socket.bytesRead + socket.bytesWritten
      if (moved !== entry.moved) {
        entry.moved = moved
        entry.since = now
      } else if (now - entry.since >= timeout) {
        seen.delete(socket)
        socket.destroy()
      }
    }
  }

  function watch (socket: Socket): void {
    if (stopped) return
    seen.set(socket, { moved: socket.bytesRead + socket.bytesWritten, since: performance.now() })
    socket.once('close', forget)
    if (timer === null) {
      timer = setInterval(sweep, period)
      timer.unref()
    }
  }

  server.on('connection', watch)
  const sweeper: IdleSweep = {
    get size () { return seen.size },
    stop () {
      stopped = true
      server.off('connection', watch)
      if (timer !== null) clearInterval(timer)
      timer = null
      for (const socket of seen.keys()) socket.off('close', forget)
      seen.clear()
    }
  }
  server.once('close', () => { sweeper.stop() })
  return sweeper
}
