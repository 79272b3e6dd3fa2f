/**
 * Grafana: the shipped dashboards and provisioning files, and the HTTP API calls against a fake Grafana that
 * answers as the documented API does (no Grafana is packaged where tezt-cloud runs).
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { RunEvents, RunServices, TestCloud } from "@tezt-cloud/core"
import { Effect, Layer, Logger } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Grafana, RunMonitor } from "../src/index.ts"
import { fakeGrafana, freePort, platform } from "./utils.ts"

/** This file's directories, all under one removed after the file. */
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-test-grafana-"))
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }))
const tmp = (name: string) => fs.mkdtempSync(path.join(tmpRoot, `${name}-`))

/** Every file under `dir`, recursively. */
const files = (dir: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(path.join(dir, e.name)) : [path.join(dir, e.name)]
  )

describe("Grafana dashboards", () => {
  it("the shipped dashboards have a uid and a title, and read the datasource of their `datasource` variable", () => {
    const dashboards = Grafana.dashboards()
    assert.deepStrictEqual(dashboards.map((d) => d.file), ["tezt-cloud-agents.json", "tezt-cloud-metrics.json"])
    for (const { json } of dashboards) {
      const d = json as {
        uid: string
        title: string
        templating: { list: Array<{ name: string; type: string }> }
        panels: Array<{ datasource: { uid: string }; targets: Array<{ expr: string }> }>
      }
      assert.match(d.uid, /^tezt-cloud-/)
      assert.match(d.title, /^Tezt Cloud - /)
      assert.deepInclude(d.templating.list.map((v) => [v.name, v.type]), ["datasource", "datasource"])
      assert.isAbove(d.panels.length, 1)
      for (const panel of d.panels) {
        assert.strictEqual(panel.datasource.uid, "${datasource}")
        assert.isAbove(panel.targets[0]!.expr.length, 0)
      }
    }
  })

  it("the provisioning files name the run's Prometheus and load the dashboards' copy", () => {
    const dir = tmp("grafana")
    const provisioning = Effect.runSync(
      Grafana.writeProvisioning(dir, [Grafana.runDatasource("http://127.0.0.1:9091")])
    )
    const datasources = JSON.parse(
      fs.readFileSync(path.join(provisioning, "datasources", "datasource.yml"), "utf8")
    ) as { datasources: Array<{ name: string; url: string; type: string }> }
    assert.deepInclude(datasources.datasources[0], { name: "Prometheus", url: "http://127.0.0.1:9091" })
    const providers = JSON.parse(
      fs.readFileSync(path.join(provisioning, "dashboards", "tezt-cloud.yml"), "utf8")
    ) as { providers: Array<{ options: { path: string } }> }
    assert.deepStrictEqual(fs.readdirSync(providers.providers[0]!.options.path).toSorted(), [
      "tezt-cloud-agents.json",
      "tezt-cloud-metrics.json"
    ])
  })
})

describe("Grafana HTTP API", () => {
  it.live("creates the datasource, then updates it; uploads every dashboard with overwrite, with the token", () =>
    Effect.gen(function*() {
      const grafana = yield* fakeGrafana({ token: "glsa-secret" })
      const options = {
        url: grafana.url,
        credentials: { token: "glsa-secret" },
        datasources: [Grafana.runDatasource("http://127.0.0.1:9091")],
        dashboards: Grafana.dashboards()
      }
      const titles = yield* Grafana.provision(options)
      assert.deepStrictEqual(titles, ["Tezt Cloud - agents", "Tezt Cloud - pushed metrics"])
      yield* Grafana.provision(options)
      const calls = grafana.requests.map((r) => `${r.method} ${r.path}`)
      assert.deepStrictEqual(calls, [
        "GET /api/datasources/uid/tezt-cloud-prometheus",
        "POST /api/datasources",
        "POST /api/dashboards/db",
        "POST /api/dashboards/db",
        "GET /api/datasources/uid/tezt-cloud-prometheus",
        "PUT /api/datasources/uid/tezt-cloud-prometheus",
        "POST /api/dashboards/db",
        "POST /api/dashboards/db"
      ])
      assert.isTrue(grafana.requests.every((r) => r.authorization === "Bearer glsa-secret"))
      const upload = grafana.requests.find((r) => r.path === "/api/dashboards/db")!.body as {
        overwrite: boolean
        dashboard: { id: unknown; uid: string }
      }
      assert.isTrue(upload.overwrite)
      assert.isNull(upload.dashboard.id)
      assert.deepStrictEqual([...grafana.dashboards.keys()].toSorted(), ["tezt-cloud-agents", "tezt-cloud-metrics"])
    }).pipe(Effect.scoped))

  it.live("a refused token is one clear error, and the token is not in it", () =>
    Effect.gen(function*() {
      const grafana = yield* fakeGrafana({ token: "right" })
      const error = yield* Effect.flip(Grafana.provision({
        url: grafana.url,
        credentials: { token: "wrong-token-123" },
        datasources: [Grafana.runDatasource("http://127.0.0.1:9091")],
        dashboards: []
      }))
      assert.strictEqual(error.reason._tag, "ServiceFailed")
      assert.include(error.message, "answered 401")
      assert.notInclude(error.message, "wrong-token-123")
    }).pipe(Effect.scoped))

  it.live("basic auth from --auth-username/--auth-password when there is no token", () =>
    Effect.gen(function*() {
      const grafana = yield* fakeGrafana()
      yield* Grafana.provision({
        url: grafana.url,
        credentials: { basic: { user: "admin", password: "pw" } },
        datasources: [],
        dashboards: Grafana.dashboards()
      })
      assert.strictEqual(grafana.requests[0]!.authorization, `Basic ${Buffer.from("admin:pw").toString("base64")}`)
    }).pipe(Effect.scoped))
})

/** Starts the stack with `--grafana` (no Prometheus) and collects its logs. */
const startStack = (grafanaUrl: string, token: string | undefined, artifactsDir: string, logs: Array<string>) =>
  Effect.gen(function*() {
    const config = {
      ...(yield* TestCloud.config({ grafana: true, prometheus: false, website: false, grafana_url: grafanaUrl })),
      grafanaToken: token
    }
    const services = yield* RunServices.RunServices.pipe(Effect.provide(RunMonitor.layer({ config, artifactsDir })))
    yield* services.start([])
  }).pipe(
    Effect.provide(Layer.mergeAll(
      RunEvents.RunEvents.layer([]),
      platform,
      Logger.layer([Logger.make(({ message }) => void logs.push(String(message)))])
    ))
  )

describe("RunMonitor with --grafana", () => {
  it.live("provisions the Grafana at --grafana-url; the token is in no log and no file", () =>
    Effect.gen(function*() {
      const grafana = yield* fakeGrafana({ token: "glsa-do-not-leak" })
      const artifactsDir = tmp("artifacts")
      const logs: Array<string> = []
      yield* startStack(grafana.url, "glsa-do-not-leak", artifactsDir, logs)
      assert.strictEqual(grafana.dashboards.size, 2)
      assert.isTrue(logs.some((l) => l.includes(`grafana: ${grafana.url}`)))
      assert.isTrue(fs.existsSync(path.join(artifactsDir, "grafana", "provisioning", "datasources")))
      for (const file of files(artifactsDir)) assert.notInclude(fs.readFileSync(file, "utf8"), "glsa-do-not-leak")
      for (const line of logs) assert.notInclude(line, "glsa-do-not-leak")
    }).pipe(Effect.scoped))

  it.live("no Grafana answering is a warning, not a failure; the provisioning files are written", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const artifactsDir = tmp("artifacts")
      const logs: Array<string> = []
      yield* startStack(`http://127.0.0.1:${port}`, undefined, artifactsDir, logs)
      assert.isTrue(logs.some((l) => l.includes(`grafana: nothing answers at http://127.0.0.1:${port}/api/health`)))
      assert.isTrue(fs.existsSync(path.join(artifactsDir, "grafana", "dashboards", "tezt-cloud-agents.json")))
    }).pipe(Effect.scoped))
})
