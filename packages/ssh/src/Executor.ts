/**
 * The persistent executor of an ssh connection: a small Perl program (internal/executor.pl; perl-base is
 * Essential on Debian and Ubuntu, so stock hosts and our images have it) started once over one ssh session, that
 * runs many commands at once as frames on its stdin/stdout. A command then costs a fork and an exec on the host
 * instead of an ssh session (~0.1 s of sshd CPU each).
 *
 * **Details**
 *
 * - Started on first use; `exec` answers `None` when the host cannot run it (no perl, a broken perl), and the
 *   connection then opens a channel per command, as before.
 * - Another program speaking the same frames can be started instead (`launch`): the local executor of process
 *   sandboxes runs a native one when it is built (`@tezt-cloud/localhost`'s LocalExecutor).
 * - Per-command flow control (`p`/`r` frames): a slow consumer pauses its own command, never the others.
 * - stdin is sent in acknowledged chunks: at most one chunk per command waits in the executor.
 * - When the executor is lost (killed, or the connection dropped), running commands fail with a clear error,
 *   their trees are killed through a plain channel, and the next command starts a new executor.
 * - Frames from the host are checked (internal/frames.ts): a corrupt or hostile one (unknown type, a length
 *   past its type's bound, a pid or exit code that is not one) stops that executor as if it were lost; before
 *   it is ready, the host is treated as one without an executor. Nothing is allocated for a length not checked.
 * - A command with a NUL byte (in argv, a variable, the directory, a shell line) is refused before anything is
 *   sent (`CommandInvalid`): the frame's fields are NUL-separated.
 * - The executor exits when its session closes, killing the trees of the commands still running: nothing
 *   outlives the orchestrator's connection.
 */
import { Telemetry } from "@tezt-cloud/core"
import { Effect, FiberSet, Metric, Option, Semaphore } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as Frames from "./internal/frames.ts"
import { quote } from "./internal/shell.ts"
import { type Command, type ExecExit, type ExecHandlers, invalid } from "./SshCommand.ts"
import * as SshError from "./SshError.ts"

const script = fs.readFileSync(new URL("./internal/executor.pl", import.meta.url))

/**
 * The Perl executor's start: a command line that reads exactly `$ARGV[0]` bytes of Perl from stdin and runs them
 * with the session id as `$ARGV[0]`, and the script, its first input.
 */
export const perl = (sessionId: string): Launch => ({
  commandLine:
    `exec perl -e 'my($n,$s)=(shift,"");while(length($s)<$n){my $r=sysread(STDIN,$s,$n-length($s),length($s));` +
    `exit 3 unless $r}eval $s;die $@ if $@' ${script.length} ${sessionId}`,
  input: script
})

/** An executor that is a program on the host (`file`): started with the session id as its argument, no input. */
export const program = (file: string) => (sessionId: string): Launch => ({
  commandLine: `exec ${quote(file)} ${sessionId}`
})

/** How an executor starts: the session's command line, and what goes first on its input (if anything). */
export interface Launch {
  readonly commandLine: string
  readonly input?: Buffer | undefined
}

/** A raw session (an exec channel with its stdin open), as the connection gives it. */
export interface Session {
  readonly write: (data: Buffer) => boolean
  readonly close: () => void
}

export interface SessionHandlers {
  readonly onStdout: (chunk: Buffer) => void
  readonly onStderr: (chunk: Buffer) => void
  readonly onClose: (exit: ExecExit | undefined) => void
}

export interface Options {
  /** `user@host:port`, for messages. */
  readonly label: string
  readonly open: (commandLine: string, handlers: SessionHandlers) => Effect.Effect<Session, SshError.SshError>
  /** How the executor of session `sessionId` starts (the frame protocol of internal/executor.pl); `perl` by default. */
  readonly launch?: ((sessionId: string) => Launch) | undefined
  /** Kills the trees carrying these markers, over a plain channel (after the executor was lost). */
  readonly cleanUp: (markers: ReadonlyArray<string>) => Effect.Effect<void>
  /** Commands running at once through the executor (each costs three pipes on the host). */
  readonly maxConcurrent?: number | undefined
  readonly startTimeoutMillis?: number | undefined
}

export interface Executor {
  /**
   * Runs a shell command line, or a `Command` (argv, no shell, in a session of its own), through the executor;
   * `None` when this host has none (use a channel instead).
   */
  exec(
    what: string | Command,
    handlers: ExecHandlers
  ): Effect.Effect<Option.Option<ExecExit>, SshError.SshError>
  /** The executor's pid on the host, while one runs. */
  readonly pid: () => number | undefined
}

interface Request {
  readonly onPid?: ((pid: number) => void) | undefined
  readonly onStdout: (chunk: Buffer) => void
  readonly onStderr: (chunk: Buffer) => void
  readonly done: (exit: Effect.Effect<ExecExit, SshError.SshError>) => void
  acked?: (() => void) | undefined
}

interface Live {
  readonly session: Session
  readonly sessionId: string
  readonly pid: number
  readonly requests: Map<number, Request>
}

/** A `Command` as the `c` frame's fields: cwd, PATH prefix, variable count, variables, argv. */
const commandFields = (command: Command) => {
  const env = Object.entries(command.env).map(([k, v]) => `${k}=${v}`)
  return [command.cwd, command.pathPrefix ?? "", String(env.length), ...env, ...command.argv]
}

/** Largest stdin chunk sent before waiting for its acknowledgement. */
const stdinChunk = 256 * 1024

/** An executor for one connection, owned by the current scope. */
export const make = Effect.fn("Executor.make")(function*(options: Options) {
  const fail = (reason: SshError.Reason) => new SshError.SshError({ host: options.label, reason })
  const permits = yield* Semaphore.make(options.maxConcurrent ?? 128)
  const starting = yield* Semaphore.make(1)
  const background = yield* FiberSet.runtime(yield* FiberSet.make())()
  let live: Live | undefined
  let unavailable: string | undefined
  let startedBefore = false
  let nextId = 1

  /** Why the executor's session ended: its exit (none: the connection dropped) and the start of its stderr. */
  const ended = (exit: ExecExit | undefined, stderr: string) => {
    const detail = stderr.trim() === "" ? "" : `: ${stderr.trim().split("\n")[0]}`
    return exit === undefined
      ? "the connection dropped during the command"
      : `the executor on the host stopped during the command (${
        exit.signal === undefined ? `exit code ${exit.code}` : `killed by SIG${exit.signal}`
      }${detail}); the next command starts a new one`
  }

  /** Everything running on a lost executor fails with `message`, and its trees are killed over a plain channel. */
  const lost = (current: Live, message: string) => {
    if (live === current) live = undefined
    const error = fail(new SshError.Disconnected({ message }))
    const running = [...current.requests.keys()].map((id) => `TEZT_CLOUD_XREQ=${current.sessionId}-${id}`)
    for (const request of current.requests.values()) request.done(Effect.fail(error))
    current.requests.clear()
    if (running.length > 0) background(options.cleanUp(running))
  }

  const start = Effect.gen(function*() {
    const sessionId = crypto.randomBytes(6).toString("hex")
    const requests = new Map<number, Request>()
    let stderr = ""
    let current: Live | undefined
    let onReady: ((pid: number) => void) | undefined
    let onEarlyClose: ((exit: ExecExit | undefined) => void) | undefined
    let onEarlyCorrupt: ((reason: string) => void) | undefined
    /** A frame that is not one, or one that comes when it cannot: this executor is not to be trusted any more. */
    const corrupt = (reason: string) => {
      const message = `the executor on the host sent ${reason}: it is stopped, the next command starts a new one`
      if (current === undefined) return onEarlyCorrupt?.(reason)
      const lostOne = current
      lost(lostOne, message)
      lostOne.session.close()
    }
    const parse = Frames.parser((type, id, payload) => {
      if (type === "R") {
        if (current !== undefined || id !== 0) return corrupt("a ready frame out of turn")
        return onReady?.(Number(payload.toString()))
      }
      const request = requests.get(id)
      if (request === undefined) return
      switch (type) {
        case "S":
          return request.onPid?.(Number(payload.toString()))
        case "O":
          return request.onStdout(payload)
        case "E":
          return request.onStderr(payload)
        case "A":
          return request.acked?.()
        case "X":
          requests.delete(id)
          return request.done(Effect.succeed({ code: Number(payload.toString()), signal: undefined }))
        case "F":
          requests.delete(id)
          return request.done(Effect.fail(fail(new SshError.ChannelFailed({ message: payload.toString() }))))
      }
    }, corrupt)
    const launch = (options.launch ?? perl)(sessionId)
    const session = yield* options.open(launch.commandLine, {
      onStdout: parse,
      onStderr: (chunk) => {
        stderr = (stderr + chunk.toString()).slice(-4096)
      },
      onClose: (exit) => {
        if (current !== undefined) lost(current, ended(exit, stderr))
        else onEarlyClose?.(exit)
      }
    })
    const ready = yield* Effect.callback<number, string>((resume) => {
      onReady = (pid) => resume(Effect.succeed(pid))
      onEarlyClose = (exit) =>
        resume(Effect.fail(
          stderr.trim().split("\n")[0] || (exit === undefined ? "its session closed" : `exit ${exit.code}`)
        ))
      onEarlyCorrupt = (reason) => resume(Effect.fail(`it sent ${reason}`))
      if (launch.input !== undefined) session.write(launch.input)
    }).pipe(
      Effect.timeoutOrElse({
        duration: options.startTimeoutMillis ?? 10_000,
        orElse: () => Effect.fail("it did not start in time")
      }),
      Effect.tapError(() => Effect.sync(() => session.close())),
      Effect.result
    )
    if (ready._tag === "Failure") return ready.failure
    current = { session, sessionId, pid: ready.success, requests }
    return current
  })

  /** The running executor, started when there is none (one start at a time); `undefined` when the host cannot run one. */
  const startOrGet = starting.withPermits(1)(Effect.suspend(() => {
    if (live !== undefined) return Effect.succeed<Live | undefined>(live)
    if (unavailable !== undefined) return Effect.succeed(undefined)
    return start.pipe(Effect.flatMap((started) => {
      if (typeof started !== "string") {
        // One started after one was lost: a restart (the tool's own metrics).
        const restart = startedBefore
        startedBefore = true
        live = started
        return Effect.as(restart ? Metric.update(Telemetry.executorRestarts, 1) : Effect.void, started)
      }
      unavailable = started
      return Effect.as(
        Effect.logWarning(
          `${options.label}: no persistent executor (${started}); each command opens an ssh session instead`
        ),
        undefined
      )
    }))
  }))
  /** `startOrGet` without its lock when an executor runs: every command but the first of each executor. */
  const ensure = Effect.suspend(() => live === undefined ? startOrGet : Effect.succeed<Live | undefined>(live))

  const exec = (what: string | Command, handlers: ExecHandlers) => {
    // A NUL would end a field of the frame early: the rest of the value would run as something else.
    const refused = invalid(what)
    if (refused !== undefined) return Effect.fail(fail(new SshError.CommandInvalid({ message: refused })))
    return Effect.flatMap(ensure, (executor) => {
      if (executor === undefined) return Effect.succeed(Option.none<ExecExit>())
      return permits.withPermits(1)(Effect.callback<ExecExit, SshError.SshError>((resume) => {
        const id = nextId++
        let finished = false
        const request: Request = {
          onPid: handlers.onPid,
          onStdout: handlers.onStdout,
          onStderr: handlers.onStderr,
          done: (exit) => {
            if (finished) return
            finished = true
            request.acked?.()
            resume(exit)
          }
        }
        executor.requests.set(id, request)
        const send = (type: string, payload?: Buffer | string) => {
          if (!finished) executor.session.write(Frames.encode(type, id, payload))
        }
        const flags = Buffer.from([
          (handlers.stdin === undefined ? 0 : 1) | (typeof what !== "string" && what.killGroupAtExit === true ? 2 : 0)
        ])
        if (typeof what === "string") send("x", Buffer.concat([flags, Buffer.from(what)]))
        else send("c", Buffer.concat([flags, Buffer.from(commandFields(what).join("\0"))]))
        handlers.onFlow?.({ pause: () => send("p"), resume: () => send("r") })
        if (handlers.stdin !== undefined) {
          const stdin = handlers.stdin
          const pump = async () => {
            for await (const chunk of stdin) {
              for (let at = 0; at < chunk.length; at += stdinChunk) {
                if (finished) return
                const acked = new Promise<void>((resolve) => (request.acked = resolve))
                send("i", Buffer.from(chunk.subarray(at, at + stdinChunk)))
                await acked
              }
            }
            send("e")
          }
          pump().catch((error: unknown) => {
            // The local side of stdin failed: the command must not wait for more.
            send("k", "0")
            request.done(Effect.fail(
              fail(new SshError.ChannelFailed({ message: `stdin: ${error instanceof Error ? error.message : error}` }))
            ))
          })
        }
        return Effect.sync(() => {
          // Interrupted: the command's tree is killed; what it still prints is dropped.
          if (finished) return
          send("k", "3")
          finished = true
          executor.requests.set(id, { onStdout: () => {}, onStderr: () => {}, done: () => {} })
        })
      })).pipe(Effect.map(Option.some))
    })
  }

  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      live?.session.close()
      live = undefined
    })
  )

  return { exec, pid: () => live?.pid } satisfies Executor
})
