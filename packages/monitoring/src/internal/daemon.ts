/**
 * Local daemons of the stack (Prometheus, Alertmanager): spawned in the current scope with their output appended to
 * a log file, with only the harmless part of the orchestrator's environment (`InheritedEnv`),
 * marked with the run's namespace so `CLOUD clean up` and a second Ctrl+C find them after a crash, and waited for
 * over HTTP with a bounded poll that stops early, with the log's last line, when the daemon dies; reloaded by
 * SIGHUP; their private storage recorded in the ledger and removed with them (or by `CLOUD clean up`).
 */
import { AtomicFile, CloudError, InheritedEnv, Ledger, Teardown } from "@tezt-cloud/core"
import { Effect, Schedule, type Scope } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Endpoints from "../Endpoints.ts"
import * as Http from "./http.ts"

/** What starting a daemon of the stack needs: the scope it lives in, a process spawner, the run's ledger. */
export type Needs = Scope.Scope | ChildProcessSpawner.ChildProcessSpawner | Ledger.Ledger

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

/**
 * `waitReady`, where a daemon that could not take its port (or another process answering there) is said in one
 * line: it cannot listen on `listen`, with `fix`.
 */
export const waitListening = (
  service: string,
  url: string,
  daemon: Daemon,
  listen: string,
  fix: string,
  isOurs?: (body: string) => boolean
): Effect.Effect<void, CloudError.CloudError> =>
  waitReady(service, url, daemon, isOurs).pipe(
    Effect.mapError((e) =>
      /address already in use|answered by another process/.test(e.message)
        ? CloudError.service(service, `cannot listen on ${listen}: the port is taken${fix}`)
        : e
    )
  )

/** The value of the unlabelled series `name` in a Prometheus text exposition, if it has one. */
const sample = (exposition: string, name: string): number | undefined => {
  const line = exposition.split("\n").find((l) => l.startsWith(`${name} `))
  return line === undefined ? undefined : Number(line.slice(name.length + 1))
}

/**
 * Reloads a daemon's configuration by SIGHUP (Prometheus and Alertmanager both reload on it; their HTTP reload
 * endpoints stay off) and waits until it is seen: `<prefix>_config_last_reload_success_timestamp_seconds` on its
 * `/metrics` moves past its value before the signal. A configuration it refuses
 * (`<prefix>_config_last_reload_successful` 0) fails at once with its log's last line; so does a daemon gone.
 */
export const reload = (
  service: string,
  daemon: Daemon,
  url: string,
  prefix: string
): Effect.Effect<void, CloudError.CloudError> => {
  const metrics = `${url}/metrics`
  const state = Http.ok(service, metrics).pipe(Effect.map((body) => ({
    at: sample(body, `${prefix}_config_last_reload_success_timestamp_seconds`) ?? 0,
    ok: sample(body, `${prefix}_config_last_reload_successful`) === 1
  })))
  const final = (e: CloudError.CloudError) =>
    e.reason._tag === "ServiceFailed" && /^(refused|exited)/.test(e.reason.message)
  return Effect.gen(function*() {
    const before = yield* state
    yield* Effect.try({
      try: () => process.kill(daemon.pid, "SIGHUP"),
      catch: (e) => CloudError.service(service, `cannot signal pid ${daemon.pid}: ${CloudError.messageOf(e)}`)
    })
    yield* Effect.gen(function*() {
      const now = yield* state
      if (now.at > before.at) return
      if (!now.ok && before.ok) {
        return yield* CloudError.service(
          service,
          `refused its new configuration: ${lastLine(daemon.logFile)} (log: ${daemon.logFile})`
        )
      }
      if (!(yield* daemon.isRunning)) return yield* CloudError.service(service, `exited: ${lastLine(daemon.logFile)}`)
      return yield* CloudError.service(service, `did not reload its configuration (log: ${daemon.logFile})`)
    }).pipe(Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 400, while: (e) => !final(e) }))
  })
}

/** A daemon's private dir (its storage), as the ledger records it and clean-up finds the daemon still using it. */
export interface Storage {
  /** The ledger kind. */
  readonly kind: string
  readonly service: string
  /** The daemon's name in messages (`Prometheus`). */
  readonly name: string
  /** The argument naming the dir on the daemon's command line (what clean-up looks for in `/proc`). */
  readonly argument: (dir: string) => string
}

/**
 * A fresh private directory (mode 0700) in the system's temporary dir, recorded in the ledger before it exists and
 * removed, with its record, when the scope closes.
 */
export const privateDir = (storage: Storage, namespace: string) => {
  const dir = path.join(
    os.tmpdir(),
    `tezt-cloud-${namespace}-${storage.service}-${crypto.randomBytes(6).toString("hex")}`
  )
  return Ledger.scoped(
    { id: `${storage.kind}:${dir}`, kind: storage.kind, data: { path: dir } },
    Effect.try({
      try: () => fs.mkdirSync(dir, { mode: 0o700 }),
      catch: (e) =>
        CloudError.service(storage.service, `cannot prepare its storage: ${CloudError.messageOf(e)}`, { cause: e })
    }),
    () => Teardown.reported(`${storage.service} storage`, remove(storage, dir))
  ).pipe(Effect.as(dir))
}

const remove = (storage: Storage, dir: string) =>
  Effect.try({
    try: () => fs.rmSync(dir, { recursive: true, force: true }),
    catch: (e) =>
      CloudError.state(dir, `cannot remove ${storage.name}' storage: ${CloudError.messageOf(e)}`, { cause: e })
  })

/** Pids of the live processes whose arguments include `argument` exactly (one pass over /proc). */
const withArgument = (argument: string): Array<number> =>
  fs.readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).flatMap((entry) => {
    const pid = Number(entry)
    if (pid === process.pid) return []
    let argv: Array<string>
    try {
      argv = fs.readFileSync(`/proc/${entry}/cmdline`, "latin1").split("\0")
    } catch {
      return [] // gone meanwhile
    }
    return argv.includes(argument) ? [pid] : []
  })

/**
 * Stops (SIGKILL: its storage goes next) every daemon using `dir`, and waits, bounded, until none is left; returns
 * their pids.
 */
const stopServing = (storage: Storage, dir: string) =>
  Effect.gen(function*() {
    const argument = storage.argument(dir)
    const pids = withArgument(argument)
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL")
      } catch {
        // gone, or not ours: the wait below says which
      }
    }
    yield* Effect.suspend(() => {
      const left = withArgument(argument)
      return left.length === 0
        ? Effect.void
        : Effect.fail(CloudError.state(dir, `${storage.name} (pid ${left.join(", ")}) serving it does not stop`))
    }).pipe(Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 100 }))
    return pids
  })

/**
 * Finishes what killed runs left of a daemon's storage (`CLOUD clean up`): for every outstanding record of
 * `storage.kind`, stops the daemon still using it, removes it and releases the record. Returns a line per storage
 * removed.
 */
export const cleanUp = (storage: Storage) =>
  Effect.gen(function*() {
    const ledger = yield* Ledger.Ledger
    const lines: Array<string> = []
    for (const resource of yield* ledger.outstanding) {
      if (resource.kind !== storage.kind) continue
      const dir = String(resource.data.path)
      const stopped = yield* stopServing(storage, dir)
      yield* remove(storage, dir)
      yield* ledger.release(resource.id)
      lines.push(
        stopped.length === 0
          ? `removed ${storage.name}' storage ${dir}`
          : `stopped ${storage.name} (pid ${stopped.join(", ")}) and removed its storage ${dir}`
      )
    }
    return lines
  })

/** `host:port` for a daemon's listen flag (an IPv6 host in brackets). */
export const listenAddress = (host: string, port: number): string =>
  `${host.includes(":") ? `[${host}]` : host}:${port}`

/** Fails, before anything starts, unless `host` is a loopback address; `why` says what would be exposed. */
export const requireLoopback = (
  service: string,
  host: string,
  why: string
): Effect.Effect<void, CloudError.CloudError> =>
  Endpoints.isLoopback(host)
    ? Effect.void
    : Effect.fail(CloudError.service(service, `it must listen on a loopback address, not ${host}: ${why}`))

/** Writes one of a daemon's files whole (never seen half-written when it reloads), private to the user. */
export const writeFile = (service: string, file: string, text: string): Effect.Effect<void, CloudError.CloudError> =>
  Effect.try({
    try: () => {
      fs.mkdirSync(path.dirname(file), { recursive: true })
      AtomicFile.writeAtomic(file, text)
    },
    catch: (e) => CloudError.service(service, `cannot write ${file}: ${CloudError.messageOf(e)}`, { cause: e })
  })

/**
 * Makes a change of a daemon's configuration: `change` (in memory), then `apply` (written and reloaded). When that
 * fails, `undo` and `apply` again, so the daemon and the next change carry the previous configuration; the error
 * stays.
 */
export const changeOrUndo = <E>(
  change: Effect.Effect<void>,
  undo: Effect.Effect<void>,
  apply: Effect.Effect<void, E>
): Effect.Effect<void, E> =>
  change.pipe(Effect.andThen(apply), Effect.tapError(() => undo.pipe(Effect.andThen(apply), Effect.ignore)))
