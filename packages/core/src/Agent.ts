/**
 * One agent of a run, as a scenario sees it: its name and configuration, its address, its port range and the
 * `Runner` that executes on it. Agents come from `Cloud.agents`, in the order the scenario asked for them.
 */
import { Clock, Effect, Scope } from "effect"
import type { AgentConfig } from "./AgentConfig.ts"
import * as Artifacts from "./Artifacts.ts"
import * as CloudError from "./CloudError.ts"
import type { Daemon } from "./Daemon.ts"
import * as Faketime from "./Faketime.ts"
import * as Fetch from "./Fetch.ts"
import type { CopyOptions, ExecOptions, ExecResult, Runner, SpawnOptions } from "./Runner.ts"
import * as Telemetry from "./Telemetry.ts"

export interface PortRange {
  /** The agent's first port (its sshd's, on backends reached by ssh). */
  readonly start: number
  /** The last port of the range, inclusive. */
  readonly end: number
}

export interface Agent {
  readonly name: string
  /** Position in the scenario's list (also the index of its port range). */
  readonly index: number
  readonly config: AgentConfig
  /** Address and port to reach it, when it is reached over the network. */
  readonly point: { readonly host: string; readonly port: number } | undefined
  readonly ports: PortRange
  /** A fresh port of the agent's range, strictly increasing from `ports.start + 1`. Fails when exhausted. */
  readonly nextAvailablePort: Effect.Effect<number, CloudError.CloudError>
  /** Where the agent's files go on this machine (under the run's artifacts dir). */
  readonly artifactsDir: string
  /** A human-usable command to reach the agent, shown by the website and `--list`. */
  readonly connect: string
  /**
   * What it takes to reach the agent again from another process (`tezt-cloud agents …` on a kept run): the
   * backend's name under `backend` and its own fields. No secret: keys are referred to by path.
   */
  readonly descriptor: Descriptor
  readonly runner: Runner
  /**
   * Runs `command` with `args` (an array, none when left out: `exec("true")`), no shell in between: its exit code,
   * output and pid.
   */
  exec(
    command: string,
    args?: ReadonlyArray<string>,
    options?: ExecOptions
  ): Effect.Effect<ExecResult, CloudError.CloudError>
  /** Like `exec`, but a non-zero exit is a `NonZeroExit` error; returns stdout. */
  run(
    command: string,
    args?: ReadonlyArray<string>,
    options?: ExecOptions
  ): Effect.Effect<string, CloudError.CloudError>
  spawn: Runner["spawn"]
  copy(source: string, options?: CopyOptions): Effect.Effect<string, CloudError.CloudError>
  /**
   * Copies a file or directory of the agent (a path as `exec` means it) to this machine, by default to
   * `<artifacts dir of the agent>/<basename>`; returns the local path. A directory is never merged into one that
   * exists. The agent needs `base64`, and `tar` for a directory (`Fetch`).
   */
  fetch(remotePath: string, localPath?: string): Effect.Effect<string, CloudError.CloudError>
  /**
   * Skews the clock of the commands and daemons started from now on by a libfaketime spec (`-10d`, `+2h`,
   * `@2030-01-01 00:00:00`), `undefined` for the real clock again (see `Faketime`). Fails, naming the package to
   * install, where the agent has no libfaketime.
   */
  setFaketime(spec: string | undefined): Effect.Effect<void, CloudError.CloudError>
  /** The log files of the daemons running on the agent (what `LogRotation` rotates), as paths on the agent. */
  readonly daemonLogs: Effect.Effect<ReadonlyArray<string>>
  /** The log files of every daemon started on the agent in this run, running or not, as paths on the agent. */
  readonly spawnedLogs: Effect.Effect<ReadonlyArray<string>>
}

export interface AgentInit {
  readonly index: number
  readonly config: AgentConfig
  readonly point: Agent["point"]
  readonly ports: PortRange
  readonly artifactsDir: string
  readonly connect: string
  readonly descriptor?: Descriptor | undefined
  readonly runner: Runner
  /** An agent without files (`TestCloud`'s): nothing of it is fetched into the artifacts dir. */
  readonly inMemory?: boolean | undefined
}

export type Descriptor = { readonly backend: string } & Record<string, string | number>

/** Builds an agent from what a backend provides. */
export const make = (init: AgentInit): Agent => {
  let next = init.ports.start
  const name = init.config.name
  // Every command and daemon of the agent goes through it, the scenario's as well as the run's own.
  const clock = Faketime.make(name, init.runner)
  // How many live daemons write each log file: a file is listed while one does.
  const logs = new Map<string, number>()
  const count = (file: string, by: number) =>
    Effect.sync(() => {
      const n = (logs.get(file) ?? 0) + by
      if (n > 0) logs.set(file, n)
      else logs.delete(file)
    })
  // The daemons spawned in one scope stop together when it closes, where the first of them was spawned: a daemon
  // that ignores SIGTERM holds the teardown for its grace period once, not once per daemon. Each daemon's own steps
  // (kill, then close its channel, …) keep their order, in a scope of its own.
  const together = new WeakMap<Scope.Scope, Scope.Closeable>()
  const inOwnScope = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.gen(function*() {
      const caller = yield* Effect.scope
      let daemons = together.get(caller)
      if (daemons === undefined) {
        daemons = yield* Scope.fork(caller, "parallel")
        together.set(caller, daemons)
      }
      return yield* Scope.provide(yield* Scope.fork(daemons, "sequential"))(effect)
    })
  const spawned = new Set<string>()
  const runner: Runner = {
    ...clock.runner,
    // Counted and timed here, so the run's own commands (through `agent.runner`) are too.
    exec: (command, args, options) =>
      Effect.flatMap(Clock.currentTimeMillis, (started) =>
        clock.runner.exec(command, args, options).pipe(
          Effect.ensuring(Effect.flatMap(Clock.currentTimeMillis, (now) => Telemetry.commandRan(now - started)))
        )),
    spawn: (daemon, command, args, options) =>
      inOwnScope(Effect.gen(function*() {
        let logFile: string | undefined
        // Before the daemon: its log is saved once it is stopped (`Artifacts`).
        if (init.inMemory !== true) {
          yield* Artifacts.saveDaemonLog(name, clock.runner, init.artifactsDir, daemon, () => logFile)
        }
        const d = yield* clock.runner.spawn(daemon, command, args, options)
        logFile = d.logFile
        if (init.inMemory !== true) spawned.add(d.logFile)
        yield* Effect.acquireRelease(count(d.logFile, 1), () => count(d.logFile, -1))
        // The daemon's life, until its scope closes, as a span of its own (the tool's own telemetry's timeline).
        yield* Effect.makeSpanScoped("Agent.daemon", { attributes: { agent: name, daemon, command } })
        return d
      }))
  }
  const nextAvailablePort = Effect.suspend(() => {
    if (next >= init.ports.end) {
      return Effect.fail(CloudError.agents(
        `agent ${name}: its ${init.ports.end - init.ports.start + 1} ports are all taken; raise --ports-per-vm`
      ))
    }
    next += 1
    return Effect.succeed(next)
  })
  const exec = Effect.fn("Agent.exec")(
    function*(command: string, args: ReadonlyArray<string> = [], options?: ExecOptions) {
      yield* Effect.annotateCurrentSpan({ agent: name, command })
      yield* checkArgs(name, "exec", command, args)
      const result = yield* runner.exec(command, args, options)
      yield* Effect.annotateCurrentSpan({ exitCode: result.exitCode })
      return result
    }
  )
  const run = Effect.fn("Agent.run")(
    function*(command: string, args: ReadonlyArray<string> = [], options?: ExecOptions) {
      yield* Effect.annotateCurrentSpan({ agent: name, command })
      const result = yield* exec(command, args, options)
      if (result.exitCode !== 0) {
        return yield* new CloudError.CloudError({
          reason: new CloudError.NonZeroExit({
            agent: name,
            command: [command, ...args].join(" "),
            exitCode: result.exitCode,
            stderr: result.stderr
          })
        })
      }
      return result.stdout
    }
  )
  const spawn = Effect.fn("Agent.spawn")(
    function*(daemon: string, command: string, args: ReadonlyArray<string>, options?: SpawnOptions) {
      yield* Effect.annotateCurrentSpan({ agent: name, daemon })
      yield* checkArgs(name, "spawn", command, args)
      return yield* runner.spawn(daemon, command, args, options)
    }
  ) as (
    daemon: string,
    command: string,
    args: ReadonlyArray<string>,
    options?: SpawnOptions
  ) => ReturnType<Runner["spawn"]>
  const copy = Effect.fn("Agent.copy")(function*(source: string, options?: CopyOptions) {
    yield* Effect.annotateCurrentSpan({ agent: name, source })
    return yield* runner.copy(source, options)
  })
  const fetch = Effect.fn("Agent.fetch")(function*(remotePath: string, localPath?: string) {
    yield* Effect.annotateCurrentSpan({ agent: name, remotePath })
    const local = localPath ?? Fetch.defaultLocal(init.artifactsDir, remotePath)
    return (yield* Fetch.fetch(name, clock.runner, remotePath, local)).local
  })
  return {
    name,
    index: init.index,
    config: init.config,
    point: init.point,
    ports: init.ports,
    nextAvailablePort,
    artifactsDir: init.artifactsDir,
    connect: init.connect,
    descriptor: init.descriptor ?? { backend: "none" },
    runner,
    exec,
    run,
    spawn,
    copy,
    fetch,
    setFaketime: clock.set,
    daemonLogs: Effect.sync(() => [...logs.keys()]),
    spawnedLogs: Effect.sync(() => [...spawned])
  }
}

/**
 * Refuses arguments that are not an array of strings (a scenario in plain JavaScript, or cast, may pass one string:
 * `run("ls", "-l")`), naming the call and its fix, before anything runs.
 */
const checkArgs = (agent: string, call: string, command: string, args: unknown) =>
  Array.isArray(args) && args.every((a) => typeof a === "string")
    ? Effect.void
    : Effect.fail(CloudError.command(
      agent,
      String(command),
      `the arguments of ${call} must be an array of strings, not ${JSON.stringify(args) ?? typeof args}` +
        (typeof args === "string" ? `: give [${JSON.stringify(args)}]` : "")
    ))

/** The daemon type, re-exported for scenario authors. */
export type { Daemon }
