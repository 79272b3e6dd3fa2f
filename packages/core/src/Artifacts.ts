/**
 * What a run keeps of its agents in its artifacts dir, before they are torn down: under `<artifacts-dir>/<agent>/`,
 * each daemon's log (`daemons/<name>.log`, its last `daemonLogBytes` bytes after a marker of what was dropped),
 * the output of every command run there (`commands.log`, capped the same way: `CappedFile`), with
 * `--daily-logs-artifacts` the whole directories of the daemons' logs, rotated copies included
 * (`daily-logs/<dir>/`), and what the scenario fetched itself (`Agent.fetch`). `docs/artifacts.md` shows the tree.
 *
 * **Details**
 *
 * A daemon's log is fetched right after the daemon is stopped, when its scope closes, still before the agent
 * goes; the daily logs once every daemon of the run is down. Each is a teardown step: a failure is reported,
 * never blocks the rest of the teardown. The caps bound the disk a run takes whatever its agents print: 100
 * agents with two daemons each take at most 100 × (2 × daemon cap + commands cap).
 */
import { Context, Effect, type Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as AtomicFile from "./AtomicFile.ts"
import * as CappedFile from "./CappedFile.ts"
import * as CloudError from "./CloudError.ts"
import * as Fetch from "./Fetch.ts"
import * as Ledger from "./Ledger.ts"
import * as ProcessLiveness from "./ProcessLiveness.ts"
import { RunEvents, type Sink } from "./RunEvents.ts"
import type { Runner } from "./Runner.ts"
import * as Teardown from "./Teardown.ts"

/** The cap of each daemon's saved log (its tail is kept). */
export const defaultDaemonLogBytes = 8 * 1024 * 1024

/** The cap of each agent's `commands.log` (its tail is kept). */
export const commandsLogBytes = 8 * 1024 * 1024

export interface Policy {
  /** The cap of each daemon's saved log; 0: daemons' logs are not saved. */
  readonly daemonLogBytes: number
}

/** What the daemons spawned in the current fiber keep; read when a daemon is spawned. */
export const CurrentPolicy = Context.Reference<Policy>("@tezt-cloud/core/Artifacts/CurrentPolicy", {
  defaultValue: () => ({ daemonLogBytes: defaultDaemonLogBytes })
})

/** What is used of an agent here (its `Agent`, which uses this module). */
export interface AgentFiles {
  readonly name: string
  readonly artifactsDir: string
  readonly runner: Pick<Runner, "exec">
  readonly spawnedLogs: Effect.Effect<ReadonlyArray<string>>
}

/** A free name in `dir` for `base` + `extension`: `base`, else `base-2`, `base-3`… */
const freeName = (dir: string, base: string, extension = "") => {
  for (let i = 1;; i++) {
    const file = path.join(dir, `${i === 1 ? base : `${base}-${i}`}${extension}`)
    if (!fs.existsSync(file)) return file
  }
}

/**
 * Adds to the current scope the step that saves daemon `daemon`'s log (once `logFile()` is known) into
 * `<agentDir>/daemons/`: added before the daemon is spawned, it runs after the daemon is stopped.
 */
export const saveDaemonLog = (
  agent: string,
  runner: Pick<Runner, "exec">,
  agentDir: string,
  daemon: string,
  logFile: () => string | undefined
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const policy = yield* CurrentPolicy
    if (policy.daemonLogBytes <= 0) return
    yield* Teardown.finalizer(
      `saving the log of daemon ${daemon} on ${agent}`,
      Effect.suspend(() => {
        const file = logFile()
        if (file === undefined) return Effect.void
        const local = freeName(path.join(agentDir, "daemons"), daemon, ".log")
        return Fetch.fetch(agent, runner, file, local, { tailBytes: policy.daemonLogBytes })
      })
    )
  })

/**
 * With `--daily-logs-artifacts`: adds to the current scope the step that fetches, for each agent, every
 * directory where one of its daemons logged (the logs and their rotated copies) into
 * `<agent's artifacts>/daily-logs/<dir name>/`. Added once the agents are deployed, it runs once the scenario's
 * daemons are down, before the agents go.
 */
export const fetchDailyLogs = (agents: ReadonlyArray<AgentFiles>): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    yield* Effect.addFinalizer(() =>
      Effect.forEach(agents, (agent) =>
        Effect.gen(function*() {
          // A few agents at a time: each transfer holds up to the runner's output tail (16 MiB) in memory.
          const dirs = new Set((yield* agent.spawnedLogs).map((file) => path.posix.dirname(file)))
          for (const dir of dirs) {
            yield* Teardown.step(
              `fetching the daily logs of ${agent.name} (${dir})`,
              Effect.suspend(() =>
                Fetch.fetch(
                  agent.name,
                  agent.runner,
                  dir,
                  freeName(path.join(agent.artifactsDir, "daily-logs"), path.posix.basename(dir) || "root")
                )
              )
            )
          }
        }), { concurrency: 4, discard: true })
    )
  })

const time = (at: number) => new Date(at).toISOString().slice(11, 23)

/**
 * Writes each agent's commands (`$ command`), their output lines (`out| `, `err| `) and exits into
 * `<agent's artifacts>/commands.log`, capped at `maxBytes` each, for the current scope (the files are joined and
 * closed when it closes). Lines of commands that run at once on one agent are interleaved, as they came. A disk
 * that fails stops that agent's log with a warning, never the run.
 */
export const recordCommands = (
  agents: ReadonlyArray<Pick<AgentFiles, "name" | "artifactsDir">>,
  maxBytes = commandsLogBytes
): Effect.Effect<void, never, RunEvents | Scope.Scope> =>
  Effect.gen(function*() {
    if (agents.length === 0) return
    const events = yield* RunEvents
    const dirs = new Map(agents.map((a) => [a.name, a.artifactsDir]))
    const files = new Map<string, CappedFile.CappedFile | undefined>()
    const failures: Array<string> = []
    const fileOf = (agent: string) => {
      if (files.has(agent)) return files.get(agent)
      const dir = dirs.get(agent)
      let file: CappedFile.CappedFile | undefined
      try {
        file = dir === undefined ? undefined : CappedFile.make(path.join(dir, "commands.log"), maxBytes)
      } catch (e) {
        failures.push(`${dir}/commands.log: ${e instanceof Error ? e.message : String(e)}`)
      }
      files.set(agent, file)
      return file
    }
    const write = (agent: string, text: string) => {
      const file = fileOf(agent)
      if (file === undefined) return
      try {
        file.write(text)
      } catch (e) {
        files.set(agent, undefined)
        failures.push(`${file.file}: ${e instanceof Error ? e.message : String(e)}: no more of its commands are kept`)
      }
    }
    const sink: Sink = (event) => {
      switch (event.type) {
        case "exec":
          return write(event.agent, `[${time(event.at)}] $ ${event.command}\n`)
        case "output":
          return write(event.agent, `${event.stream === "stdout" ? "out" : "err"}| ${event.line}\n`)
        case "exit":
          return write(event.agent, `[${time(event.at)}] exit ${event.exitCode} (pid ${event.pid}): ${event.command}\n`)
      }
    }
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        for (const file of files.values()) {
          try {
            file?.close()
          } catch (e) {
            failures.push(`${file?.file}: ${e instanceof Error ? e.message : String(e)}`)
          }
        }
        for (const failure of failures) yield* Effect.logWarning(`artifacts: ${failure}`)
      })
    )
    yield* events.subscribe(sink)
  })

/** The namespace's last run, as `tezt-cloud logs` finds it: its artifacts dir and the pid of its orchestrator. */
export interface LastRun {
  readonly artifactsDir: string
  readonly pid: number
  /** The process's start time (`ProcessLiveness.startTime`): a pid reused by another process is not the run. */
  readonly started: string | undefined
}

/** Whether the run's process still runs. */
export const isLive = (run: LastRun): boolean => ProcessLiveness.isLive(run.pid, run.started)

/** Where the namespace's last run is recorded: `<state-dir>/<ns>/last-run.json`. */
export const lastRunFile = (stateDir: string, namespace: string): string =>
  path.join(Ledger.namespaceDir(stateDir, namespace), "last-run.json")

/** Records this process's run, writing into `artifactsDir`, as the namespace's last one. */
export const recordLastRun = (stateDir: string, namespace: string, artifactsDir: string) =>
  Effect.try({
    try: () => {
      const file = lastRunFile(stateDir, namespace)
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
      const record: LastRun = {
        artifactsDir: path.resolve(artifactsDir),
        pid: process.pid,
        started: ProcessLiveness.startTime(process.pid)
      }
      AtomicFile.writeAtomic(file, JSON.stringify(record) + "\n")
    },
    catch: (e) => CloudError.state(stateDir, `cannot record the run: ${CloudError.messageOf(e)}`, { cause: e })
  })

/** The namespace's last run, if one was recorded. */
export const lastRun = (stateDir: string, namespace: string): LastRun | undefined => {
  try {
    const record = JSON.parse(fs.readFileSync(lastRunFile(stateDir, namespace), "utf8")) as Partial<LastRun>
    return typeof record.artifactsDir === "string" && typeof record.pid === "number"
      ? {
        artifactsDir: record.artifactsDir,
        pid: record.pid,
        started: typeof record.started === "string" ? record.started : undefined
      }
      : undefined
  } catch {
    return undefined
  }
}
