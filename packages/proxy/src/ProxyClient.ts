/**
 * The local side of the control API (`ProxyProtocol`): each call opens a stream to the server's Unix socket on
 * the proxy through the ssh connection the CLI already holds (streamlocal forwarding, `SshTunnel`), sends one
 * request and reads the answers. Nothing listens on the network for it, on either side.
 */
import { CloudError } from "@tezt-cloud/core"
import * as LineProtocol from "@tezt-cloud/core/AgentsControlProtocol"
import { type SshClient, SshTunnel } from "@tezt-cloud/ssh"
import { Effect } from "effect"
import type { Duplex } from "node:stream"
import * as Protocol from "./ProxyProtocol.ts"

/** Answers waiting in the queue past which the stream is paused (the server then waits: backpressure). */
const highWater = 256

/** Pulls a stream's lines one at a time; `undefined` once it has ended. */
const lineReader = (stream: Duplex) => {
  const reader = LineProtocol.makeLineReader()
  const pending: Array<string> = []
  let ended = false
  let wake: (() => void) | undefined
  stream.on("data", (chunk: Buffer) => {
    pending.push(...reader.push(chunk))
    if (pending.length > highWater) stream.pause()
    wake?.()
  })
  const end = () => {
    ended = true
    wake?.()
  }
  stream.once("end", end)
  stream.once("close", end)
  stream.on("error", end)
  // A stream that ended before these listeners (the connection dropped as it was opened) emits nothing more: a
  // reader waiting for its events would wait with nothing left to wake the process, which then exits mid-run.
  if (stream.destroyed || stream.readableEnded) ended = true
  return Effect.callback<string | undefined>((resume) => {
    const attempt = () => {
      const line = pending.shift()
      if (line !== undefined) {
        if (pending.length <= highWater / 2) stream.resume()
        resume(Effect.succeed(line))
        return true
      }
      if (ended) resume(Effect.succeed(undefined))
      return ended
    }
    if (attempt()) return
    // Cleared before the attempt: a resumed reader may wait again at once, and its waiter must stay.
    const waiter = () => {
      wake = undefined
      if (!attempt()) wake = waiter
    }
    wake = waiter
    return Effect.sync(() => void (wake = undefined))
  })
}

export interface ProxyClient {
  readonly status: Effect.Effect<Protocol.Status, CloudError.CloudError>
  /**
   * The log from byte `from`: `onLines` gets each batch and the offset after it, in order. Ends with `End` (the
   * run has ended and every line was given) or, without `follow`, `Caught` at the log's current end.
   */
  logs(
    from: number,
    follow: boolean,
    onLines: (lines: ReadonlyArray<string>, next: number) => Effect.Effect<void>
  ): Effect.Effect<
    { readonly _tag: "End"; readonly exitCode: number } | {
      readonly _tag: "Caught"
      readonly next: number
    },
    CloudError.CloudError
  >
  input(line: string): Effect.Effect<void, CloudError.CloudError>
  readonly interrupt: Effect.Effect<void, CloudError.CloudError>
  /** Interrupts the run if it still runs, waits for its end; the server then goes with its files. */
  readonly stop: Effect.Effect<void, CloudError.CloudError>
}

/** A client of the server at `socket` on the host of `connection`; `what` names it in errors. */
export const make = (connection: SshClient.Connection, socket: string, what: string): ProxyClient => {
  const failure = (message: string) => CloudError.service(what, message)
  /** Sends `request` on a new stream and hands each answer to `onResponse` until it returns a result. */
  const call = <A>(
    request: Protocol.Request,
    onResponse: (response: Protocol.Response) => Effect.Effect<A | undefined, CloudError.CloudError>
  ) =>
    Effect.scoped(Effect.gen(function*() {
      const stream = yield* SshTunnel.open(connection, SshTunnel.socket(socket)).pipe(
        Effect.mapError((e) => failure(`the proxy's server does not answer: ${e.message}`))
      )
      const next = lineReader(stream)
      stream.write(Protocol.encodeRequest(request))
      for (;;) {
        const line = yield* next
        if (line === undefined) return yield* failure(`the proxy's server closed the connection during ${request._tag}`)
        const response = Protocol.decodeResponse(line)
        if (response === undefined) return yield* failure(`the proxy's server answered ${JSON.stringify(line)}`)
        if (response._tag === "Failed") return yield* failure(response.message)
        const result = yield* onResponse(response)
        if (result !== undefined) return result
      }
    }))
  const done = (request: Protocol.Request) =>
    call(request, (r) => Effect.succeed(r._tag === "Done" ? true as const : undefined)).pipe(Effect.asVoid)
  return {
    status: call({ _tag: "Status" }, (r) => Effect.succeed(r._tag === "Status" ? r.status : undefined)),
    logs: (from, follow, onLines) =>
      call<{ readonly _tag: "End"; readonly exitCode: number } | { readonly _tag: "Caught"; readonly next: number }>({
        _tag: "Logs",
        from,
        follow
      }, (r) => {
        switch (r._tag) {
          case "Lines":
            return onLines(r.lines, r.next).pipe(Effect.as(undefined))
          case "End":
            return Effect.succeed({ _tag: "End", exitCode: r.exitCode } as const)
          case "Caught":
            return Effect.succeed({ _tag: "Caught", next: r.next } as const)
          default:
            return Effect.succeed(undefined)
        }
      }),
    input: (line) => done({ _tag: "Input", line }),
    interrupt: done({ _tag: "Interrupt" }),
    stop: done({ _tag: "Stop" })
  }
}
