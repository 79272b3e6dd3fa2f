/**
 * The server of a proxy: the supervised service that runs one namespace's orchestrator on the proxy, detached
 * from every ssh session (a laptop that sleeps, a connection that drops, a local CLI killed with `kill -9` leave
 * it running), keeps its log, and answers the control API (`ProxyProtocol`) on a Unix socket of mode 0600.
 *
 * **Details**
 *
 * - The orchestrator is the `tezt-cloud` CLI of the shipped workspace, started once, with `--json`: its stdout
 *   is the run's events, appended to the log as they come, its stderr goes to the log as `console` lines.
 * - Its standard input stays open for the run's life: `Input` lines reach it (`--keep-alive` waits for one).
 * - `Interrupt` sends it SIGINT, which is a Ctrl+C to the CLI: the graceful teardown (a second one forces).
 * - `Stop` interrupts a run still going, waits for its end, answers, then the server removes the namespace's
 *   directory (workspace, state, log, secrets) and exits. A server killed instead takes its orchestrator along:
 *   its output closes, which the CLI treats as a Ctrl+C.
 * - Secrets: the orchestrator reads them from the 0600 file named by `$TEZT_CLOUD_SECRETS_FILE`; they are in no
 *   command line and no environment.
 */
import * as LineProtocol from "@tezt-cloud/core/AgentsControlProtocol"
import * as LineSocket from "@tezt-cloud/core/LineSocket"
import { Deferred, Effect, FiberSet, Schema, type Scope } from "effect"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as Protocol from "./ProxyProtocol.ts"

/** What the local side writes to `server.json` before starting the server. */
export const Config = Schema.Struct({
  namespace: Schema.String,
  /** The Node executable of the bundle. */
  node: Schema.String,
  /** The orchestrator's arguments after `node` (the CLI's entry point first). */
  argv: Schema.Array(Schema.String),
  cwd: Schema.String,
  /** Its whole environment (no secret). */
  env: Schema.Record(Schema.String, Schema.String),
  /** How long its output may stay open once it has exited (default `outputGraceMillis`). */
  outputGraceMillis: Schema.optionalKey(Schema.Int)
})
export type Config = typeof Config.Type

export const encodeConfig = (config: Config): string => JSON.stringify(Schema.encodeSync(Config)(config), null, 2)

/** Largest batch of log bytes in one `Lines` answer (a longer line is sent whole). */
const batchBytes = 256 * 1024

/**
 * How long an orchestrator's output may stay open once it has exited before its run is said to have ended: what
 * it printed last is read by then, and a process it left behind holding its output cannot keep the run going.
 */
const outputGraceMillis = 10_000

/** Signal numbers, for the exit code of an orchestrator a signal ended. */
const signalNumber = (signal: NodeJS.Signals | null) => (signal === null ? 0 : os.constants.signals[signal] ?? 0)

/** The run's log: appended by the server only, read from any line start, followed. */
const makeLog = (file: string) => {
  const append = fs.openSync(file, "a", 0o600)
  const read = fs.openSync(file, "r")
  let size = fs.fstatSync(append).size
  let ended = false
  const waiters = new Set<() => void>()
  const wake = () => {
    // A woken reader may wait again at once, adding itself while the set is being gone through: only the
    // waiters of now are woken, each once.
    const now = Array.from(waiters)
    waiters.clear()
    for (const w of now) w()
  }
  return {
    size: () => size,
    ended: () => ended,
    end: () => {
      ended = true
      wake()
    },
    append: (line: string) => {
      const bytes = Buffer.from(line.replaceAll("\n", " ") + "\n")
      fs.writeSync(append, bytes)
      size += bytes.length
      wake()
    },
    /** Whether `offset` is where a line starts (or the end). */
    lineStart: (offset: number) => {
      if (offset === 0 || offset === size) return true
      if (offset < 0 || offset > size) return false
      const byte = Buffer.alloc(1)
      fs.readSync(read, byte, 0, 1, offset - 1)
      return byte[0] === 0x0a
    },
    /** The whole lines from `from` (at least one when there is one), and the offset after them. */
    lines: (from: number) => {
      let length = Math.min(size - from, batchBytes)
      for (;;) {
        const buffer = Buffer.alloc(length)
        const got = fs.readSync(read, buffer, 0, length, from)
        const cut = buffer.subarray(0, got).lastIndexOf(0x0a)
        if (cut >= 0) {
          return { lines: buffer.subarray(0, cut).toString("utf8").split("\n"), next: from + cut + 1 }
        }
        if (from + length >= size) return { lines: [], next: from }
        length = Math.min(size - from, length * 2)
      }
    },
    /** Waits until the log grows past `offset` or the run ends. */
    changed: (offset: number) =>
      Effect.callback<void>((resume) => {
        if (size > offset || ended) return resume(Effect.void)
        const waiter = () => {
          waiters.delete(waiter)
          resume(Effect.void)
        }
        waiters.add(waiter)
        return Effect.sync(() => void waiters.delete(waiter))
      }),
    close: () => {
      fs.closeSync(append)
      fs.closeSync(read)
    }
  }
}
type Log = ReturnType<typeof makeLog>

/** Feeds a stream's lines to `onLine`, the last one even without its newline. */
const eachLine = (stream: NodeJS.ReadableStream, onLine: (line: string) => void) => {
  const reader = LineProtocol.makeLineReader()
  stream.on("data", (chunk: Buffer) => {
    for (const line of reader.push(chunk)) onLine(line)
  })
  stream.on("end", () => {
    for (const line of reader.push("\n")) if (line !== "") onLine(line)
  })
}

/** Whether an orchestrator stdout line is one of its events (`--json`): a JSON object with a `type`. */
const isEvent = (line: string) => {
  try {
    const value = JSON.parse(line) as unknown
    return typeof value === "object" && value !== null && typeof (value as { type?: unknown }).type === "string"
  } catch {
    return false
  }
}

/** Starts the orchestrator, its output going to `log`. */
const startOrchestrator = (config: Config, log: Log) => {
  const proc = child.spawn(config.node, config.argv, {
    cwd: config.cwd,
    env: config.env,
    stdio: ["pipe", "pipe", "pipe"]
  })
  const startedAt = new Date().toISOString()
  let exitCode: number | undefined
  let interrupts = 0
  proc.stdin.on("error", () => {})
  eachLine(proc.stdout, (line) => log.append(isEvent(line) ? line : Protocol.consoleLine("stdout", line)))
  eachLine(proc.stderr, (line) => log.append(Protocol.consoleLine("stderr", line)))
  proc.on("error", (error) => {
    log.append(Protocol.consoleLine("stderr", `tezt-cloud proxy: ${error.message}`))
    // It could not start: it has ended (with the shell's code for a command that cannot run).
    if (proc.pid === undefined && exitCode === undefined) {
      exitCode = 127
      log.end()
    }
  })
  const ended = (code: number | null, signal: NodeJS.Signals | null) => {
    if (exitCode !== undefined) return
    exitCode = code ?? 128 + signalNumber(signal)
    log.end()
  }
  // `close` comes after the output streams are done: every line is in the log when the run is said to be over.
  proc.on("close", ended)
  // But a process the orchestrator left behind with its output would hold `close` back for ever: once the
  // orchestrator has exited, its output is read for a while, then closed, and the run has ended.
  proc.on("exit", (code, signal) => {
    setTimeout(() => {
      proc.stdout.destroy()
      proc.stderr.destroy()
      ended(code, signal)
    }, config.outputGraceMillis ?? outputGraceMillis).unref()
  })
  return {
    status: (): Protocol.Status => ({
      namespace: config.namespace,
      state: exitCode === undefined ? "running" : "ended",
      pid: proc.pid ?? 0,
      startedAt,
      argv: [config.node, ...config.argv],
      ...(exitCode === undefined ? {} : { exitCode }),
      interrupts,
      logBytes: log.size()
    }),
    running: () => exitCode === undefined,
    exitCode: () => exitCode ?? 0,
    interrupt: () => {
      interrupts += 1
      proc.kill("SIGINT")
    },
    input: (line: string) => void proc.stdin.write(line + "\n")
  }
}
type Orchestrator = ReturnType<typeof startOrchestrator>

const sendLog = (
  send: (response: Protocol.Response) => Effect.Effect<void>,
  log: Log,
  orchestrator: Orchestrator,
  from: number,
  follow: boolean
) =>
  Effect.gen(function*() {
    if (!log.lineStart(from)) {
      return yield* send({ _tag: "Failed", message: `${from} is not the start of a line of the log` })
    }
    let offset = from
    for (;;) {
      if (offset < log.size()) {
        const batch = log.lines(offset)
        offset = batch.next
        yield* send({ _tag: "Lines", lines: batch.lines, next: offset })
      } else if (log.ended()) {
        return yield* send({ _tag: "End", exitCode: orchestrator.exitCode() })
      } else if (!follow) {
        return yield* send({ _tag: "Caught", next: offset })
      } else {
        yield* log.changed(offset)
      }
    }
  })

/**
 * The variable naming a descriptor the server writes `listening` to, then closes, once it answers on its socket:
 * whoever starts it reads that descriptor to wait for the server (its end without the line: the server died).
 */
export const readyFdVariable = "TEZT_CLOUD_PROXY_READY_FD"

/** What the server writes to its ready descriptor. */
export const readyLine = "listening"

/** Says `listening` on the descriptor `$TEZT_CLOUD_PROXY_READY_FD` names, if any, and closes it. */
export const announceReady = (env: Record<string, string | undefined> = process.env): Effect.Effect<void> =>
  Effect.suspend(() => {
    const fd = Number(env[readyFdVariable])
    if (!Number.isSafeInteger(fd) || fd < 3) return Effect.void
    return Effect.try(() => void fs.writeSync(fd, `${readyLine}\n`)).pipe(
      Effect.ignore,
      Effect.ensuring(Effect.try(() => fs.closeSync(fd)).pipe(Effect.ignore))
    )
  })

/**
 * Serves the namespace directory `dir` (see `ProxyProtocol.layout`): starts the orchestrator of its
 * `server.json`, answers the control socket (`ready` runs once it does), and returns once a `Stop` was answered.
 */
export const serve = Effect.fn("ProxyServer.serve")(function*(
  files: Protocol.Layout,
  ready: Effect.Effect<void> = Effect.void
) {
  const config = Schema.decodeUnknownSync(Schema.fromJsonString(Config))(fs.readFileSync(files.config, "utf8"))
  const log = yield* Effect.acquireRelease(Effect.sync(() => makeLog(files.log)), (l) => Effect.sync(l.close))
  const orchestrator = startOrchestrator(config, log)
  const stopped = yield* Deferred.make<void>()
  let stopping = false
  const runFork = yield* FiberSet.makeRuntime()

  const handle = (socket: net.Socket) =>
    Effect.gen(function*() {
      const write = LineSocket.writer(socket)
      const send = (response: Protocol.Response) => write(Protocol.encodeResponse(response))
      const line = yield* LineSocket.readLine(socket, 64 * 1024)
      if (line === undefined) return
      const request = Protocol.decodeRequest(line)
      if (request === undefined) return yield* send({ _tag: "Failed", message: "malformed request" })
      switch (request._tag) {
        case "Status":
          return yield* send({ _tag: "Status", status: orchestrator.status() })
        case "Logs":
          return yield* sendLog(send, log, orchestrator, request.from, request.follow)
        case "Input":
          if (!orchestrator.running()) return yield* send({ _tag: "Failed", message: "the run has ended" })
          orchestrator.input(request.line)
          return yield* send({ _tag: "Done" })
        case "Interrupt":
          if (!orchestrator.running()) return yield* send({ _tag: "Failed", message: "the run has ended" })
          orchestrator.interrupt()
          return yield* send({ _tag: "Done" })
        case "Stop":
          if (orchestrator.running() && !stopping) orchestrator.interrupt()
          stopping = true
          yield* log.changed(Number.MAX_SAFE_INTEGER)
          yield* send({ _tag: "Done" })
          // The answer is flushed before the server goes (bounded: a client may be gone already).
          yield* Effect.callback<void>((resume) => void socket.end(() => resume(Effect.void))).pipe(
            Effect.timeout("2 seconds"),
            Effect.ignore
          )
          return yield* Deferred.succeed(stopped, undefined)
      }
    }).pipe(
      Effect.raceFirst(LineSocket.gone(socket)),
      Effect.ensuring(Effect.sync(() => socket.end()))
    )

  yield* Effect.acquireRelease(
    Effect.callback<net.Server, Error>((resume) => {
      fs.rmSync(files.socket, { force: true })
      const server = net.createServer((socket) => {
        socket.on("error", () => {})
        runFork(handle(socket))
      })
      server.once("error", (e) => resume(Effect.fail(e)))
      server.listen(files.socket, () => {
        fs.chmodSync(files.socket, 0o600)
        resume(Effect.succeed(server))
      })
    }),
    (server) =>
      Effect.sync(() => {
        server.close()
        fs.rmSync(files.socket, { force: true })
      })
  ).pipe(Effect.orDie)
  yield* ready
  yield* Deferred.await(stopped)
})

/**
 * `serve`, saying so on the ready descriptor once it answers (`announceReady`), then the namespace's directory
 * goes; for the server's executable (`serve.ts`).
 */
export const main = (dir: string): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const files = Protocol.layoutOf(dir)
    yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(files.dir, { recursive: true, force: true })))
    yield* serve(files, announceReady())
  })
