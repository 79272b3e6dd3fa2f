/**
 * The CLOUD group: maintenance jobs that deploy nothing (reference §3.4). Built here, not in `scenarios/`,
 * because they drive the backends and the monitoring parts directly.
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Cloud, CloudError, Ledger, Orchestrator, Scenario } from "@tezt-cloud/core"
import { Endpoints, Grafana, Prometheus, RunMonitor } from "@tezt-cloud/monitoring"
import { Context, Effect } from "effect"
import * as path from "node:path"
import * as Backends from "../Backends.ts"
import * as Docker from "./docker.ts"

/** `CLOUD clean up`: kills the processes and removes the sandboxes a killed run of the namespace left. */
export const cleanUp = (stateDir: string) =>
  Scenario.make({
    title: "Clean up what killed runs of the namespace left",
    tags: ["clean", "up"],
    run: Effect.gen(function*() {
      const cloud = yield* Cloud.Cloud
      const removed = yield* Backends.cleanUp(stateDir, cloud.config).pipe(
        Effect.provide(Ledger.Ledger.layer(stateDir, cloud.namespace))
      )
      yield* Effect.logInfo(
        `clean up of ${cloud.namespace}: ${removed.processes} process${removed.processes === 1 ? "" : "es"} killed, ` +
          `${removed.sandboxes.length} sandbox${removed.sandboxes.length === 1 ? "" : "es"} removed`
      )
      for (const dir of removed.sandboxes) yield* Effect.logInfo(`removed ${dir}`)
      for (const dir of removed.hosts) yield* Effect.logInfo(`removed ${dir} and its processes`)
      const { containers, networks, images } = removed.docker
      if (containers.length + networks.length + images.length > 0) {
        yield* Effect.logInfo(
          `removed ${containers.length} container${containers.length === 1 ? "" : "s"}, ${networks.length} ` +
            `network${networks.length === 1 ? "" : "s"} and ${images.length} image tag${
              images.length === 1 ? "" : "s"
            } ` +
            `of ${cloud.namespace} from Docker`
        )
      }
      for (const name of [...containers, ...networks, ...images]) yield* Effect.logInfo(`removed ${name}`)
    })
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
  Scenario.make({
    title: "Import snapshots into prometheus",
    tags: ["prometheus", "import"],
    run: Effect.gen(function*() {
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
  })

export const group = (stateDir: string) =>
  Scenario.group("CLOUD", "Maintenance jobs: clean up, prometheus import, docker base|build|push|registry, …", [
    cleanUp(stateDir),
    prometheusImport(stateDir),
    Docker.base,
    Docker.buildImage,
    Docker.push,
    Docker.registryDeploy(stateDir)
  ])
