/**
 * Clients that hold a listener's connection: one that never finishes its headers, one whose body
 * never ends. Each resolves when the server closes the connection, or rejects after `cap` ms.
 */
import { connect } from 'node:net'

/** Sends `head` (a request cut inside its headers) and nothing more; resolves with the ms until the server closed the socket. */
export function partialRequest (port: number, head: string, cap: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const socket = connect(port, '127.0.0.1', () => socket.write(head))
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`the server kept a socket with unfinished headers open for ${cap} ms`))
    }, cap)
    socket.on('data', () => {})
    socket.once('error', () => {})
    socket.once('close', () => {
      clearTimeout(timer)
      resolve(Date.now() - started)
    })
  })
}

/** The response head the server sent, and the ms until it closed the connection. */
export interface EndlessBodyOutcome { head: string, closedAfter: number, sent: number }

/**
 * Sends `head`, then `chunk(n)` after chunk for as long as the server reads them; resolves with the
 * response head and when the server closed the connection.
 */
export function endlessBody (port: number, head: string, chunk: (n: number) => Buffer, cap: number): Promise<EndlessBodyOutcome> {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    let response = ''
    let sent = 0
    let open = true
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(head)
      const pump = (): void => {
        // Until the socket is full ('drain' calls again) or closed.
        for (;;) {
          if (!open || !socket.write(chunk(sent++))) return
        }
      }
      socket.on('drain', pump)
      pump()
    })
    const timer = setTimeout(() => {
      open = false
      socket.destroy()
      reject(new Error(`the connection was still read after ${cap} ms (${sent} chunks); response: ${JSON.stringify(response)}`))
    }, cap)
    socket.on('data', (data: Buffer) => { response += data.toString('latin1') })
    socket.once('error', () => {})
    socket.once('close', () => {
      open = false
      clearTimeout(timer)
      resolve({ head: response.split('\r\n\r\n')[0] ?? '', closedAfter: Date.now() - started, sent })
    })
  })
}
