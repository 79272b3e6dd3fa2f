import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as child from "node:child_process"
import { Metrics } from "../src/index.ts"
import { liveWith } from "./utils.ts"

const registry = () => Metrics.make()

describe("Metrics", () => {
  it.effect("keeps the last value per (name, labels), HELP and TYPE once per family", () =>
    Effect.gen(function*() {
      const metrics = registry()
      yield* metrics.push({ name: "blocks", value: 1, labels: { node: "a" }, help: "Blocks seen", type: "counter" })
      yield* metrics.push({ name: "blocks", value: 2, labels: { node: "b" }, type: "counter" })
      yield* metrics.push({ name: "blocks", value: 5, labels: { node: "a" } })
      yield* metrics.push({ name: "temperature", value: 21.5 })
      assert.strictEqual(
        yield* metrics.render,
        [
          "# HELP blocks Blocks seen",
          "# TYPE blocks counter",
          "blocks{node=\"a\"} 5",
          "blocks{node=\"b\"} 2",
          "temperature 21.5",
          ""
        ].join("\n")
      )
    }))

  it.effect("label order does not matter: one series per label set", () =>
    Effect.gen(function*() {
      const metrics = registry()
      yield* metrics.push({ name: "m", value: 1, labels: { b: "2", a: "1" } })
      yield* metrics.push({ name: "m", value: 3, labels: { a: "1", b: "2" } })
      assert.strictEqual(yield* metrics.render, "m{a=\"1\",b=\"2\"} 3\n")
      assert.deepStrictEqual(yield* metrics.samples, [{
        name: "m",
        value: 3,
        labels: { b: "2", a: "1" },
        help: undefined,
        type: undefined
      }])
    }))

  it.effect("escapes label values and help texts; special values are Prometheus' spelling", () =>
    Effect.gen(function*() {
      const metrics = registry()
      yield* metrics.push({
        name: "weird",
        value: Number.NaN,
        labels: { path: "C:\\dir \"quoted\"\nnext" },
        help: "a \\ and a\nnewline",
        type: "gauge"
      })
      yield* metrics.push({ name: "weird", value: Infinity, labels: { path: "up" } })
      yield* metrics.push({ name: "weird", value: -Infinity, labels: { path: "down" } })
      assert.strictEqual(
        yield* metrics.render,
        [
          "# HELP weird a \\\\ and a\\nnewline",
          "# TYPE weird gauge",
          "weird{path=\"C:\\\\dir \\\"quoted\\\"\\nnext\"} NaN",
          "weird{path=\"up\"} +Inf",
          "weird{path=\"down\"} -Inf",
          ""
        ].join("\n")
      )
    }))

  it.effect.each([
    { name: "a bad metric name", sample: { name: "tezt-bad", value: 1 }, message: "not a valid metric name" },
    { name: "a name starting with a digit", sample: { name: "1x", value: 1 }, message: "not a valid metric name" },
    { name: "an empty name", sample: { name: "", value: 1 }, message: "not a valid metric name" },
    {
      name: "a bad label name",
      sample: { name: "m", value: 1, labels: { "no-dash": "x" } },
      message: "label \"no-dash\" is not a valid label name"
    },
    {
      name: "a reserved label name",
      sample: { name: "m", value: 1, labels: { __name__: "x" } },
      message: "which Prometheus reserves"
    },
    {
      name: "a value that is not a number",
      sample: { name: "m", value: "1" as unknown as number },
      message: "is not a number"
    },
    {
      name: "an unknown type",
      sample: { name: "m", value: 1, type: "histogram" as "gauge" },
      message: "is not \"counter\" or \"gauge\""
    }
  ])("$name is a MetricInvalid error and records nothing", ({ message, sample }) =>
    Effect.gen(function*() {
      const metrics = registry()
      const error = yield* Effect.flip(metrics.push(sample))
      assert.strictEqual(error.reason._tag, "MetricInvalid")
      assert.include(error.message, message)
      assert.notInclude(error.message, "\n")
      assert.strictEqual(yield* metrics.render, "")
    }))

  it.effect("a family keeps its type", () =>
    Effect.gen(function*() {
      const metrics = registry()
      yield* metrics.push({ name: "m", value: 1, type: "counter" })
      const error = yield* Effect.flip(metrics.push({ name: "m", value: 1, type: "gauge" }))
      assert.strictEqual(error.message, "metric m: it is a counter: it cannot also be pushed as a gauge")
      yield* metrics.push({ name: "m", value: 2 })
      assert.strictEqual(yield* metrics.render, "# TYPE m counter\nm 2\n")
    }))

  it.effect("families list every series for charts", () =>
    Effect.gen(function*() {
      const metrics = registry()
      yield* metrics.push({ name: "a", value: 1, labels: { x: "1" }, type: "gauge", help: "h" })
      yield* metrics.push({ name: "a", value: 2, labels: { x: "2" } })
      assert.deepStrictEqual(yield* metrics.families, [{
        name: "a",
        help: "h",
        type: "gauge",
        series: [{ labels: { x: "1" }, value: 1 }, { labels: { x: "2" }, value: 2 }]
      }])
    }))
})

describe("Metrics: Prometheus' own parser", () => {
  liveWith("promtool")(
    "promtool reads the exposition of tricky input without a parse error",
    () =>
      Effect.gen(function*() {
        const metrics = registry()
        yield* metrics.push({ name: "a:b_c", value: 1e21, labels: { v: "\"\\\n}{,=" }, help: "x\ny\\", type: "gauge" })
        yield* metrics.push({ name: "a:b_c", value: -0.5, labels: { v: "" } })
        yield* metrics.push({ name: "d_total", value: Number.NaN, type: "counter", help: "d" })
        const text = yield* metrics.render
        const result = child.spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" })
        // Lint findings (exit 3) are style advice; a parse error is "error while linting" with exit 1.
        assert.notInclude(result.stderr + result.stdout, "error while linting", text)
        assert.include([0, 3], result.status)
      })
  )
})
