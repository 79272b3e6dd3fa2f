/**
 * The monitoring stack: what it starts per the cascade, and with the real Prometheus, the run's sources, and the
 * snapshot exported by the teardown even when the scenario failed. A tiny HTTP front stands in for the website.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import {
  Cloud,
  CloudConfig,
  CloudError,
  Orchestrator,
  RunEvents,
  RunServices,
  Scenario,
  TestCloud
} from "@tezt-cloud/core"
import { Effect, Exit, Layer, Schedule } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Endpoints, Prometheus, RunMonitor } from "../src/index.ts"
import { freePort, liveWith, platform, request, serveMetrics } from "./utils.ts"

const resolveConfig = (input: CloudConfig.Input) => CloudConfig.resolve({ tezt_cloud: "ns", ...input }, {}, {})

describe("Endpoints", () => {
  it.effect("the run's services listen on loopback in every mode: they have no authentication", () =>
    Effect.gen(function*() {
      for (const input of [{ localhost: true }, { ssh_host: "me@example.org" }, {}, { proxy: true }]) {
        const config = yield* resolveConfig(input)
        assert.strictEqual(Endpoints.listenHost(config), "127.0.0.1", config.mode)
      }
      assert.deepStrictEqual(
        ["127.0.0.1", "127.1.2.3", "::1", "localhost", "0.0.0.0", "::", "10.0.0.1", "127.0.0.1.example.org"].map(
          Endpoints.isLoopback
        ),
        [true, true, true, true, false, false, false, false]
      )
    }))
})

describe("RunMonitor: what starts, per the defaults cascade", () => {
  const all = (on: boolean) => ({ website: on, prometheus: on, grafana: on, netdata: false, processExporter: on })
  it.effect.each([
    { name: "--localhost: all off", input: { localhost: true }, expected: all(false) },
    { name: "cloud mode: all on but netdata", input: {}, expected: all(true) },
    { name: "proxy mode: all on but netdata", input: { proxy: true }, expected: all(true) },
    { name: "remote orchestrator", input: { proxy: true, localhost: true }, expected: all(true) },
    {
      name: "--localhost --prometheus: the website and process monitoring follow",
      input: { localhost: true, prometheus: true },
      expected: { website: true, prometheus: true, grafana: false, netdata: false, processExporter: true }
    },
    {
      name: "--localhost --website: the website alone",
      input: { localhost: true, website: true },
      expected: { website: true, prometheus: false, grafana: false, netdata: false, processExporter: false }
    },
    {
      name: "--monitoring is netdata, outside the cascade",
      input: { localhost: true, monitoring: true },
      expected: { website: false, prometheus: false, grafana: false, netdata: true, processExporter: false }
    },
    {
      name: "cloud --no-grafana: everything follows",
      input: { grafana: false },
      expected: all(false)
    }
  ])("$name", ({ expected, input }) =>
    Effect.gen(function*() {
      assert.deepStrictEqual(RunMonitor.plan(yield* resolveConfig(input)), expected)
    }))
})

/** A stand-in for the website: the exposition on `--website-port`. */
const metricsFront: RunMonitor.Front = (view) => Effect.asVoid(serveMetrics(view.metrics, view.config.websitePort))

/** This file's directories, all under one removed after the file. */
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-test-runmonitor-"))
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }))
const tmp = (name: string) => fs.mkdtempSync(path.join(tmpRoot, `${name}-`))

/** A configuration with the website and Prometheus on free ports, a 1 s scrape and a fresh export path. */
const monitoredConfig = Effect.gen(function*() {
  const prometheusPort = yield* Effect.promise(freePort)
  const websitePort = yield* Effect.promise(freePort)
  return yield* TestCloud.config({
    website: true,
    prometheus: true,
    process_monitoring: false,
    prometheus_port: prometheusPort,
    website_port: websitePort,
    prometheus_scrape_interval: 1,
    prometheus_export_path: path.join(tmp("export"), "snapshot")
  })
})

/** Runs `run` as a one-agent scenario on TestCloud agents with the stack. */
const runScenario = (config: CloudConfig.CloudConfig, run: Scenario.Scenario["run"]) =>
  Effect.gen(function*() {
    const scenario = Scenario.make({ title: "stack test", tags: [], vms: [{}], run })
    const configs = yield* Orchestrator.agentConfigs(scenario, config)
    return yield* Orchestrator.run(scenario, config, configs).pipe(
      Effect.provide(TestCloud.layerDeployment()),
      Effect.provide(RunMonitor.layer({ config, artifactsDir: tmp("artifacts"), front: metricsFront })),
      Effect.provideService(CloudConfig.CurrentConfig, config),
      Effect.provide(Layer.mergeAll(RunEvents.RunEvents.layer([]), platform)),
      Effect.exit
    )
  })

/** Waits (bounded) until Prometheus has a value for `promql`. */
const scraped = (config: CloudConfig.CloudConfig, promql: string) =>
  Prometheus.query(Endpoints.prometheus(config), promql).pipe(
    Effect.flatMap((samples) => samples.length > 0 ? Effect.succeed(samples) : Effect.fail(new Error("not yet"))),
    Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 300 })
  )

const live = liveWith("prometheus")

describe("RunMonitor with Prometheus", () => {
  live(
    "the teardown exports the snapshot even when the scenario failed, with what was scraped",
    () =>
      Effect.gen(function*() {
        const config = yield* monitoredConfig
        const exit = yield* runScenario(
          config,
          Effect.gen(function*() {
            const cloud = yield* Cloud.Cloud
            yield* cloud.pushMetric({ name: "tezt_before_failure", value: 3 })
            yield* scraped(config, "tezt_before_failure")
            return yield* Effect.fail(new Error("the scenario broke"))
          })
        )
        assert.isTrue(Exit.isFailure(exit))
        const error = Exit.isFailure(exit) ? exit.cause : undefined
        assert.include(String(error), "the scenario broke")
        assert.isTrue(fs.existsSync(config.prometheusExportPath))
        const port = yield* Effect.promise(freePort)
        const served = yield* Prometheus.serveSnapshot({
          snapshot: config.prometheusExportPath,
          host: "127.0.0.1",
          port,
          dir: tmp("import"),
          namespace: "test"
        })
        const samples = yield* Prometheus.query(served.url, "last_over_time(tezt_before_failure[1h])")
        assert.deepStrictEqual(samples.map((s) => s.value), ["3"])
      }).pipe(Effect.scoped, Effect.provide(platform))
  )

  live(
    "addPrometheusSource adds agent targets and merges a known job; bad sources are refused",
    () =>
      Effect.gen(function*() {
        const config = yield* monitoredConfig
        const exit = yield* runScenario(
          config,
          Effect.gen(function*() {
            const cloud = yield* Cloud.Cloud
            const agent = cloud.agents[0]!
            yield* cloud.addPrometheusSource({ name: "octez", targets: [{ agent, port: 1, appName: "node-1" }] })
            yield* cloud.addPrometheusSource({
              name: "octez",
              metricsPath: "/ignored",
              targets: [{ agent, port: 2, appName: "node-2" }, { agent, port: 1, appName: "node-1" }]
            })
            const body = (yield* request(`${Endpoints.prometheus(config)}/api/v1/status/config`)).body
            const yaml = (JSON.parse(body) as { data: { yaml: string } }).data.yaml
            assert.include(yaml, "job_name: octez")
            assert.include(yaml, "job_name: tezt_metrics")
            assert.strictEqual(yaml.match(/127\.0\.0\.1:1\b/g)?.length, 1)
            assert.strictEqual(yaml.match(/127\.0\.0\.1:2\b/g)?.length, 1)
            for (
              const bad of [
                { name: " ", targets: [] },
                { name: "x", targets: [{ agent, port: 70000, appName: "a" }] }
              ]
            ) {
              const error = yield* Effect.flip(cloud.addPrometheusSource(bad))
              assert.instanceOf(error, CloudError.CloudError)
              assert.strictEqual(error.reason._tag, "ServiceFailed")
            }
          })
        )
        assert.isTrue(Exit.isSuccess(exit), String(Exit.isFailure(exit) ? exit.cause : ""))
      }).pipe(Effect.scoped)
  )
})

describe("RunMonitor without Prometheus", () => {
  it.live("sources and binaries are accepted and ignored; the metrics are still kept", () =>
    Effect.gen(function*() {
      const config = yield* TestCloud.config({ website: false })
      const services = yield* RunServices.RunServices.pipe(
        Effect.provide(RunMonitor.layer({ config, artifactsDir: tmp("artifacts") }))
      )
      const hooks = yield* services.start([])
      yield* hooks.pushMetric({ name: "kept", value: 1 })
      assert.deepStrictEqual((yield* hooks.metrics).map((m) => m.name), ["kept"])
      yield* hooks.registerBinary({ name: "octez-node" })
    }).pipe(Effect.scoped, Effect.provide(Layer.mergeAll(RunEvents.RunEvents.layer([]), platform))))
})
