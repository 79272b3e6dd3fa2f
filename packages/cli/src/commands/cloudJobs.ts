/**
 * What the CLOUD group's built-in jobs do (`clean up`, `prometheus import`), loaded by `cloud.ts` only when one of
 * them runs: they drive every backend and the monitoring parts, which `--help` and `--list` never load.
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import { AgentsControl, Cloud, CloudError, Ledger, Orchestrator, ProcessLiveness } from "@tezt-cloud/core"
import { Alertmanager, Endpoints, Grafana, Prometheus, RunMonitor } from "@tezt-cloud/monitoring"
import { Context, Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Backends from "../Backends.ts"

/**
 * The files a killed run of the namespace left in its state dir: its deployment record when the orchestrator it
 * names is gone or its pid now names another process (or the record cannot be read), and its control socket when
 * no live run records it. A live run's stay.
 */
const deadRunFiles = (ledgerFile: string): Array<string> => {
  const record = Orchestrator.deploymentFile(ledgerFile)
  const socket = AgentsControl.socketFile(ledgerFile)
  let live = false
  try {
    const { pid, started } = JSON.parse(fs.readFileSync(record, "utf8")) as Orchestrator.DeploymentRecord
    live = typeof pid === "number" && pid !== process.pid &&
      ProcessLiveness.isLive(pid, typeof started === "string" ? started : undefined)
  } catch {
    // missing or torn: no live run records itself there
  }
  return live ? [] : [record, socket].filter((file) => fs.existsSync(file))
}

/**
 * What `CLOUD clean up` runs besides the backends' clean-ups: the run-level services' resources on this machine
 * (Prometheus' storage, of runs and of imports; Alertmanager's private dir), each recorded in the namespace's ledger.
 */
const serviceCleanUps: ReadonlyArray<{
  readonly id: string
  readonly cleanUp: Effect.Effect<ReadonlyArray<string>, CloudError.CloudError, Ledger.Ledger>
}> = [
  { id: "monitoring", cleanUp: Prometheus.cleanUp() },
  { id: "alerts", cleanUp: Alertmanager.cleanUp() }
]

/**
 * `CLOUD clean up`: every backend removes what killed runs of the namespace left (processes, sandboxes,
 * containers…), then the run-level services (`serviceCleanUps`), then the killed run's deployment record and
 * control socket go. One's failure does not stop the others; each is reported, and the job then fails.
 */
export const cleanUp = (stateDir: string) =>
  Effect.gen(function*() {
    const cloud = yield* Cloud.Cloud
    const ledger = Ledger.Ledger.layer(stateDir, cloud.namespace)
    const report = yield* Backends.cleanUp(stateDir, cloud.config).pipe(Effect.provide(ledger))
    const services = yield* Effect.forEach(serviceCleanUps, ({ id, cleanUp: clean }) =>
      clean.pipe(Effect.provide(ledger), Effect.result, Effect.map((result) => ({ id, result }))))
    const done = [
      ...report.done,
      ...services.flatMap(({ id, result }) =>
        result._tag === "Success" ? [{ backend: id, lines: result.success }] : []
      )
    ]
    const failed = [
      ...report.failed,
      ...services.flatMap(({ id, result }) => result._tag === "Failure" ? [{ backend: id, error: result.failure }] : [])
    ]
    for (const { backend, lines } of done) {
      for (const line of lines) yield* Effect.logInfo(`clean up of ${cloud.namespace} (${backend}): ${line}`)
    }
    for (const { backend, error } of failed) {
      yield* Effect.logError(`clean up of ${cloud.namespace} (${backend}) failed: ${error.message}`)
    }
    const ledgerFile = Ledger.ledgerFile(stateDir, cloud.namespace)
    for (const file of deadRunFiles(ledgerFile)) {
      yield* Effect.try({
        try: () => fs.rmSync(file, { force: true }),
        catch: (e) =>
          CloudError.state(file, `cannot remove the killed run's file: ${CloudError.messageOf(e)}`, {
            cause: e
          })
      })
      yield* Effect.logInfo(`clean up of ${cloud.namespace}: removed ${file}`)
    }
    if (failed.length > 0) {
      return yield* CloudError.state(
        Ledger.ledgerFile(stateDir, cloud.namespace),
        `clean up failed on ${failed.map((f) => f.backend).join(", ")}: fix the cause above and run ` +
          `CLOUD clean up again (what was removed stays removed)`
      )
    }
  })

/** How `CLOUD prometheus import` waits for the user: a line "stop", or the end of its input. */
export const WaitForStop = Context.Reference<Effect.Effect<void>>("@tezt-cloud/cli/commands/cloud/WaitForStop", {
  defaultValue: () => Orchestrator.waitForLine((line) => line.trim() === "stop")
})

/**
 * `CLOUD prometheus import --prometheus-snapshots a[:port] b[:port]`: serves each snapshot with its own Prometheus
 * (on `--prometheus-port + i` unless a port is given) until "stop" is typed or Ctrl+C; with `--grafana`, one
 * Grafana datasource per snapshot (a single `Prometheus` with `--grafana-legacy-source`).
 */
export const prometheusImport = (stateDir: string) =>
  Effect.gen(function*() {
    const cloud = yield* Cloud.Cloud
    const config = cloud.config
    const snapshots = config.prometheusSnapshots
    if (snapshots.length === 0) {
      return yield* CloudError.config(
        "--prometheus-snapshots",
        "give at least one snapshot to import, as path[:port]"
      )
    }
    if (config.grafana && config.grafanaLegacySource && snapshots.length > 1) {
      return yield* CloudError.config("--grafana-legacy-source", "names one datasource: import one snapshot only")
    }
    const dir = path.join(
      Ledger.namespaceDir(stateDir, cloud.namespace),
      "imports",
      new Date().toISOString().replaceAll(/[:.]/g, "-")
    )
    const served = yield* Effect.forEach(snapshots, (snapshot, i) =>
      Prometheus.serveSnapshot({
        snapshot: path.resolve(snapshot.path),
        host: Endpoints.listenHost(config),
        port: snapshot.port,
        dir: path.join(dir, `prometheus-${i}`),
        namespace: cloud.namespace
      }).pipe(
        // The copy it serves is recorded in the namespace's ledger, for `CLOUD clean up` after a kill -9.
        Effect.provide(Ledger.Ledger.layer(stateDir, cloud.namespace)),
        Effect.tap((p) => Effect.logInfo(`prometheus: ${snapshot.path} is served at ${p.url}`)),
        Effect.map((p) => ({ snapshot, url: p.url }))
      ))
    if (config.grafana) {
      yield* Grafana.setUp({
        dir: path.join(dir, "grafana"),
        url: Endpoints.grafana(config),
        credentials: RunMonitor.credentials(config),
        datasources: config.grafanaLegacySource
          ? [Grafana.runDatasource(served[0]!.url)]
          : served.map((s, i) => ({
            name: `Prometheus ${path.basename(s.snapshot.path)}`,
            uid: `tezt-cloud-snapshot-${i}`,
            url: s.url,
            isDefault: i === 0
          }))
      })
    }
    yield* Effect.logInfo("Type \"stop\" (or press Ctrl+C) to stop.")
    yield* yield* WaitForStop
  }).pipe(Effect.provide(NodeServices.layer))
