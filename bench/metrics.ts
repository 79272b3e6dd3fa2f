/**
 * Pushed metrics at scale, side by side, in one run: `pushMetric` throughput and `/metrics` render time with 10k
 * series for tezt-cloud's `Metrics`, Effect's built-in Prometheus exporter (`Metric` + `PrometheusMetrics.format`)
 * and prom-client. Run: `npm run bench` (or `sh scripts/with-node.sh node bench/metrics.ts`).
 *
 * Every contender holds the same 10k series (100 gauge families × 100 label sets) and takes the same updates;
 * each render follows one update, so no render can be served from a cache. Times are medians of several runs.
 */
import { Metrics } from "@tezt-cloud/monitoring"
import { Effect, Metric } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { performance } from "node:perf_hooks"
import * as PromClient from "prom-client"

const families = 100
const labelSets = 100
const series = families * labelSets
const updates = 200_000
const renders = 30
const runs = 5

const name = (f: number) => `tezt_bench_metric_${f}`
const labels = (l: number) => ({ agent: `agent-${String(l % 10).padStart(3, "0")}`, slot: String(l) })

interface Contender {
  readonly name: string
  /** Applies `count` updates cycling over the series; returns nothing, must be synchronous to time. */
  readonly update: (count: number, offset: number) => void
  readonly render: () => Promise<string>
}

const ours = (): Contender => {
  const metrics = Metrics.make()
  const samples = Array.from({ length: series }, (_, i) => ({
    name: name(i % families),
    labels: labels(Math.floor(i / families)),
    type: "gauge" as const,
    help: "bench"
  }))
  return {
    name: "tezt-cloud Metrics (pushMetric)",
    update: (count, offset) =>
      Effect.runSync(Effect.gen(function*() {
        for (let i = 0; i < count; i++) {
          const s = samples[(i + offset) % series]!
          yield* metrics.push({ ...s, value: i })
        }
      })),
    render: () => Effect.runPromise(metrics.render)
  }
}

const effectBuiltIn = (): Contender => {
  const registry = new Map()
  const gauges = Array.from({ length: families }, (_, f) => Metric.gauge(name(f), { description: "bench" }))
  const tagged = Array.from(
    { length: series },
    (_, i) => Metric.withAttributes(gauges[i % families]!, labels(Math.floor(i / families)))
  )
  return {
    name: "Effect Metric + PrometheusMetrics",
    update: (count, offset) =>
      Effect.runSync(
        Effect.gen(function*() {
          for (let i = 0; i < count; i++) yield* Metric.update(tagged[(i + offset) % series]!, i)
        }).pipe(Effect.provideService(Metric.MetricRegistry, registry))
      ),
    render: () =>
      Effect.runPromise(PrometheusMetrics.format().pipe(Effect.provideService(Metric.MetricRegistry, registry)))
  }
}

const promClient = (): Contender => {
  const registry = new PromClient.Registry()
  const gauges = Array.from(
    { length: families },
    (_, f) =>
      new PromClient.Gauge({ name: name(f), help: "bench", labelNames: ["agent", "slot"], registers: [registry] })
  )
  const sets = Array.from({ length: labelSets }, (_, l) => labels(l))
  return {
    name: "prom-client",
    update: (count, offset) => {
      for (let i = 0; i < count; i++) {
        const j = (i + offset) % series
        gauges[j % families]!.set(sets[Math.floor(j / families)]!, i)
      }
    },
    render: () => registry.metrics()
  }
}

const median = (xs: ReadonlyArray<number>) => xs.toSorted((a, b) => a - b)[Math.floor(xs.length / 2)]!

const measure = async (contender: Contender) => {
  contender.update(series, 0) // every series exists before timing
  const seriesCount = (await contender.render()).split("\n").filter((l) => l !== "" && !l.startsWith("#")).length
  const throughput: Array<number> = []
  const renderMillis: Array<number> = []
  for (let run = 0; run < runs; run++) {
    const start = performance.now()
    contender.update(updates, run * 7)
    throughput.push(updates / ((performance.now() - start) / 1000))
    const times: Array<number> = []
    for (let r = 0; r < renders; r++) {
      contender.update(1, r)
      const t = performance.now()
      await contender.render()
      times.push(performance.now() - t)
    }
    renderMillis.push(median(times))
  }
  return { name: contender.name, seriesCount, throughput: median(throughput), render: median(renderMillis) }
}

const results = []
for (const make of [ours, effectBuiltIn, promClient]) results.push(await measure(make()))
const base = results[0]!
const rows = results.map((r) =>
  `| ${r.name} | ${r.seriesCount} | ${Math.round(r.throughput).toLocaleString("en")} | ${
    (r.throughput / base.throughput).toFixed(2)
  } | ${r.render.toFixed(2)} | ${(r.render / base.render).toFixed(2)} |`
)
process.stdout.write(
  [
    `Node ${process.version}, ${series} series (${families} gauge families × ${labelSets} label sets), ` +
    `${updates} updates per run, median of ${runs} runs (render: median of ${renders} per run).`,
    "",
    "| contender | series rendered | updates/s | × tezt-cloud's rate | render ms (10k series) | × tezt-cloud's time |",
    "| --- | --- | --- | --- | --- | --- |",
    ...rows,
    ""
  ].join("\n")
)
