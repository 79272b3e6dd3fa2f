/**
 * Core's `Runner` over an ssh `Connection`: an agent is a sandbox directory on the remote host, with its own
 * environment and port range, and every process started for it carries the marker variables
 * (`TEZT_CLOUD_NS`, `TEZT_CLOUD_AGENT`, `TEZT_CLOUD_EXEC`) that find its whole tree on the host, even after
 * `setsid` or a lost connection.
 *
 * **Details**
 *
 * - argv is single-quoted word by word: any string reaches the remote program unchanged.
 * - Each command runs as `setsid -w sh -c 'echo $$; exec "$@"'`: the first line of its stdout is its pid (and
 *   process group), which the runner strips from the output.
 * - Interrupting a command kills its remote tree (SIGTERM, then SIGKILL after the grace period) through another
 *   channel; a command cannot outlive its `exec`.
 * - Daemons are started detached (`setsid`, output appended to a log file) and return at once; they die with
 *   the scope that spawned them.
 * - Output is streamed line by line to `onLine` and kept in the result only up to `maxOutputBytes`.
 */
import { CloudError, CopyPolicy, type Daemon, OutputFlow, type RunEvents, Runner, Sandbox } from "@tezt-cloud/core"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { environmentPrefix, killScript } from "./internal/shell.ts"
import { type Command, commandLine, type Connection, quote } from "./SshClient.ts"

export interface Init extends Sandbox.Sandbox {
  readonly connection: Connection
  readonly events: RunEvents.RunEvents["Service"]
  readonly graceSeconds: number
  /** How much of each stream `exec` keeps in its result (the tail); everything still reaches `onLine`. */
  readonly maxOutputBytes?: number | undefined
}

/** Kills every process carrying one of the markers, with its group (SIGTERM, SIGKILL after the grace). */
export { killScript } from "./internal/shell.ts"

const validEnvKey = /^[A-Za-z_][A-Za-z0-9_]*$/

export const make = (init: Init): Runner.Runner => {
  const binaries = Sandbox.pathIn(init.home, init.binariesPath)
  const maxOutput = init.maxOutputBytes ?? 16 * 1024 * 1024
  const describe = (command: string, args: ReadonlyArray<string>) => [command, ...args].join(" ")
  const failed = (command: string, args: ReadonlyArray<string>) => (cause: unknown) =>
    CloudError.command(init.name, describe(command, args), CloudError.messageOf(cause), { cause })

  /** The command's directory and environment: the agent's own, then the command's. */
  const commandOf = (
    execId: string,
    argv: ReadonlyArray<string>,
    cwd: string | undefined,
    env: Record<string, string> | undefined
  ) =>
    Effect.suspend(() => {
      for (const key of Object.keys(env ?? {})) {
        if (!validEnvKey.test(key)) {
          return Effect.fail(CloudError.command(init.name, key, "not a valid environment variable name"))
        }
      }
      return Effect.succeed(
        {
          // Absolute paths the sandbox has are its own (`Sandbox.mapArgv`, done by a shell on the agent, only for a
          // command that names one: `true` or `octez-node run` costs no extra process).
          argv: argv.some(Sandbox.mayMap) ? ["sh", "-c", Sandbox.argvScript, "sh", ...argv] : argv,
          env: {
            ...Sandbox.environment(init, execId),
            ...env
          },
          cwd: cwd === undefined ? init.home : Sandbox.pathIn(init.home, cwd),
          pathPrefix: binaries
        } satisfies Command
      )
    })

  /** `cd DIR && exec env VARS…`, for shell lines (daemons). */
  const prefix = (execId: string, cwd: string | undefined, env: Record<string, string> | undefined) =>
    Effect.map(commandOf(execId, [], cwd, env), environmentPrefix)

  const killTree = (execId: string) =>
    init.connection.run(killScript(`TEZT_CLOUD_EXEC=${execId}`, init.graceSeconds)).pipe(Effect.ignore)

  // No span of its own: a scenario's command has `Agent.exec`'s, and a span per command here would double the
  // tracing work of every fan-out (`agents exec` on a live run) for a child span that says nothing more.
  const exec = Effect.fnUntraced(
    function*(command: string, args: ReadonlyArray<string>, options?: Runner.ExecOptions) {
      // A quiet command (a transfer) is no run event at all.
      const emit = options?.quiet === true ? () => Effect.void : init.events.emit
      yield* emit({ type: "exec", agent: init.name, command: describe(command, args) })
      const execId = crypto.randomUUID()
      const remote = yield* commandOf(execId, [command, ...args], options?.cwd, options?.env)
      // Lines wait for `onLine` and the event log; a slow consumer pauses the channel (`OutputFlow`).
      const flow = OutputFlow.make({
        maxOutputBytes: maxOutput,
        onLine: (item) =>
          emit({ type: "output", agent: init.name, stream: item.stream, line: item.line }).pipe(
            Effect.andThen(options?.onLine === undefined ? Effect.void : options.onLine(item))
          )
      })
      const exit = yield* flow.run(init.connection.execCommand(remote, flow.handlers)).pipe(
        Effect.onInterrupt(() => killTree(execId)),
        Effect.mapError(failed(command, args))
      )
      const pid = flow.pid()
      yield* emit({
        type: "exit",
        agent: init.name,
        command: describe(command, args),
        exitCode: exit.code,
        pid
      })
      if (pid === 0 && exit.code === 127) {
        // `setsid` itself was not found: the sandbox cannot work on this host.
        return yield* CloudError.command(
          init.name,
          describe(command, args),
          `the host has no setsid: ${flow.stderr().trim()}`
        )
      }
      return { exitCode: exit.code, stdout: flow.stdout(), stderr: flow.stderr(), pid } satisfies Runner.ExecResult
    }
  )

  const spawn = Effect.fn("SshRunner.spawn")(
    function*(name: string, command: string, args: ReadonlyArray<string>, options?: Runner.SpawnOptions) {
      const execId = crypto.randomUUID()
      const logFile = options?.logFile === undefined
        ? path.posix.join(init.home, "logs", `${name}.log`)
        : Sandbox.pathIn(init.home, options.logFile)
      const env = { ...options?.env, TEZT_CLOUD_LOG: logFile }
      // The log exists once `spawn` returns (the daemon may not have written to it yet).
      const start = yield* prefix(execId, options?.cwd, env)
      // A program that cannot start fails `spawn` with why (`Runner.programCheck`), before any daemon is started.
      const line = `mkdir -p ${quote(path.posix.dirname(logFile))} && : >>${quote(logFile)} && ` +
        `(${start} sh -c ${quote(Runner.programCheck)} sh ${quote(command)}) && (${start} ` +
        `setsid sh -c 'exec "$@" >>"$TEZT_CLOUD_LOG" 2>&1 </dev/null' sh ${
          commandLine(["sh", "-c", Sandbox.argvScript, "sh", command, ...args])
        } ` +
        `>/dev/null 2>&1 </dev/null & echo $!)`
      const started = yield* Effect.acquireRelease(
        init.connection.run(line).pipe(Effect.mapError(failed(command, args))),
        () => killTree(execId)
      )
      const pid = Number(started.stdout.trim())
      if (started.code !== 0 || !Number.isInteger(pid) || pid <= 0) {
        return yield* CloudError.command(
          init.name,
          describe(command, args),
          `cannot start: ${started.stderr.trim().split("\n").at(-1) ?? ""}`
        )
      }
      yield* init.events.emit({ type: "daemon-up", agent: init.name, name, pid })
      yield* Effect.addFinalizer(() => init.events.emit({ type: "daemon-down", agent: init.name, name }))
      return {
        name,
        agent: init.name,
        pid,
        logFile,
        isRunning: init.connection.run(`kill -0 ${pid} 2>/dev/null && ! grep -q '^State:.*Z' /proc/${pid}/status`).pipe(
          Effect.map((r) => r.code === 0),
          Effect.catch(() => Effect.succeed(false))
        ),
        stop: killTree(execId)
      } satisfies Daemon.Daemon
    }
  )

  const copier = CopyPolicy.make({
    agent: init.name,
    md5: (remote) =>
      init.connection.run(`f=${quote(Sandbox.pathIn(init.home, remote))}; [ -f "$f" ] || exit 3; md5sum < "$f"`).pipe(
        Effect.mapError((e) => CloudError.copy(init.name, remote, e.message, { cause: e })),
        Effect.flatMap((r) =>
          r.code === 3
            ? Effect.succeed(undefined)
            : r.code === 0
            ? Effect.succeed(r.stdout.slice(0, 32))
            : Effect.fail(CloudError.copy(init.name, remote, `md5sum failed: ${r.stderr.trim()}`))
        )
      ),
    put: (local, remote, mode) =>
      Effect.gen(function*() {
        // Written beside the destination, then renamed: a running binary is replaced, never truncated.
        const file = Sandbox.pathIn(init.home, remote)
        const partial = `${file}.tezt-cloud-${crypto.randomUUID().slice(0, 8)}`
        const written = yield* init.connection.run(
          `mkdir -p ${quote(path.posix.dirname(file))} && cat > ${quote(partial)} && chmod ${mode.toString(8)} ` +
            `${quote(partial)} && mv -f ${quote(partial)} ${quote(file)} || { rm -f ${quote(partial)}; exit 1; }`,
          fs.createReadStream(local, { highWaterMark: 256 * 1024 })
        ).pipe(Effect.mapError((e) => CloudError.copy(init.name, local, e.message, { cause: e })))
        if (written.code !== 0) return yield* CloudError.copy(init.name, local, written.stderr.trim())
      })
  }, { binariesPath: init.binariesPath, checkFileConsistency: init.checkFileConsistency })

  const copy = Effect.fn("SshRunner.copy")(function*(source: string, options?: Runner.CopyOptions) {
    const remote = yield* copier.copy(source, options)
    return Sandbox.pathIn(init.home, remote)
  })

  return { exec, spawn, copy }
}
