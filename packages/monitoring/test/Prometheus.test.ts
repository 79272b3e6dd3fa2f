/**
 * Prometheus: the generated configuration (pure), then the real Debian binary: it scrapes our exposition without
 * error, hot-reloads a new source without restarting, exports a snapshot when its scope closes, and serves a
 * snapshot again for import.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { InheritedEnv } from "@tezt-cloud/core"
import { Effect, Exit, Scope } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Metrics, Prometheus } from "../src/index.ts"
import { eventually, freePort, liveWith, platform, request, serveMetrics } from "./utils.ts"

const job = (name: string, ...addresses: ReadonlyArray<string>): Prometheus.Job => ({
  name,
  metricsPath: "/metrics",
  targets: addresses.map((address) => ({ address, labels: { app: name } }))
})

describe("Prometheus configuration", () => {
  it("a new job is appended; a known one gets its targets merged, sorted and without duplicates", () => {
    const jobs = Prometheus.mergeJob(
      Prometheus.mergeJob([job("a", "h:2")], job("b", "h:1")),
      job("a", "h:3", "h:1", "h:2")
    )
    assert.deepStrictEqual(jobs.map((j) => [j.name, j.targets.map((t) => t.address)]), [
      ["a", ["h:1", "h:2", "h:3"]],
      ["b", ["h:1"]]
    ])
  })

  it("is JSON, which Prometheus reads as YAML, with labels and params", () => {
    const text = Prometheus.renderConfig(2, [{
      name: "netdata",
      metricsPath: "/api/v1/allmetrics",
      params: { format: ["prometheus"] },
      targets: [{ address: "127.0.0.1:19999", labels: { app: "agent-000" } }]
    }])
    assert.deepStrictEqual(JSON.parse(text), {
      global: { scrape_interval: "2s", evaluation_interval: "2s" },
      scrape_configs: [{
        job_name: "netdata",
        metrics_path: "/api/v1/allmetrics",
        params: { format: ["prometheus"] },
        static_configs: [{ targets: ["127.0.0.1:19999"], labels: { app: "agent-000" } }]
      }]
    })
  })
})

/** This file's directories, all under one removed after the file. */
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-test-prometheus-"))
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }))
const tmp = (name: string) => fs.mkdtempSync(path.join(tmpRoot, `${name}-`))

const startPrometheus = (options: Partial<Prometheus.Options> = {}) =>
  Effect.gen(function*() {
    const port = yield* Effect.promise(freePort)
    return yield* Prometheus.start({
      host: "127.0.0.1",
      port,
      scrapeInterval: 1,
      jobs: [],
      dir: tmp("prometheus"),
      namespace: "test-prometheus",
      ...options
    })
  })

interface Target {
  readonly labels: Record<string, string>
  readonly health: string
  readonly lastError: string
  readonly scrapePool: string
}

const targets = (url: string) =>
  request(`${url}/api/v1/targets`).pipe(
    Effect.map((r) => (JSON.parse(r.body) as { data: { activeTargets: Array<Target> } }).data.activeTargets)
  )

/** The value of the one series `query` returns, once Prometheus has it. */
const queryValue = (url: string, query: string) =>
  eventually(
    request(`${url}/api/v1/query?query=${encodeURIComponent(query)}`).pipe(Effect.map((r) => {
      const result = (JSON.parse(r.body) as { data?: { result?: Array<{ value: [number, string] }> } }).data?.result
      return result?.[0]?.value[1]
    })),
    `Prometheus has no value for ${query}`
  )

describe("Prometheus exposure", () => {
  it.effect("listening beyond loopback is refused before anything starts: its admin API is open", () =>
    Effect.gen(function*() {
      const dir = path.join(tmp("prometheus-exposed"), "prometheus")
      for (const host of ["0.0.0.0", "10.0.0.1", "::"]) {
        const error = yield* Effect.flip(startPrometheus({ host, dir }))
        assert.strictEqual(
          error.message,
          `prometheus: it must listen on a loopback address, not ${host}: its admin API has no authentication`
        )
      }
      assert.isFalse(fs.existsSync(dir), "nothing created")
    }).pipe(Effect.scoped, Effect.provide(platform)))
})

const live = liveWith("prometheus")

describe("Prometheus daemon", () => {
  live("does not inherit the orchestrator's secrets: only the harmless part of its environment", () => {
    const secrets = {
      TEZT_CLOUD_GRAFANA_TOKEN: "grafana-secret",
      TEZT_CLOUD_AUTH_PASSWORD: "auth-secret",
      TEZTCLOUD_SLACK_BOT_TOKEN: "slack-secret",
      SOME_CLOUD_CREDENTIAL: "cloud-secret"
    }
    return Effect.acquireRelease(
      Effect.sync(() => Object.assign(process.env, secrets)),
      () => Effect.sync(() => Object.keys(secrets).forEach((name) => delete process.env[name]))
    ).pipe(
      Effect.andThen(startPrometheus()),
      Effect.map((prometheus) => {
        const environ = fs.readFileSync(`/proc/${prometheus.pid}/environ`, "latin1")
        for (const secret of Object.values(secrets)) assert.notInclude(environ, secret)
        const names = environ.split("\0").filter((v) => v !== "").map((v) => v.slice(0, v.indexOf("=")))
        // PWD is set by the shell that starts it.
        assert.deepStrictEqual(names.filter((n) => !InheritedEnv.isPassed(n) && n !== "PWD").toSorted(), [
          "TEZT_CLOUD_LOG",
          "TEZT_CLOUD_NS"
        ])
        assert.include(names, "PATH")
      }),
      Effect.scoped,
      Effect.provide(platform)
    )
  })

  live("scrapes the pushed metrics' exposition without error; escaped labels round-trip", () =>
    Effect.gen(function*() {
      const metrics = Metrics.make()
      const tricky = "C:\\dir \"quoted\"\nnext, {x=y}"
      yield* metrics.push({ name: "tezt_tricky", value: 42, labels: { path: tricky }, help: "h\\n", type: "gauge" })
      yield* metrics.push({ name: "tezt_special", value: Infinity, type: "counter" })
      yield* metrics.push({ name: "tezt_special", value: Number.NaN, labels: { a: "" } })
      const address = yield* serveMetrics(metrics)
      const prometheus = yield* startPrometheus({ jobs: [job("tezt_metrics", address)] })
      const target = yield* eventually(
        targets(prometheus.url).pipe(Effect.map((ts) => ts.find((t) => t.health !== "unknown"))),
        "the target was never scraped"
      )
      assert.strictEqual(target.lastError, "")
      assert.strictEqual(target.health, "up")
      const result = yield* eventually(
        request(`${prometheus.url}/api/v1/query?query=tezt_tricky`).pipe(Effect.map((r) => {
          const series = (JSON.parse(r.body) as { data: { result: Array<{ metric: Record<string, string> }> } }).data
            .result
          return series.length === 0 ? undefined : series
        })),
        "tezt_tricky never appeared"
      )
      assert.strictEqual(result[0]!.metric.path, tricky)
      assert.strictEqual(yield* queryValue(prometheus.url, "tezt_special"), "+Inf")
    }).pipe(Effect.scoped, Effect.provide(platform)))

  live(
    "hot-reloads a new source without a restart: same pid, same start time, the new target scraped",
    () =>
      Effect.gen(function*() {
        const metrics = Metrics.make()
        yield* metrics.push({ name: "tezt_reloaded", value: 7 })
        const address = yield* serveMetrics(metrics)
        const prometheus = yield* startPrometheus()
        const startTime = (yield* request(`${prometheus.url}/api/v1/status/runtimeinfo`)).body.match(
          /"startTime":"([^"]+)"/
        )![1]
        assert.deepStrictEqual(yield* targets(prometheus.url), [])
        yield* prometheus.addJob(job("late_source", address))
        yield* prometheus.addJob(job("late_source", address))
        assert.strictEqual(yield* queryValue(prometheus.url, "tezt_reloaded{job=\"late_source\"}"), "7")
        const pool = (yield* targets(prometheus.url)).map((t) => t.scrapePool)
        assert.deepStrictEqual(pool, ["late_source"])
        assert.strictEqual(
          (yield* request(`${prometheus.url}/api/v1/status/runtimeinfo`)).body.match(/"startTime":"([^"]+)"/)![1],
          startTime
        )
        assert.doesNotThrow(() => process.kill(prometheus.pid, 0))
        const config = (yield* request(`${prometheus.url}/api/v1/status/config`)).body
        assert.include(config, "late_source")
      }).pipe(Effect.scoped, Effect.provide(platform))
  )

  live("exports a snapshot when its scope closes; serveSnapshot answers queries from it", () =>
    Effect.gen(function*() {
      const exportTo = path.join(tmp("export"), "snapshot")
      const metrics = Metrics.make()
      yield* metrics.push({ name: "tezt_kept", value: 12.5 })
      const scope = yield* Scope.make()
      const address = yield* serveMetrics(metrics).pipe(Scope.provide(scope))
      const prometheus = yield* startPrometheus({ jobs: [job("tezt_metrics", address)], exportTo }).pipe(
        Scope.provide(scope)
      )
      yield* queryValue(prometheus.url, "tezt_kept")
      yield* Scope.close(scope, Exit.void)
      assert.isTrue(fs.existsSync(exportTo))
      assert.isTrue(fs.readdirSync(exportTo).some((block) => fs.existsSync(path.join(exportTo, block, "meta.json"))))
      // The process is gone and its storage removed; the snapshot stays.
      assert.throws(() => process.kill(prometheus.pid, 0))
      const before = fs.readdirSync(exportTo).toSorted()
      const port = yield* Effect.promise(freePort)
      const served = yield* Prometheus.serveSnapshot({
        snapshot: exportTo,
        host: "127.0.0.1",
        port,
        dir: tmp("import"),
        namespace: "test-prometheus"
      })
      const value = yield* queryValue(served.url, "last_over_time(tezt_kept[1h])")
      assert.strictEqual(value, "12.5")
      assert.deepStrictEqual(fs.readdirSync(exportTo).toSorted(), before, "the snapshot itself is left untouched")
    }).pipe(Effect.scoped, Effect.provide(platform)))

  live("an export path that exists already gets the snapshot next to it, never over it", () =>
    Effect.gen(function*() {
      const exportTo = tmp("taken")
      fs.writeFileSync(path.join(exportTo, "keep.txt"), "mine")
      const prometheus = yield* startPrometheus()
      const target = yield* prometheus.snapshot(exportTo)
      assert.notStrictEqual(target, exportTo)
      assert.isTrue(target.startsWith(`${exportTo}-`))
      assert.deepStrictEqual(fs.readdirSync(exportTo), ["keep.txt"])
    }).pipe(Effect.scoped, Effect.provide(platform)))

  live("a taken port is one clear error naming --prometheus-port", () =>
    Effect.gen(function*() {
      const first = yield* startPrometheus()
      const port = Number(new URL(first.url).port)
      const error = yield* Effect.flip(startPrometheus({ port }))
      assert.strictEqual(error.reason._tag, "ServiceFailed")
      assert.include(error.message, `cannot listen on 127.0.0.1:${port}`)
      assert.include(error.message, "--prometheus-port")
    }).pipe(Effect.scoped, Effect.provide(platform)))

  live("a configuration Prometheus refuses is an error, and rolled back", () =>
    Effect.gen(function*() {
      const prometheus = yield* startPrometheus()
      const error = yield* Effect.flip(prometheus.addJob({
        ...job("bad", "127.0.0.1:1"),
        targets: [{ address: "127.0.0.1:1", labels: { "bad-label": "x" } }]
      }))
      assert.include(error.message, "refused its new configuration")
      assert.deepStrictEqual(yield* prometheus.jobs, [])
      yield* prometheus.addJob(job("good", "127.0.0.1:1"))
      assert.deepStrictEqual((yield* prometheus.jobs).map((j) => j.name), ["good"])
    }).pipe(Effect.scoped, Effect.provide(platform)))
})
