/**
 * The website on a real port, fed by the monitoring stack over in-memory agents: `/metrics`, the page's content
 * (configurations, links with hints, commands, services added mid-run), `/api/run` with the run's events.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  type AgentConfig,
  CloudConfig,
  Deployment,
  Orchestrator,
  RunEvents,
  RunServices,
  Scenario,
  TestCloud
} from "@tezt-cloud/core"
import { Metrics, RunMonitor } from "@tezt-cloud/monitoring"
import { Effect, Layer } from "effect"
import * as net from "node:net"
import { listening } from "../../../test/fixtures/Listeners.ts"
import { freePort, platform, request } from "../../monitoring/test/utils.ts"
import { Website } from "../src/index.ts"
import * as Page from "../src/Page.ts"

/** Deploys in-memory agents for `config` in the current scope. */
const testAgents = (config: CloudConfig.CloudConfig, vms: ReadonlyArray<AgentConfig.AgentRequest>) =>
  Effect.gen(function*() {
    const configs = yield* Orchestrator.agentConfigs(
      Scenario.make({ title: "", tags: [], vms, run: Effect.void }),
      config
    )
    const deployment = yield* Deployment.Deployment
    return yield* deployment.deploy(configs)
  }).pipe(Effect.provide(TestCloud.layerDeployment()), Effect.provideService(CloudConfig.CurrentConfig, config))

/** Starts the stack with the website on a free port for two in-memory agents; returns the hooks and the URL. */
const start = (input: CloudConfig.Input = {}) =>
  Effect.gen(function*() {
    const port = yield* Effect.promise(freePort)
    const config = yield* TestCloud.config({ website: true, website_port: port, ...input })
    const agents = yield* testAgents(config, [{ name: "node-a" }, { machineType: "e2-small", diskSizeGb: 50 }])
    const events = yield* RunEvents.RunEvents
    yield* events.emit({
      type: "run-start",
      namespace: "test",
      scenario: "website test",
      backend: "test",
      artifactsDir: ""
    })
    const services = yield* RunServices.RunServices.pipe(
      Effect.provide(RunMonitor.layer({ config, artifactsDir: "/nowhere", front: Website.front }))
    )
    const hooks = yield* services.start(agents)
    return { hooks, events, url: `http://127.0.0.1:${port}`, port }
  })

const withEvents = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  self.pipe(Effect.scoped, Effect.provide(Layer.mergeAll(RunEvents.RunEvents.layer([]), platform)))

describe("Website", () => {
  it.live("serves pushed metrics on /metrics and /metrics.txt, in the Prometheus text format", () =>
    Effect.gen(function*() {
      const { hooks, url } = yield* start()
      yield* hooks.pushMetric({ name: "tezt_blocks", value: 3, labels: { node: "a" }, help: "Blocks", type: "counter" })
      for (const path of ["/metrics", "/metrics.txt"]) {
        const response = yield* request(`${url}${path}`)
        assert.strictEqual(response.status, 200)
        assert.strictEqual(response.contentType, "text/plain; version=0.0.4; charset=utf-8")
        assert.strictEqual(
          response.body,
          "# HELP tezt_blocks Blocks\n# TYPE tezt_blocks counter\ntezt_blocks{node=\"a\"} 3\n"
        )
      }
    }).pipe(withEvents))

  it.live("the page lists every agent's configuration, commands, links with hints, and services added later", () =>
    Effect.gen(function*() {
      const { hooks, url } = yield* start()
      const before = (yield* request(`${url}/`)).body
      assert.include(before, "<h1>website test</h1>")
      for (const text of ["node-a", "agent-001", "e2-small", "n1-standard-2", "50 GB", "test-cloud node-a"]) {
        assert.include(before, text)
      }
      for (const hint of ["Prometheus disabled. Use --prometheus", "Grafana disabled. Use --grafana"]) {
        assert.include(before, hint)
      }
      assert.include(before, "Netdata disabled. Use --monitoring")
      assert.include(before, "Charts need Prometheus. Use --prometheus to activate it.")
      assert.notInclude(before, "my-explorer")
      yield* hooks.addService({ name: "my-explorer", url: "http://127.0.0.1:1/<x>" })
      const after = (yield* request(`${url}/`)).body
      assert.include(after, "href=\"http://127.0.0.1:1/&lt;x&gt;\"")
      assert.include(after, ">my-explorer</a>")
    }).pipe(withEvents))

  it.effect("an agent shows the fields of its backend: VM fields on GCP only, the image where one runs", () =>
    Effect.gen(function*() {
      const config = yield* TestCloud.config()
      const [agent] = yield* testAgents(config, [{ name: "a" }])
      const on = (backend: string, inner?: string) =>
        Page.agentModel({ ...agent!, descriptor: { backend, ...(inner === undefined ? {} : { inner }) } }, [])
      for (const local of [on("localhost"), on("ssh-host"), on("proxy", "localhost")]) {
        assert.deepStrictEqual(
          [local.machineType, local.disk, local.os, local.maxRunDuration, local.image],
          [undefined, undefined, undefined, undefined, undefined]
        )
        assert.strictEqual(local.binariesPath, "/tmp/tezt-runners")
      }
      const docker = on("docker")
      assert.strictEqual(docker.machineType, undefined)
      assert.strictEqual(docker.image, "test")
      const gcp = on("gcp")
      assert.strictEqual(gcp.machineType, "n1-standard-2")
      assert.strictEqual(gcp.os, "cos")
      const page = Page.render({
        namespace: "test",
        scenario: undefined,
        backend: undefined,
        agents: [on("localhost")],
        links: [],
        charts: [{ id: "c", title: "CPU", query: "up", hint: "Empty until a binary is registered" }],
        scrapeInterval: 5,
        events: []
      })
      assert.notInclude(page, "Machine type")
      assert.notInclude(page, "<th>OS</th>")
      assert.include(page, "<th>Backend</th><td>localhost</td>")
      assert.include(page, `<p class="hint">Empty until a binary is registered</p>`)
    }).pipe(Effect.scoped))

  it.live("/api/run carries the page's model and the run's events, the ones before the website started too", () =>
    Effect.gen(function*() {
      const { events, url } = yield* start()
      yield* events.emit({ type: "log", level: "INFO", message: "after the start" })
      const run = JSON.parse((yield* request(`${url}/api/run`)).body) as {
        namespace: string
        agents: Array<{ name: string }>
        events: Array<{ type: string; message?: string }>
      }
      assert.strictEqual(run.namespace, "test")
      assert.deepStrictEqual(run.agents.map((a) => a.name), ["node-a", "agent-001"])
      assert.deepStrictEqual(run.events.map((e) => e.type), ["run-start", "log"])
      assert.strictEqual(run.events[1]!.message, "after the start")
    }).pipe(withEvents))

  it.live("listens on loopback only, whatever the mode: it has no authentication", () =>
    Effect.gen(function*() {
      const { port } = yield* start({ localhost: false, ssh_host: "me@example.org" })
      const addresses = listening(process.pid)
      assert.include(addresses, `127.0.0.1:${port}`)
      assert.notInclude(addresses, `0.0.0.0:${port}`)
      const events = yield* RunEvents.RunEvents
      const view: RunMonitor.View = {
        config: yield* TestCloud.config({ website: true, website_port: port }),
        agents: [],
        metrics: Metrics.make(),
        links: Effect.succeed([]),
        binaries: Effect.succeed(new Map()),
        subscribe: events.subscribe
      }
      const error = yield* Effect.flip(Website.serve(view, { host: "0.0.0.0", port }))
      assert.strictEqual(
        error.message,
        "website: it must listen on a loopback address, not 0.0.0.0: it has no authentication"
      )
    }).pipe(withEvents))

  it.live("serves uPlot and its own assets locally", () =>
    Effect.gen(function*() {
      const { url } = yield* start()
      for (const asset of ["uPlot.iife.min.js", "uPlot.min.css", "app.js", "verdicts.js", "style.css"]) {
        const response = yield* request(`${url}/assets/${asset}`)
        assert.strictEqual(response.status, 200, asset)
        assert.isAbove(response.body.length, 100)
      }
      assert.strictEqual((yield* request(`${url}/assets/nope.js`)).status, 404)
      assert.strictEqual((yield* request(`${url}/api/prometheus/query?query=up`)).status, 404)
    }).pipe(withEvents))

  it.live("a port in use is one clear error naming --website-port", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const blocker = net.createServer()
      yield* Effect.acquireRelease(
        Effect.promise(() => new Promise<void>((resolve) => blocker.listen(port, "127.0.0.1", resolve))),
        () => Effect.promise(() => new Promise<void>((resolve) => blocker.close(() => resolve())))
      )
      const error = yield* Effect.flip(start({ website_port: port }))
      assert.strictEqual(error.reason._tag, "ServiceFailed")
      assert.include(error.message, `website: cannot listen on 127.0.0.1:${port}`)
      assert.include(error.message, "choose another --website-port")
      assert.notInclude(error.message, "\n")
    }).pipe(withEvents))

  it.live("with --no-website nothing listens", () =>
    Effect.gen(function*() {
      const { url } = yield* start({ website: false })
      assert.strictEqual((yield* request(`${url}/metrics`)).status, 0)
    }).pipe(withEvents))
})
