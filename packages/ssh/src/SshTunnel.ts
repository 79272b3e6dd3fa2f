/**
 * Streams to the far side of an ssh connection, on the connection it already holds (no second login): to a Unix
 * socket of the host (OpenSSH's streamlocal forwarding) or to a TCP address as the host sees it, and a local
 * listener that forwards each of its connections there (`ssh -L`), for services that listen on the host's
 * loopback only.
 *
 * **Details**
 *
 * - A stream belongs to the scope that opened it; the listener and the streams of its connections too.
 * - The connection reconnects after a drop (see `SshClient`): a listener's next connection gets a new stream.
 * - The host's sshd must allow forwarding (`AllowStreamLocalForwarding`, `AllowTcpForwarding`: yes by default).
 */
import { Effect, FiberSet, type Scope } from "effect"
import * as net from "node:net"
import type { Duplex } from "node:stream"
import type * as SshClient from "./SshClient.ts"
import * as SshError from "./SshError.ts"

/** Where a stream goes on the host. */
export type Destination =
  | { readonly _tag: "Socket"; readonly path: string }
  | { readonly _tag: "Tcp"; readonly host: string; readonly port: number }

export const socket = (path: string): Destination => ({ _tag: "Socket", path })
export const tcp = (host: string, port: number): Destination => ({ _tag: "Tcp", host, port })

/** The destination, for messages. */
export const describe = (destination: Destination): string =>
  destination._tag === "Socket" ? destination.path : `${destination.host}:${destination.port}`

/** A stream to `destination` on the host, destroyed when the current scope closes. */
export const open = Effect.fn("SshTunnel.open")(function*(
  connection: SshClient.Connection,
  destination: Destination
): Effect.fn.Return<Duplex, SshError.SshError, Scope.Scope> {
  const client = yield* connection.client
  return yield* Effect.acquireRelease(
    Effect.callback<Duplex, SshError.SshError>((resume) => {
      let cancelled = false
      const done = (error: Error | undefined, stream: Duplex) => {
        if (cancelled) return stream?.destroy()
        if (error) {
          return resume(Effect.fail(
            new SshError.SshError({
              host: connection.label,
              reason: new SshError.ChannelFailed({
                message: `cannot open a stream to ${describe(destination)}: ${error.message}`
              })
            })
          ))
        }
        resume(Effect.succeed(stream))
      }
      if (destination._tag === "Socket") client.openssh_forwardOutStreamLocal(destination.path, done)
      else client.forwardOut("127.0.0.1", 0, destination.host, destination.port, done)
      return Effect.sync(() => void (cancelled = true))
    }),
    (stream) => Effect.sync(() => stream.destroy())
  )
})

/** A local listener of `listen`. */
export interface Listener {
  /** The port it listens on, on 127.0.0.1 (the one asked for, or the one the system gave for 0). */
  readonly port: number
}

/**
 * Listens on `127.0.0.1:port` (0: any free port) for the current scope; each connection is forwarded to
 * `destination` on the host over its own stream. Fails when the port is taken.
 */
export const listen = Effect.fn("SshTunnel.listen")(function*(
  connection: SshClient.Connection,
  destination: Destination,
  port: number
): Effect.fn.Return<Listener, SshError.SshError, Scope.Scope> {
  const runFork = yield* FiberSet.makeRuntime()
  const forward = (local: net.Socket) =>
    Effect.scoped(
      Effect.gen(function*() {
        const remote = yield* open(connection, destination)
        yield* Effect.callback<void>((resume) => {
          const end = () => resume(Effect.void)
          local.pipe(remote).pipe(local)
          local.once("close", end)
          remote.once("close", end)
          local.on("error", end)
          remote.on("error", end)
        })
      })
    ).pipe(
      Effect.ignore,
      Effect.ensuring(Effect.sync(() => local.destroy()))
    )
  const server = yield* Effect.acquireRelease(
    Effect.callback<net.Server, SshError.SshError>((resume) => {
      const listening = net.createServer((local) => {
        local.on("error", () => {})
        runFork(forward(local))
      })
      listening.once("error", (error) =>
        resume(Effect.fail(
          new SshError.SshError({
            host: connection.label,
            reason: new SshError.ChannelFailed({
              message: `cannot listen on 127.0.0.1:${port} for ${describe(destination)}: ${error.message}`
            })
          })
        )))
      listening.listen(port, "127.0.0.1", () => resume(Effect.succeed(listening)))
    }),
    (l) => Effect.sync(() => l.close())
  )
  return { port: (server.address() as net.AddressInfo).port }
})
