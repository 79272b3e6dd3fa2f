/**
 * The run's Prometheus, as Tezt cloud runs it: the Debian `prometheus` binary run as a scoped daemon on this machine,
 * with a generated configuration that hot-reloads on every change, and a TSDB snapshot exported when its scope
 * closes, whatever ended the run.
 *
 * **Details**
 *
 * The configuration is written as JSON, which is YAML too: no quoting rule of YAML can bite a job name or a
 * label. `addJob` with a known job name merges the targets (sorted, without duplicates), rewrites the file and
 * sends SIGHUP, then waits until Prometheus has loaded it: the daemon is never restarted, and its lifecycle API
 * (`/-/reload`, `/-/quit`, unauthenticated) stays off. `setAlerting` adds the alerting rules and the Alertmanager
 * they go to, the same way. Storage lives in a temporary directory removed at the end,
 * recorded in the Ledger (kind `prometheus-storage`) before it exists: after a `kill -9` of the run, `cleanUp`
 * (run by `CLOUD clean up`) stops the Prometheus still serving it and removes it. What survives the run is the
 * snapshot, copied to `exportTo` (or, if that path already exists, next to it), and the config and log under `dir`.
 *
 * **Gotchas**
 *
 * `serveSnapshot` runs Prometheus on a copy of a snapshot: Prometheus writes into its storage (WAL, compaction,
 * retention), and the user's snapshot must stay as it was.
 */
import { CloudError, Teardown } from "@tezt-cloud/core"
import { Context, Effect, Semaphore } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Binaries from "./internal/binaries.ts"
import * as Daemon from "./internal/daemon.ts"
import * as Http from "./internal/http.ts"

/** One scraped endpoint and the labels its series get. */
export interface Target {
  readonly address: string
  readonly labels: Record<string, string>
}

/** A scrape job (`scrape_configs` entry). */
export interface Job {
  readonly name: string
  readonly metricsPath: string
  readonly params?: Record<string, ReadonlyArray<string>> | undefined
  readonly targets: ReadonlyArray<Target>
}

const targetKey = (t: Target) => `${t.address} ${JSON.stringify(Object.entries(t.labels).toSorted())}`

/** `jobs` with `job` added, or merged into the job of the same name (targets sorted, without duplicates). */
export const mergeJob = (jobs: ReadonlyArray<Job>, job: Job): ReadonlyArray<Job> => {
  const existing = jobs.find((j) => j.name === job.name)
  if (existing === undefined) return [...jobs, job]
  const targets = new Map([...existing.targets, ...job.targets].map((t) => [targetKey(t), t]))
  const merged: Job = {
    ...existing,
    targets: [...targets.entries()].toSorted(([a], [b]) => a.localeCompare(b)).map(([, t]) => t)
  }
  return jobs.map((j) => j.name === job.name ? merged : j)
}

/** Where alerts go: the Alertmanager (`host:port`) and the rule file Prometheus evaluates. */
export interface Alerting {
  readonly alertmanager: string
  readonly ruleFile: string
}

/** The configuration file's text for these jobs (and alerting). */
export const renderConfig = (
  scrapeInterval: number,
  jobs: ReadonlyArray<Job>,
  alerting?: Alerting | undefined
): string =>
  JSON.stringify(
    {
      global: { scrape_interval: `${scrapeInterval}s`, evaluation_interval: `${scrapeInterval}s` },
      ...(alerting === undefined ? {} : {
        alerting: { alertmanagers: [{ static_configs: [{ targets: [alerting.alertmanager] }] }] },
        rule_files: [alerting.ruleFile]
      }),
      scrape_configs: jobs.map((job) => ({
        job_name: job.name,
        metrics_path: job.metricsPath,
        ...(job.params === undefined ? {} : { params: job.params }),
        static_configs: job.targets.map((t) => ({ targets: [t.address], labels: t.labels }))
      }))
    },
    null,
    2
  ) + "\n"

export class Prometheus extends Context.Service<Prometheus, {
  /** Where its HTTP API answers, e.g. `http://127.0.0.1:9090`. */
  readonly url: string
  readonly pid: number
  readonly jobs: Effect.Effect<ReadonlyArray<Job>>
  /** Adds (or merges) a job and hot-reloads. */
  addJob(job: Job): Effect.Effect<void, CloudError.CloudError>
  /**
   * Sends alerts to the Alertmanager at `alertmanager` (`host:port`), evaluating `rules` (a rule file's text),
   * and hot-reloads; returns once its rules API lists exactly the alerts `names`. A refusal is rolled back.
   */
  setAlerting(
    alertmanager: string,
    rules: string,
    names: ReadonlyArray<string>
  ): Effect.Effect<void, CloudError.CloudError>
  /** Takes a TSDB snapshot and copies it to `destination` (or next to it if taken); returns where it went. */
  snapshot(destination: string): Effect.Effect<string, CloudError.CloudError>
}>()("@tezt-cloud/monitoring/Prometheus") {}

export interface Options {
  /** Address to listen on: a loopback one (`127.0.0.1`), anything else is refused. */
  readonly host: string
  readonly port: number
  readonly scrapeInterval: number
  readonly jobs: ReadonlyArray<Job>
  /** Where `prometheus.yml` and `prometheus.log` go (the run's artifacts). */
  readonly dir: string
  /** The run's namespace, marked on the process for `CLOUD clean up`. */
  readonly namespace: string
  /** Export a snapshot there when the scope closes. */
  readonly exportTo?: string | undefined
  /** Serve a copy of this TSDB (a snapshot) instead of fresh storage. */
  readonly snapshotOf?: string | undefined
}

const service = "prometheus"

/** What a Prometheus keeps in its private dir, for the ledger and clean-up. */
const storageKind: Daemon.Storage = {
  kind: "prometheus-storage",
  service,
  name: "Prometheus",
  argument: (dir) => `--storage.tsdb.path=${dir}`
}

/** The ledger kind of a Prometheus' storage: a run's TSDB, or the copy of a snapshot `CLOUD prometheus import` serves. */
export const kinds: ReadonlyArray<string> = [storageKind.kind]

/** Starts Prometheus in the current scope and waits until it is ready. */
export const start = Effect.fn("Prometheus.start")(function*(
  options: Options
): Effect.fn.Return<Prometheus["Service"], CloudError.CloudError, Daemon.Needs> {
  // Snapshots need the admin API, which has no authentication: loopback only.
  yield* Daemon.requireLoopback(service, options.host, "its admin API has no authentication")
  const binary = yield* Binaries.require(service, "prometheus", "install Debian's prometheus package")
  const configFile = path.join(options.dir, "prometheus.yml")
  yield* Effect.try({
    try: () => fs.mkdirSync(options.dir, { recursive: true }),
    catch: (e) => CloudError.service(service, `cannot create ${options.dir}: ${CloudError.messageOf(e)}`, { cause: e })
  })
  const storage = yield* Daemon.privateDir(storageKind, options.namespace)
  const snapshotOf = options.snapshotOf
  if (snapshotOf !== undefined) {
    yield* Effect.try({
      try: () => fs.cpSync(snapshotOf, storage, { recursive: true }),
      catch: (e) => CloudError.service(service, `cannot copy ${snapshotOf}: ${CloudError.messageOf(e)}`, { cause: e })
    })
  }
  let jobs = options.jobs
  let alerting: Alerting | undefined
  const ruleFile = path.join(options.dir, "rules.yml")
  const writeFile = (file: string, text: string) => Daemon.writeFile(service, file, text)
  const write = Effect.suspend(() => writeFile(configFile, renderConfig(options.scrapeInterval, jobs, alerting)))
  yield* write
  const listen = Daemon.listenAddress(options.host, options.port)
  const url = `http://${listen}`
  const daemon = yield* Daemon.spawn({
    service,
    command: binary,
    args: [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${storage}`,
      `--web.listen-address=${listen}`,
      "--web.enable-admin-api",
      // Firing alerts are sent again every evaluation, not every minute: the ones sent before Prometheus has found
      // a new Alertmanager (right after a reload) are dropped, and would otherwise wait a minute.
      `--rules.alert.resend-delay=${options.scrapeInterval}s`,
      // An imported snapshot may be older than the default 15 days: keep everything it has.
      ...(options.snapshotOf === undefined ? [] : ["--storage.tsdb.retention.time=100y"])
    ],
    logFile: path.join(options.dir, "prometheus.log"),
    namespace: options.namespace
  })
  // The flags name our storage: another Prometheus already on the port would answer too, with its own.
  const isOurs = (body: string) => body.includes(JSON.stringify(storage).slice(1, -1))
  yield* Daemon.waitListening(
    service,
    `${url}/api/v1/status/flags`,
    daemon,
    listen,
    "; choose another --prometheus-port",
    isOurs
  )

  const lock = yield* Semaphore.make(1)
  const reload = Daemon.reload(service, daemon, url, "prometheus")
  const addJob = Effect.fn("Prometheus.addJob")(
    function*(job: Job) {
      const before = jobs
      yield* Effect.logDebug(`Prometheus: adding or merging job ${job.name}`)
      // A refused configuration is rolled back (and the previous one reloaded), so the next change does not carry it.
      yield* Daemon.changeOrUndo(
        Effect.sync(() => void (jobs = mergeJob(jobs, job))),
        Effect.sync(() => void (jobs = before)),
        write.pipe(Effect.andThen(reload))
      )
    },
    (effect) => lock.withPermit(effect)
  )
  let rules = ""
  const alertNames = Http.ok(service, `${url}/api/v1/rules?type=alert`).pipe(
    Effect.map((body) =>
      (JSON.parse(body) as { data?: { groups?: ReadonlyArray<{ rules: ReadonlyArray<{ name: string }> }> } }).data
        ?.groups?.flatMap((g) => g.rules.map((r) => r.name)).toSorted() ?? []
    )
  )
  const setAlerting = Effect.fn("Prometheus.setAlerting")(
    function*(alertmanager: string, text: string, names: ReadonlyArray<string>) {
      const before = { alerting, rules }
      yield* Daemon.changeOrUndo(
        Effect.sync(() => {
          alerting = { alertmanager, ruleFile }
          rules = text
        }),
        Effect.sync(() => {
          alerting = before.alerting
          rules = before.rules
        }),
        Effect.suspend(() => writeFile(ruleFile, rules)).pipe(Effect.andThen(write), Effect.andThen(reload))
      )
      // Loaded with the configuration; checked, so that a rule Prometheus dropped is not taken for loaded.
      const loaded = yield* alertNames
      const wanted = [...names].toSorted()
      if (JSON.stringify(loaded) !== JSON.stringify(wanted)) {
        return yield* CloudError.service(service, `its rules are ${loaded.join(", ")}, not ${wanted.join(", ")}`)
      }
    },
    (effect) => lock.withPermit(effect)
  )
  const snapshot = Effect.fn("Prometheus.snapshot")(function*(destination: string) {
    const body = yield* Http.ok(service, `${url}/api/v1/admin/tsdb/snapshot`, { method: "POST" })
    const name = (JSON.parse(body) as { data?: { name?: string } }).data?.name
    if (name === undefined) return yield* CloudError.service(service, `unexpected snapshot answer: ${body}`)
    const target = fs.existsSync(destination) ? `${destination}-${name}` : destination
    yield* Effect.try({
      try: () => {
        fs.mkdirSync(path.dirname(target), { recursive: true })
        fs.cpSync(path.join(storage, "snapshots", name), target, { recursive: true })
      },
      catch: (e) =>
        CloudError.service(service, `cannot copy the snapshot to ${target}: ${CloudError.messageOf(e)}`, { cause: e })
    })
    return target
  })
  if (options.exportTo !== undefined) {
    const exportTo = options.exportTo
    // Added after the daemon: runs before it is stopped.
    yield* Teardown.finalizer(
      "prometheus snapshot",
      snapshot(exportTo).pipe(
        Effect.tap((target) =>
          Effect.logInfo(
            target === exportTo
              ? `You can find the prometheus snapshot at ${target}`
              : `${exportTo} already exists: you can find the prometheus snapshot at ${target}`
          )
        )
      )
    )
  }
  return Prometheus.of({
    url,
    pid: daemon.pid,
    jobs: Effect.sync(() => jobs),
    addJob,
    setAlerting,
    snapshot
  })
})

/** Serves a copy of `snapshot` on `port` until the scope closes (`CLOUD prometheus import`). */
export const serveSnapshot = (options: {
  readonly snapshot: string
  readonly host: string
  readonly port: number
  readonly dir: string
  readonly namespace: string
}) =>
  Effect.gen(function*() {
    if (!fs.existsSync(options.snapshot)) {
      return yield* CloudError.config("--prometheus-snapshots", `${options.snapshot} does not exist`)
    }
    return yield* start({
      host: options.host,
      port: options.port,
      scrapeInterval: 60,
      jobs: [],
      dir: options.dir,
      namespace: options.namespace,
      snapshotOf: options.snapshot
    })
  })

/**
 * Finishes what killed runs and imports of the namespace left of their Prometheus (`CLOUD clean up`): for every
 * outstanding `prometheus-storage` record, stops the Prometheus still serving it, removes it and releases the
 * record. Returns a line per storage removed.
 */
export const cleanUp = Effect.fn("Prometheus.cleanUp")(function*() {
  return yield* Daemon.cleanUp(storageKind)
})

/** One series of an instant query's answer. */
export interface Sample {
  readonly metric: Record<string, string>
  readonly value: string
}

/** An instant query on the Prometheus at `url`: one sample per series (an empty list when nothing matches). */
export const query = Effect.fn("Prometheus.query")(function*(url: string, promql: string) {
  const body = yield* Http.ok(service, `${url}/api/v1/query?query=${encodeURIComponent(promql)}`)
  const parsed = JSON.parse(body) as {
    readonly data?: { readonly result?: ReadonlyArray<{ metric: Record<string, string>; value: [number, string] }> }
  }
  return (parsed.data?.result ?? []).map((r): Sample => ({ metric: r.metric, value: r.value[1] }))
})
