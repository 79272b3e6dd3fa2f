/**
 * The control socket of a live run, `<state-dir>/<ns>/control.sock`: while the run's deployment record exists,
 * `tezt-cloud agents exec` from another terminal asks the run itself to fan a command out on its agents, which
 * are already connected, instead of loading the whole CLI and reconnecting to every host.
 *
 * **Details**
 *
 * The protocol (newline-delimited JSON, one request per connection) is `AgentsControlProtocol`'s, shared with
 * the thin client, `packages/cli/src/AgentsExecClient.cjs`, which speaks it without loading `effect`.
 *
 * At most `maxConcurrent` commands run at once, over all connections. A client that disconnects interrupts its
 * commands, which kills their process trees on the agents (the `Runner` contract); so does one that ends its
 * side after the request (a half-close is a disconnect here: keep it open until the server ends). Only agent
 * names, argv, output lines, exit codes and error messages cross the socket, never a key or a token; the socket
 * is 0600.
 */
import { Cause, Effect, FiberSet, Semaphore } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import type * as Agent from "./Agent.ts"
import * as Protocol from "./AgentsControlProtocol.cjs"
import * as CloudError from "./CloudError.ts"
import { Ledger } from "./Ledger.ts"
import * as LineSocket from "./LineSocket.ts"
import type { Runner } from "./Runner.ts"

/** Where a run serves its control socket: next to its ledger, `<state-dir>/<ns>/control.sock`. */
export const socketFile = (ledgerFile: string): string => path.join(path.dirname(ledgerFile), Protocol.socketName)

/** Commands running at once through one control socket, whatever the number of clients and agents. */
export const maxConcurrent = 256

export type { Request, Response } from "./AgentsControlProtocol.cjs"

/**
 * The entries of `all` named in `names` (all of them when `names` is empty), in `all`'s order. An unknown name
 * is an `--agent` error naming the known ones; the CLI's cold path says the same.
 */
export const choose = <A>(
  all: ReadonlyArray<A>,
  nameOf: (a: A) => string,
  names: ReadonlyArray<string>
): Effect.Effect<ReadonlyArray<A>, CloudError.CloudError> => {
  const known = all.map(nameOf)
  const unknown = names.filter((n) => !known.includes(n))
  if (unknown.length > 0) {
    return Effect.fail(CloudError.config(
      "--agent",
      `no agent named ${unknown.join(", ")}; the run's agents are ${known.join(", ")}`
    ))
  }
  return Effect.succeed(names.length === 0 ? all : all.filter((a) => names.includes(nameOf(a))))
}

const messageOf = (cause: Cause.Cause<unknown>) => {
  const error = Cause.squash(cause)
  return error instanceof Error ? error.message : String(error)
}

/**
 * Serves `socketPath` for the current scope, running requests on `agents` (name and runner, in the run's
 * order). A socket file already there (a `kill -9`ed run's) is replaced; the socket is removed when the scope
 * closes, after the connections' commands are interrupted.
 *
 * @category constructors
 */
export const serve = Effect.fn("AgentsControl.serve")(function*(
  socketPath: string,
  agents: ReadonlyArray<readonly [string, Pick<Runner, "exec">]>
) {
  if (!Protocol.fitsSocketPath(socketPath)) {
    return yield* CloudError.state(
      socketPath,
      `cannot serve the control socket: the path is longer than ${Protocol.maxSocketPathBytes} bytes`
    )
  }
  const permits = yield* Semaphore.make(maxConcurrent)
  // Added before the server: its fibers are interrupted after the server stops accepting.
  const runFork = yield* FiberSet.makeRuntime()

  const handle = (socket: net.Socket) =>
    Effect.gen(function*() {
      const write = LineSocket.writer(socket)
      const send = (response: Protocol.Response) => write(Protocol.encode(response))
      const requestLine = yield* LineSocket.readLine(socket, Protocol.maxRequestBytes)
      if (requestLine === undefined) return
      const request = Protocol.decodeRequest(requestLine)
      if (typeof request === "string") return yield* send({ error: request })
      const chosen = yield* Effect.result(choose(agents, ([name]) => name, request.agents ?? []))
      if (chosen._tag === "Failure") return yield* send({ error: chosen.failure.message })
      yield* send({ agents: chosen.success.map(([name]) => name) })
      const [command, ...args] = request.argv
      yield* Effect.forEach(chosen.success, ([agent, runner]) =>
        permits.withPermits(1)(
          runner.exec(command!, args, { onLine: ({ line, stream }) => send({ agent, stream, line }) })
        ).pipe(
          Effect.matchCauseEffect({
            onSuccess: (result) => send({ agent, exitCode: result.exitCode }),
            onFailure: (cause) =>
              Cause.hasInterruptsOnly(cause) ? Effect.failCause(cause) : send({ agent, error: messageOf(cause) })
          })
        ), { concurrency: "unbounded", discard: true })
    }).pipe(
      // The client went away: its commands are interrupted, which kills them on the agents.
      Effect.raceFirst(LineSocket.gone(socket)),
      Effect.ensuring(Effect.sync(() => socket.end()))
    )

  yield* Effect.acquireRelease(
    Effect.callback<net.Server, CloudError.CloudError>((resume) => {
      const failed = (e: unknown) =>
        resume(Effect.fail(
          CloudError.state(socketPath, `cannot serve the control socket: ${CloudError.messageOf(e)}`, { cause: e })
        ))
      try {
        fs.mkdirSync(path.dirname(socketPath), { recursive: true })
        fs.rmSync(socketPath, { force: true })
      } catch (e) {
        return failed(e)
      }
      const server = net.createServer((socket) => {
        // A client that vanished makes writes fail; its `close` ends the request.
        socket.on("error", () => {})
        runFork(handle(socket))
      })
      server.once("error", failed)
      server.listen(socketPath, () => {
        server.off("error", failed)
        try {
          fs.chmodSync(socketPath, 0o600)
        } catch (e) {
          server.close()
          return failed(e)
        }
        resume(Effect.succeed(server))
      })
    }),
    (server) =>
      Effect.sync(() => {
        server.close()
        fs.rmSync(socketPath, { force: true })
      })
  )
})

/**
 * Serves the run's control socket next to its ledger, for the current scope: the same lifetime as its
 * deployment record. Nothing without a ledger on disk or without agents. A socket that cannot be served is a
 * warning, not a failure: `tezt-cloud agents` then reconnects to the agents, as without a socket.
 *
 * @category constructors
 */
export const serveRun = Effect.fn("AgentsControl.serveRun")(function*(agents: ReadonlyArray<Agent.Agent>) {
  const ledger = yield* Effect.serviceOption(Ledger)
  if (ledger._tag === "None" || ledger.value.file === ":memory:" || agents.length === 0) return
  yield* serve(socketFile(ledger.value.file), agents.map((agent) => [agent.name, agent] as const)).pipe(
    Effect.catch((e) => Effect.logWarning(`${e.message}; tezt-cloud agents will reconnect to the agents instead`))
  )
})
