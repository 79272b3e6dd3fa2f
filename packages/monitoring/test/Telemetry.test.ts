import { assert, describe, it } from "@effect/vitest"
import { Telemetry as Core } from "@tezt-cloud/core"
import { Context, Duration, Effect, Exit, Fiber, Layer, Logger, Metric, Scope } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Telemetry from "../src/Telemetry.ts"
import { eventually, freePort, otlpReceiver, request } from "./utils.ts"

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-telemetry-"))

/** Builds the layer in a scope of the test's own, closed by `close` (as the run's end closes it). */
const build = (options: Telemetry.Options) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(Telemetry.layer(options), scope)
    return { context, close: (exit: Exit.Exit<unknown, unknown>) => Scope.close(scope, exit) }
  })

/** The test's OTLP/HTTP receiver, for the test's scope. */
const receiver = Effect.acquireRelease(Effect.promise(otlpReceiver), (r) => Effect.promise(r.close))

describe("Telemetry", () => {
  it.live("without an endpoint: each span is a line of spans.jsonl as it ends, kept for the timeline", () =>
    Effect.gen(function*() {
      const dir = tmp()
      const { close, context } = yield* build({ artifactsDir: dir, namespace: "t", env: {} })
      const telemetry = Context.get(context, Core.Telemetry)
      yield* Effect.void.pipe(Effect.withSpan("Test.ok", { attributes: { agent: "a" } }), Effect.provide(context))
      yield* Effect.fail("boom").pipe(Effect.withSpan("Test.fails"), Effect.ignore, Effect.provide(context))
      // A span still running is on the timeline, not in the file; interrupted, it is in both.
      const fiber = yield* Effect.never.pipe(Effect.withSpan("Test.runs"), Effect.provide(context), Effect.forkChild)
      const running = yield* eventually(
        telemetry.spans.pipe(Effect.map((spans) => spans.find((s) => s.name === "Test.runs"))),
        "the running span"
      )
      assert.strictEqual(running.status, "running")
      const lines = () => fs.readFileSync(Telemetry.spansFile(dir), "utf8").trim().split("\n").map((l) => JSON.parse(l))
      assert.deepStrictEqual(lines().map((s) => [s.name, s.status, s.attributes.agent]), [
        ["Test.ok", "ok", "a"],
        ["Test.fails", "error", undefined]
      ])
      assert.strictEqual(lines()[1].error, "boom")
      yield* Fiber.interrupt(fiber)
      yield* close(Exit.void)
      assert.deepStrictEqual(lines().map((s) => s.status), ["ok", "error", "interrupted"])
      assert.isTrue(lines().every((s) => typeof s.start === "number" && s.end >= s.start))
      fs.rmSync(dir, { recursive: true, force: true })
    }))

  it.live("with an endpoint: spans go to the OTLP/HTTP receiver, flushed when the run ends; metrics are served", () =>
    Effect.gen(function*() {
      const dir = tmp()
      const otlp = yield* receiver
      const { close, context } = yield* build({
        artifactsDir: dir,
        namespace: "t",
        env: { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url }
      })
      const telemetry = Context.get(context, Core.Telemetry)
      yield* Effect.void.pipe(Effect.withSpan("Test.exported", { attributes: { agent: "b" } }), Effect.provide(context))
      yield* Core.commandRan(12)
      for (const counter of [Core.sshReconnects, Core.executorRestarts]) yield* Metric.update(counter, 1)
      for (const gauge of [Core.deploySeconds, Core.teardownSeconds]) yield* Metric.update(gauge, 1.5)
      const metrics = yield* request(`http://${telemetry.metricsTarget}/metrics`)
      assert.strictEqual(metrics.status, 200)
      // The names the README gives.
      for (
        const name of [
          "tezt_cloud_commands_total",
          "tezt_cloud_command_seconds_count",
          "tezt_cloud_ssh_reconnects_total",
          "tezt_cloud_executor_restarts_total",
          "tezt_cloud_deploy_seconds",
          "tezt_cloud_teardown_seconds"
        ]
      ) assert.match(metrics.body, new RegExp(`^${name}\\{[^}]*\\} [1-9]`, "m"), name)
      yield* close(Exit.void)
      assert.deepStrictEqual(otlp.spans.map((s) => s.name), ["Test.exported"])
      assert.isFalse(fs.existsSync(Telemetry.spansFile(dir)), "no file when the spans go to an endpoint")
      // The listener is gone with the run.
      assert.strictEqual((yield* request(`http://${telemetry.metricsTarget}/metrics`)).status, 0)
      fs.rmSync(dir, { recursive: true, force: true })
    }))

  it.live("an endpoint that does not answer: one warning naming it, the run goes on", () =>
    Effect.gen(function*() {
      const dir = tmp()
      const warnings: Array<string> = []
      const logger = Logger.make<unknown, void>(({ logLevel, message }) => {
        if (logLevel === "Warn") warnings.push(String(Array.isArray(message) ? message.join(" ") : message))
      })
      const endpoint = `http://127.0.0.1:${yield* Effect.promise(freePort)}`
      const { close, context } = yield* build({
        artifactsDir: dir,
        namespace: "t",
        env: { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint },
        flushTimeout: Duration.millis(100)
      }).pipe(Effect.provide(Logger.layer([logger])))
      for (let i = 0; i < 3; i++) yield* Effect.void.pipe(Effect.withSpan("Test.lost"), Effect.provide(context))
      yield* eventually(Effect.sync(() => warnings.length > 0 || undefined), "a warning")
      yield* close(Exit.void)
      assert.strictEqual(warnings.length, 1, warnings.join("\n"))
      assert.include(warnings[0], `telemetry: cannot send the spans to ${endpoint}/v1/traces`)
      fs.rmSync(dir, { recursive: true, force: true })
    }))

  it.effect("an endpoint that is not an http(s) URL is refused, naming the variable and the fix", () =>
    Effect.gen(function*() {
      yield* Telemetry.check({})
      yield* Telemetry.check({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318" })
      const error = yield* Effect.flip(Telemetry.check({ OTEL_EXPORTER_OTLP_ENDPOINT: "127.0.0.1:4318" }))
      assert.strictEqual(error.reason._tag, "ConfigInvalid")
      assert.include(error.message, "$OTEL_EXPORTER_OTLP_ENDPOINT")
      assert.include(error.message, "give an http:// or https:// URL")
    }))

  it("reads the endpoint and headers as OpenTelemetry's SDKs do", () => {
    assert.strictEqual(Telemetry.tracesUrl({}), undefined)
    assert.strictEqual(
      Telemetry.tracesUrl({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://h:4318/" }),
      "http://h:4318/v1/traces"
    )
    assert.strictEqual(
      Telemetry.tracesUrl({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://h:4318",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://t/x"
      }),
      "http://t/x"
    )
    assert.deepStrictEqual(Telemetry.headers({ OTEL_EXPORTER_OTLP_HEADERS: "a=1, b=x%20y,bad" }), { a: "1", b: "x y" })
  })
})
