/**
 * Local daemons of the stack (Prometheus): spawned in the current scope with their output appended to a log file,
 * with only the harmless part of the orchestrator's environment (`InheritedEnv`),
 * marked with the run's namespace so `CLOUD clean up` and a second Ctrl+C find them after a crash, and waited for
 * over HTTP with a bounded poll that stops early, with the log's last line, when the daemon dies.
 */
import { CloudError, InheritedEnv } from "@tezt-cloud/core"
import { Effect, Schedule, type Scope } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Http from "./http.ts"

export interface Daemon {
  readonly pid: number
  readonly logFile: string
  readonly isRunning: Effect.Effect<boolean>
}

/** Starts `command args…` in the current scope (killed, with its process group, when the scope closes). */
export const spawn = (options: {
  readonly service: string
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly logFile: string
  readonly namespace: string
}): Effect.Effect<Daemon, CloudError.CloudError, Scope.Scope | ChildProcessSpawner.ChildProcessSpawner> =>
  Effect.gen(function*() {
    const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
    fs.mkdirSync(path.dirname(options.logFile), { recursive: true })
    // The shell only redirects and `exec`s: the pid is the daemon's.
    const handle = yield* spawner.spawn(
      ChildProcess.make("/bin/sh", [
        "-c",
        "exec \"$@\" >>\"$TEZT_CLOUD_LOG\" 2>&1",
        "sh",
        options.command,
        ...options.args
      ], {
        // Not the orchestrator's whole environment: it holds the run's secrets.
        env: { ...InheritedEnv.inherited(), TEZT_CLOUD_LOG: options.logFile, TEZT_CLOUD_NS: options.namespace },
        extendEnv: false,
        stdin: "ignore",
        stdout: "ignore",
        stderr: "ignore",
        forceKillAfter: "5 seconds"
      })
    ).pipe(
      Effect.mapError((e) =>
        CloudError.service(options.service, `cannot start ${options.command}: ${e.message}`, { cause: e })
      )
    )
    return {
      pid: handle.pid,
      logFile: options.logFile,
      isRunning: handle.isRunning.pipe(Effect.catch(() => Effect.succeed(false)))
    }
  })

/** The last non-empty line of a log file ("" when there is none). */
export const lastLine = (file: string): string => {
  try {
    return fs.readFileSync(file, "utf8").trim().split("\n").at(-1) ?? ""
  } catch {
    return ""
  }
}

/**
 * Polls `url` until it answers 200 with a body `isOurs` accepts (every 100 ms, at most `attempts` times). Fails
 * at once if the daemon exits, quoting its log's last line, and after the last attempt otherwise. `isOurs` tells
 * our daemon from another process answering on the same port while ours is failing to bind it.
 */
export const waitReady = (
  service: string,
  url: string,
  daemon: Daemon,
  isOurs: (body: string) => boolean = () => true,
  attempts = 600
): Effect.Effect<void, CloudError.CloudError> => {
  const dead = (e: CloudError.CloudError) => e.reason._tag === "ServiceFailed" && e.reason.message.startsWith("exited")
  return Effect.gen(function*() {
    if (!(yield* daemon.isRunning)) {
      return yield* CloudError.service(service, `exited: ${lastLine(daemon.logFile)} (log: ${daemon.logFile})`)
    }
    const response = yield* Http.request(service, url)
    if (response.status !== 200) return yield* CloudError.service(service, `${url} answered ${response.status}`)
    if (!isOurs(response.body)) return yield* CloudError.service(service, `${url} is answered by another process`)
  }).pipe(
    Effect.retry({ schedule: Schedule.spaced("100 millis"), times: attempts, while: (e) => !dead(e) }),
    Effect.mapError((e) =>
      dead(e) ? e : CloudError.service(
        service,
        `not ready after ${attempts / 10} s: ${
          e.reason._tag === "ServiceFailed" ? e.reason.message : e.message
        } (log: ${daemon.logFile})`
      )
    )
  )
}
