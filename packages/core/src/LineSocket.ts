/**
 * One request line in, answer lines out, on a server's side of a stream socket: what the run's control socket
 * (`AgentsControl`) and the proxy's server speak, newline-delimited JSON, one request per connection.
 *
 * **Details**
 *
 * - The client going away is its socket's end or close: a half-close after the request counts as going away
 *   (keep the writing side open until the server ends the connection).
 * - Writing waits while the socket's buffer is full: a slow client slows its answers down (backpressure), never
 *   the server's memory.
 */
import { Effect } from "effect"
import type * as net from "node:net"
import * as Protocol from "./AgentsControlProtocol.cjs"

/** The first line the client sends; `undefined` when it goes away (or sends more than `maxBytes`) first. */
export const readLine = (socket: net.Socket, maxBytes: number) =>
  Effect.callback<string | undefined>((resume) => {
    const reader = Protocol.makeLineReader()
    const stop = () => {
      socket.off("data", onData)
      socket.off("end", onEnd)
      socket.off("close", onEnd)
    }
    const onData = (chunk: Buffer) => {
      const [line] = reader.push(chunk)
      if (line !== undefined || reader.pending() > maxBytes) {
        stop()
        resume(Effect.succeed(line))
      }
    }
    const onEnd = () => {
      stop()
      resume(Effect.succeed(undefined))
    }
    socket.on("data", onData)
    socket.once("end", onEnd)
    socket.once("close", onEnd)
    return Effect.sync(stop)
  })

/** Succeeds when the client has gone (end of its side, or the socket closed). */
export const gone = (socket: net.Socket) =>
  Effect.callback<void>((resume) => {
    const done = () => resume(Effect.void)
    if (socket.destroyed || socket.readableEnded) return done()
    socket.once("end", done)
    socket.once("close", done)
    // Input after the request is ignored, but must be read for its end to be seen.
    socket.resume()
    return Effect.sync(() => {
      socket.off("end", done)
      socket.off("close", done)
    })
  })

/**
 * Writes text to the socket, waiting while its buffer is full. The lines written in one turn of the event loop
 * (the answers of every command that ended in it) leave in one system call: the socket is corked until the
 * loop's next check phase.
 */
export const writer = (socket: net.Socket) => {
  let waiting: Array<() => void> = []
  let corked = false
  socket.on("drain", () => {
    const wake = waiting
    waiting = []
    for (const f of wake) f()
  })
  const uncork = () => {
    corked = false
    if (!socket.destroyed) socket.uncork()
  }
  return (text: string) =>
    Effect.callback<void>((resume) => {
      if (!socket.destroyed && !corked) {
        corked = true
        socket.cork()
        setImmediate(uncork)
      }
      if (socket.destroyed || socket.write(text)) return resume(Effect.void)
      const wake = () => resume(Effect.void)
      waiting.push(wake)
      return Effect.sync(() => {
        waiting = waiting.filter((f) => f !== wake)
      })
    })
}
