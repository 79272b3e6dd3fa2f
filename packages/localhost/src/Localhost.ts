/**
 * The embedded default backend: each agent is a process sandbox on this machine, with its own home directory,
 * environment, port range and process groups. No Docker, no ssh, nothing to install.
 *
 * **Details**
 *
 * Sandbox: `<state-dir>/<ns>/agents/<agent>/` is the agent's `HOME` and working directory; absolute paths a
 * scenario copies to (e.g. the binaries path `/tmp/tezt-runners`) live under its `fs/` directory, and the copied
 * binaries directory is first on the agent's `PATH`. Every process started for the agent carries
 * `TEZT_CLOUD_NS`, `TEZT_CLOUD_AGENT` and `TEZT_CLOUD_EXEC` in its environment, so its whole tree can be found
 * and killed, even after `setsid` or a `kill -9` of the orchestrator (`cleanUp`).
 *
 * At scale: at most `Limits.commands` commands run at once across the agents (each holds two pipes), the
 * provisioning loop (`Provision`) bounds deploys and teardowns, and concurrent kills share their passes over
 * /proc.
 *
 * **Gotchas**
 *
 * A sandbox is not a security boundary: agents run as the current user and share the machine's network.
 */
import {
  type Agent,
  Backend,
  CloudError,
  CopyPolicy,
  InheritedEnv,
  Ledger,
  Limits,
  LoopbackNetwork,
  OutputFlow,
  OutputLines,
  OutputTail,
  Provision,
  RunEvents,
  Runner,
  Sandbox
} from "@tezt-cloud/core"
import type * as Executor from "@tezt-cloud/ssh/Executor"
import { Duration, Effect, Option, Schedule, Semaphore, Stream } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as ProcessTree from "./internal/processTree.ts"
import * as LocalExecutor from "./LocalExecutor.ts"

/** What this backend reads of the run's configuration: only what the provisioning loop does. */
export const Config = Provision.Config
export type Config = typeof Config.Type

export interface Options {
  /** The state dir (ledger and sandboxes live under `<stateDir>/<ns>`). */
  readonly stateDir: string
  readonly config: Config
  /** The run's artifacts dir; each agent gets `<artifactsDir>/<agent>`. */
  readonly artifactsDir: string
  /** How long a killed process tree gets between SIGTERM and SIGKILL. */
  readonly killGrace?: Duration.Input | undefined
  /** How much of each stream `exec` keeps in its result (the tail; default 16 MiB); `onLine` still gets it all. */
  readonly maxOutputBytes?: number | undefined
  /**
   * `false`: the orchestrator spawns each command itself, without the run's executor (`LocalExecutor`); a program
   * (`perl`, `native`): that executor; default: the native one when it is built, else Perl.
   */
  readonly executor?: boolean | LocalExecutor.Program | undefined
}

/** Where the sandboxes of a namespace live. */
export const sandboxesDir = (stateDir: string, namespace: string) =>
  path.join(Ledger.namespaceDir(stateDir, namespace), "agents")

const defaultMaxOutputBytes = 16 * 1024 * 1024

/** The backend's name in the CLI's list, and in its agents' descriptors. */
const backendId = "localhost"

/** Deployment of process-sandbox agents. */
export const layer = (options: Options) =>
  Provision.layer(options, ({ events, ledger, limits }) =>
    Effect.gen(function*() {
      const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
      // Shared by every agent of the backend: each running command holds a process and two pipes.
      const commands = yield* Semaphore.make(limits.commands)
      const { config } = options
      const graceMillis = Duration.toMillis(Duration.fromInputUnsafe(options.killGrace ?? "3 seconds"))
      const maxOutputBytes = options.maxOutputBytes ?? defaultMaxOutputBytes
      const baseEnv = InheritedEnv.inherited()
      // One finder for the backend's kills: those asked for together share a pass over /proc.
      const find = ProcessTree.makeFinder()
      const dir = sandboxesDir(options.stateDir, config.namespace)
      const homeOf = (slot: Provision.Slot) => path.join(dir, slot.name)

      return Provision.provisioner({
        backend: "localhost/process",
        // Runs after every sandbox is gone (the deployment's scope closes after its agents'): no empty `agents/`
        // is left either.
        // The deployment's commands are forked by one small process, not by the orchestrator (`LocalExecutor`),
        // owned by the deployment's scope like its agents.
        prepare: () =>
          Effect.addFinalizer(() => Effect.sync(() => removeIfEmpty(dir))).pipe(
            Effect.andThen(
              options.executor === false
                ? Effect.succeed(undefined)
                : LocalExecutor.make({
                  namespace: config.namespace,
                  env: baseEnv,
                  ledger,
                  graceMillis,
                  program: options.executor === true ? undefined : options.executor
                })
            )
          ),
        record: (_, slot) => ({
          id: `sandbox:${slot.name}`,
          kind: "sandbox",
          data: { agent: slot.name, path: homeOf(slot), marker: slot.sandbox(homeOf(slot)).marker }
        }),
        create: (_, slot) =>
          Effect.try({
            try: () => {
              const home = homeOf(slot)
              fs.rmSync(home, { recursive: true, force: true })
              for (const sub of ["logs", "fs"]) fs.mkdirSync(path.join(home, sub), { recursive: true })
              return slot.sandbox(home)
            },
            catch: (e) =>
              CloudError.deploy(slot.name, `cannot create its sandbox ${homeOf(slot)}: ${CloudError.messageOf(e)}`, {
                cause: e
              })
          }),
        ready: (executor, __, sandbox) =>
          Effect.succeed({
            point: undefined,
            connect:
              `cd ${sandbox.home} && env TEZT_CLOUD_NS=${sandbox.namespace} TEZT_CLOUD_AGENT=${sandbox.marker} ` +
              `HOME=${sandbox.home} $SHELL`,
            descriptor: Sandbox.descriptor(backendId, sandbox),
            runner: makeRunner({
              spawner,
              ledger,
              events,
              ...sandbox,
              graceMillis,
              commands,
              maxOutputBytes,
              baseEnv,
              find,
              executor
            })
          }),
        destroy: (_, __, sandbox) =>
          killMarked(find, "TEZT_CLOUD_AGENT", sandbox.marker, graceMillis).pipe(
            Effect.andThen(Effect.try({
              try: () => fs.rmSync(sandbox.home, { recursive: true, force: true }),
              catch: (e) =>
                CloudError.state(sandbox.home, `cannot remove the sandbox: ${CloudError.messageOf(e)}`, { cause: e })
            }))
          ),
        network: (agents, random) =>
          LoopbackNetwork.make({ namespace: config.namespace, where: "local process sandboxes", random, agents })
      })
    }))

interface RunnerInit extends Sandbox.Sandbox {
  readonly spawner: ChildProcessSpawner.ChildProcessSpawner["Service"]
  readonly ledger: Ledger.Ledger["Service"]
  readonly events: RunEvents.RunEvents["Service"]
  /** How long a killed process tree gets between SIGTERM and SIGKILL. */
  readonly graceMillis: number
  /** Bounds the commands running at once (shared by the backend's agents). */
  readonly commands: Semaphore.Semaphore
  readonly maxOutputBytes: number
  /**
   * What every process of the agent inherits of the orchestrator's environment (`InheritedEnv`: what a program
   * needs to run, never the run's secrets nor the user's tokens), copied once: reading `process.env` whole costs
   * about a millisecond, which 1000 commands would pay each.
   */
  readonly baseEnv: Readonly<Record<string, string | undefined>>
  /** Finds a tree's processes; shared by the runners of a backend, so that kills share their passes over /proc. */
  readonly find: ProcessTree.Find
  /** The run's executor, which forks the commands of `exec`; without one, they are spawned from here. */
  readonly executor: Executor.Executor | undefined
}

const makeRunner = (init: RunnerInit): Runner.Runner => {
  const binaries = Sandbox.pathIn(init.home, init.binariesPath)
  const environment = (execId: string, extra: Record<string, string> | undefined) => ({
    ...init.baseEnv,
    ...Sandbox.environment(init, execId),
    PATH: `${binaries}:${init.baseEnv.PATH ?? "/usr/bin:/bin"}`,
    ...extra
  })
  const describeCommand = (command: string, args: ReadonlyArray<string>) => [command, ...args].join(" ")
  /** How a command's events are emitted: not at all for a `quiet` one. */
  const emitFor = (options: Runner.ExecOptions | undefined) =>
    options?.quiet === true ? () => Effect.void : init.events.emit
  /** A command that could not be started or followed; `context` says what was being done. */
  const failed = (command: string, args: ReadonlyArray<string>) => (cause: unknown, context?: string) =>
    CloudError.command(
      init.name,
      describeCommand(command, args),
      context === undefined ? CloudError.messageOf(cause) : `${context}: ${CloudError.messageOf(cause)}`,
      { cause }
    )

  /**
   * Spawns in the current scope, recorded in the ledger; killing the scope kills the whole tree. Also returns
   * `killTree`, which kills it now (by its marker, so descendants that left the process group go too).
   */
  const start = (command: string, args: ReadonlyArray<string>, options: {
    readonly env: Record<string, string> | undefined
    readonly cwd: string | undefined
    readonly stdout: "pipe" | "ignore"
  }) =>
    Effect.gen(function*() {
      const execId = crypto.randomUUID()
      // Absolute paths the sandbox has are its own (`Sandbox.mapArgv`): what `copy` wrote there.
      const [program, ...argv] = Sandbox.mapArgv(init.home, [command, ...args], fs.existsSync)
      const handle = yield* init.spawner.spawn(ChildProcess.make(program!, argv, {
        cwd: options.cwd === undefined ? init.home : Sandbox.pathIn(init.home, options.cwd),
        env: environment(execId, options.env),
        extendEnv: false,
        stdin: "ignore",
        stdout: options.stdout,
        stderr: options.stdout,
        forceKillAfter: Duration.millis(init.graceMillis)
      })).pipe(Effect.mapError(failed(command, args)))
      const id = `process:${init.name}:${execId}`
      yield* init.ledger.acquire({ id, kind: "process", data: { agent: init.name, pid: handle.pid, exec: execId } })
      // Runs before the spawner's own release (scopes close in reverse): it also reaches descendants that left
      // the process group. Once it is done the handle is unref'd, which tells the spawner there is nothing left
      // to wait for: its own wait would otherwise count zombies (orphans that a non-reaping PID 1 never
      // collects) as live members of the group and hold the teardown for its whole kill timeout.
      const killTree = killMarked(init.find, "TEZT_CLOUD_EXEC", execId, init.graceMillis)
      yield* Effect.addFinalizer(() =>
        killTree.pipe(
          Effect.andThen(handle.unref),
          Effect.andThen(init.ledger.release(id)),
          Effect.ignore
        )
      )
      return { handle, killTree }
    })

  /**
   * `exec` through the run's executor: the same marker environment as `start`, the output streamed back with
   * flow control (`OutputFlow`); `None` when this machine cannot run the executor.
   */
  const execThrough = (
    executor: Executor.Executor,
    command: string,
    args: ReadonlyArray<string>,
    options: Runner.ExecOptions | undefined
  ) =>
    Effect.gen(function*() {
      const emit = emitFor(options)
      const execId = crypto.randomUUID()
      // No ledger record of its own: the command is a child of the executor, which is recorded, and carries the
      // namespace's marker like everything of the run (two synced ledger writes per command would cost more than
      // the command). What is left of its process group when it exits (a child it put in the background) is
      // killed with the group by the executor, without a pass over /proc (`killGroupAtExit`); an interrupted
      // command's whole tree is killed by the executor, by marker; a leftover that left the group goes with its
      // agent.
      const flow = OutputFlow.make({
        maxOutputBytes: init.maxOutputBytes,
        onLine: (line) =>
          emit({ type: "output", agent: init.name, stream: line.stream, line: line.line }).pipe(
            Effect.andThen(options?.onLine === undefined ? Effect.void : options.onLine(line))
          )
      })
      const cwd = options?.cwd === undefined ? init.home : Sandbox.pathIn(init.home, options.cwd)
      const exit = yield* flow.run(executor.exec({
        // Absolute paths the sandbox has are its own (`Sandbox.mapArgv`), as for a command spawned from here.
        argv: Sandbox.mapArgv(init.home, [command, ...args], fs.existsSync),
        env: { ...Sandbox.environment(init, execId), ...options?.env },
        cwd,
        pathPrefix: binaries,
        killGroupAtExit: true
      }, flow.handlers)).pipe(Effect.mapError(failed(command, args)))
      if (Option.isNone(exit)) return Option.none<Runner.ExecResult>()
      yield* emit({
        type: "exit",
        agent: init.name,
        command: describeCommand(command, args),
        exitCode: exit.value.code,
        pid: flow.pid()
      })
      return Option.some(
        {
          exitCode: exit.value.code,
          stdout: flow.stdout(),
          stderr: flow.stderr(),
          pid: flow.pid()
        } satisfies Runner.ExecResult
      )
    })

  // No span of its own, as `SshRunner.exec`: a scenario's command has `Agent.exec`'s, and a second span per
  // command would add tracing work to every command of a fan-out for a child span that says nothing more.
  const exec = Effect.fnUntraced(
    function*(command: string, args: ReadonlyArray<string>, options?: Runner.ExecOptions) {
      const emit = emitFor(options)
      yield* emit({ type: "exec", agent: init.name, command: describeCommand(command, args) })
      if (init.executor !== undefined) {
        const result = yield* execThrough(init.executor, command, args, options)
        if (Option.isSome(result)) return result.value
      }
      const { handle } = yield* start(command, args, { env: options?.env, cwd: options?.cwd, stdout: "pipe" })
      const collect = (stream: Stream.Stream<Uint8Array, unknown>, name: "stdout" | "stderr") => {
        // The text is kept as it came (no newline added to an unterminated last line, `\r` kept), up to its last
        // `maxOutputBytes`; lines are only for `onLine` and the event log.
        const tail = OutputTail.make(init.maxOutputBytes)
        return stream.pipe(
          Stream.tap((bytes) => Effect.sync(() => tail.push(bytes))),
          OutputLines.split(),
          Stream.runForEach((line) =>
            Effect.gen(function*() {
              yield* emit({ type: "output", agent: init.name, stream: name, line })
              if (options?.onLine) yield* options.onLine({ stream: name, line })
            })
          ),
          Effect.map(tail.text)
        )
      }
      const [stdout, stderr, exitCode] = yield* Effect.all([
        collect(handle.stdout, "stdout"),
        collect(handle.stderr, "stderr"),
        handle.exitCode.pipe(Effect.map(Number), Effect.catch(() => Effect.succeed(137)))
      ], { concurrency: "unbounded" }).pipe(Effect.mapError(failed(command, args)))
      yield* emit({
        type: "exit",
        agent: init.name,
        command: describeCommand(command, args),
        exitCode,
        pid: handle.pid
      })
      return { exitCode, stdout, stderr, pid: handle.pid } satisfies Runner.ExecResult
    },
    Effect.scoped,
    // Outside the scope: the slot is given back once the tree is killed and its pipes are closed.
    (effect) => init.commands.withPermits(1)(effect)
  )

  const spawn = Effect.fn("Localhost.spawn")(
    function*(name: string, command: string, args: ReadonlyArray<string>, options?: Runner.SpawnOptions) {
      const logFile = options?.logFile === undefined
        ? path.join(init.home, "logs", `${name}.log`)
        : Sandbox.pathIn(init.home, options.logFile)
      yield* Effect.try({
        // The log exists once `spawn` returns (the daemon may not have written to it yet).
        try: () => {
          fs.mkdirSync(path.dirname(logFile), { recursive: true })
          fs.closeSync(fs.openSync(logFile, "a"))
        },
        catch: (e) => failed(command, args)(e, `cannot create the directory of its log ${logFile}`)
      })
      // A program that cannot start fails `spawn` with why, before any daemon is started.
      const cwd = options?.cwd === undefined ? init.home : Sandbox.pathIn(init.home, options.cwd)
      const searchPath = options?.env?.PATH ?? environment("", undefined).PATH
      if (!startable(Sandbox.mapArgv(init.home, [command], fs.existsSync)[0]!, searchPath, cwd)) {
        return yield* CloudError.command(
          init.name,
          describeCommand(command, args),
          `cannot start: ${Runner.notStartable(command)}`
        )
      }
      // The shell only redirects and `exec`s: the argv reaches the program unchanged.
      const { handle, killTree } = yield* start("/bin/sh", [
        "-c",
        "exec \"$@\" >>\"$TEZT_CLOUD_LOG\" 2>&1",
        "sh",
        command,
        ...args
      ], {
        env: { ...options?.env, TEZT_CLOUD_LOG: logFile },
        cwd: options?.cwd,
        stdout: "ignore"
      })
      yield* init.events.emit({ type: "daemon-up", agent: init.name, name, pid: handle.pid })
      yield* Effect.addFinalizer(() => init.events.emit({ type: "daemon-down", agent: init.name, name }))
      return {
        name,
        agent: init.name,
        pid: handle.pid,
        logFile,
        isRunning: handle.isRunning.pipe(Effect.catch(() => Effect.succeed(false))),
        stop: killTree.pipe(
          Effect.andThen(handle.kill({ forceKillAfter: Duration.millis(init.graceMillis) })),
          Effect.ignore
        )
      }
    }
  )

  const copier = CopyPolicy.make({
    agent: init.name,
    md5: (remote) =>
      Effect.try({
        try: () => {
          const file = Sandbox.pathIn(init.home, remote)
          return fs.existsSync(file) ? CopyPolicy.md5File(file) : undefined
        },
        catch: (e) => CloudError.copy(init.name, remote, CloudError.messageOf(e), { cause: e })
      }),
    put: (local, remote, mode) =>
      Effect.try({
        try: () => {
          const file = Sandbox.pathIn(init.home, remote)
          fs.mkdirSync(path.dirname(file), { recursive: true })
          fs.copyFileSync(local, file)
          fs.chmodSync(file, mode)
        },
        catch: (e) => CloudError.copy(init.name, local, CloudError.messageOf(e), { cause: e })
      })
  }, { binariesPath: init.binariesPath, checkFileConsistency: init.checkFileConsistency })

  const copy = Effect.fn("Localhost.copy")(function*(source: string, options?: Runner.CopyOptions) {
    const remote = yield* copier.copy(source, options)
    return Sandbox.pathIn(init.home, remote)
  })

  return { exec, spawn, copy }
}

/** Whether `command` names an executable file: itself when it has a `/` (from `cwd`), else on `searchPath`. */
const startable = (command: string, searchPath: string, cwd: string) => {
  const executable = (file: string) => {
    try {
      fs.accessSync(file, fs.constants.X_OK)
      return fs.statSync(file).isFile()
    } catch {
      return false
    }
  }
  return command.includes("/")
    ? executable(path.resolve(cwd, command))
    : searchPath.split(":").some((dir) => executable(path.resolve(cwd, dir === "" ? "." : dir, command)))
}

/** Removes `dir` if it exists and is empty. */
const removeIfEmpty = (dir: string) => {
  try {
    fs.rmdirSync(dir)
  } catch {
    // missing, or not empty: another run's sandboxes, or one whose teardown failed (kept for `cleanUp`)
  }
}

/**
 * Kills every process carrying `key=value`: SIGTERM, then SIGKILL after `graceMillis`. Concurrent calls with the
 * same `find` share their passes over /proc (`ProcessTree.makeFinder`).
 */
const killMarked = (find: ProcessTree.Find, key: string, value: string, graceMillis: number) =>
  Effect.gen(function*() {
    const found = yield* find(key, value)
    if (found.length === 0) return
    ProcessTree.signalAll(found, "SIGTERM")
    const left = yield* Effect.sleep("20 millis").pipe(
      Effect.andThen(find(key, value)),
      Effect.repeat({
        until: (pids) => pids.length === 0,
        schedule: Schedule.during(Duration.millis(graceMillis))
      })
    )
    if (left.length > 0) ProcessTree.signalAll(yield* find(key, value), "SIGKILL")
  })

/**
 * Runners for agents of a run that is still alive (kept with `--keep-alive`), from their descriptors: what
 * `tezt-cloud agents exec|copy` uses from another process. Their commands share one bound (`Limits.commands`);
 * their processes are recorded in the namespace's ledger like the run's own.
 */
export const reattach = Effect.fn("Localhost.reattach")(function*(descriptors: ReadonlyArray<Agent.Descriptor>) {
  const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
  const ledger = yield* Ledger.Ledger
  const events = yield* RunEvents.RunEvents
  const commands = yield* Semaphore.make((yield* Limits.Limits).commands)
  const baseEnv = InheritedEnv.inherited()
  const find = ProcessTree.makeFinder()
  const namespace = descriptors[0] === undefined ? undefined : Sandbox.fromDescriptor(descriptors[0]).namespace
  const executor = namespace === undefined
    ? undefined
    : yield* LocalExecutor.make({ namespace, env: baseEnv, ledger, graceMillis: 3000 })
  return descriptors.map((descriptor) => {
    const sandbox = Sandbox.fromDescriptor(descriptor)
    const runner = makeRunner({
      spawner,
      ledger,
      events,
      ...sandbox,
      graceMillis: 3000,
      commands,
      maxOutputBytes: defaultMaxOutputBytes,
      baseEnv,
      find,
      executor
    })
    return [sandbox.name, runner] as const
  })
})

/** The ledger kinds this backend records. */
export const kinds: ReadonlyArray<string> = ["sandbox", "process", "executor", ...LoopbackNetwork.kinds]

/**
 * Removes what a run of `namespace` left behind (after `kill -9` or a forced exit): every process carrying the
 * namespace's marker, every sandbox the ledger still lists, and the run's network rules. Returns what it removed.
 */
export const cleanUp = Effect.fn("Localhost.cleanUp")(function*(stateDir: string, namespace: string) {
  const ledger = yield* Ledger.Ledger
  const killed = ProcessTree.findMarked("TEZT_CLOUD_NS", namespace)
  yield* killMarked(ProcessTree.makeFinder(), "TEZT_CLOUD_NS", namespace, 3000)
  const network = yield* LoopbackNetwork.cleanUp(namespace)
  const removed: Array<string> = []
  for (const resource of yield* ledger.outstanding) {
    // Other backends' records are theirs to clean; the network's are released by its clean-up.
    if (!kinds.includes(resource.kind) || LoopbackNetwork.kinds.includes(resource.kind)) continue
    if (resource.kind === "sandbox") {
      // Only a sandbox of this namespace is ever removed, whatever the ledger says.
      const dir = yield* Ledger.checkInside(sandboxesDir(stateDir, namespace), String(resource.data.path))
      yield* Effect.try({
        try: () => fs.rmSync(dir, { recursive: true, force: true }),
        catch: (e) => CloudError.state(dir, `cannot remove the sandbox: ${CloudError.messageOf(e)}`, { cause: e })
      })
      removed.push(dir)
    }
    yield* ledger.release(resource.id)
  }
  // Sandboxes not in the ledger (a crash between mkdir and the ledger write cannot happen: the record comes
  // first; this catches a ledger deleted by hand).
  const dir = sandboxesDir(stateDir, namespace)
  if (fs.existsSync(dir)) {
    for (const entry of fs.readdirSync(dir)) {
      const sandbox = path.join(dir, entry)
      fs.rmSync(sandbox, { recursive: true, force: true })
      if (!removed.includes(sandbox)) removed.push(sandbox)
    }
  }
  return { processes: killed.length, sandboxes: removed, network }
})

/**
 * The last resort of a second Ctrl+C: kill the namespace's processes now, synchronously, and delete its network
 * rules (their relays die with the orchestrator: the rules would send connections to the agents' ports nowhere).
 */
export const forceKillSync = (namespace: string): number =>
  ProcessTree.killMarkedSync("TEZT_CLOUD_NS", namespace, 500) + LoopbackNetwork.removeSync(namespace)

/** What of the namespace is still on this machine: processes carrying its marker, sandboxes, network rules. */
export const leftovers = (stateDir: string, namespace: string): ReadonlyArray<string> => {
  const processes = ProcessTree.findMarked("TEZT_CLOUD_NS", namespace)
  const dir = sandboxesDir(stateDir, namespace)
  return [
    ...(processes.length === 0 ? [] : [`${processes.length} process(es) of ${namespace}: ${processes.join(" ")}`]),
    ...(fs.existsSync(dir) ? fs.readdirSync(dir).map((entry) => path.join(dir, entry)) : []),
    ...LoopbackNetwork.leftovers(namespace)
  ]
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`

/** This backend as a value, for the CLI's list of backends. */
export const backend: Backend.Backend = {
  id: backendId,
  config: Config,
  select: (config, context) => {
    const choice = config.backend
    if (choice._tag !== "Localhost") return Effect.succeed(Backend.Pass({ why: "not --localhost" }))
    if (choice.runtime === "docker") return Effect.succeed(Backend.Pass({ why: "--agent-runtime docker" }))
    const why = choice.runtime === "process" ? "--agent-runtime process" : context.passed.join("; ")
    return Effect.succeed(Backend.Take({
      description: `local process sandboxes (${why || "--localhost"})`,
      layer: layer({ stateDir: context.stateDir, config, artifactsDir: context.artifactsDir })
    }))
  },
  reattach: (descriptors) => reattach(descriptors),
  where: () => "localhost",
  kinds,
  cleanUp: ({ config, stateDir }) =>
    cleanUp(stateDir, config.namespace).pipe(Effect.map((removed) => [
      `${plural(removed.processes, "process", "processes")} killed, ` +
      `${plural(removed.sandboxes.length, "sandbox", "sandboxes")} removed`,
      ...removed.sandboxes.map((dir) => `removed ${dir}`),
      ...removed.network.map((what) => `removed ${what}`)
    ])),
  leftovers: ({ config, stateDir }) => Effect.sync(() => leftovers(stateDir, config.namespace)),
  forceKill: forceKillSync,
  jobs: () => []
}
