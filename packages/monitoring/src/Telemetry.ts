/**
 * The tool's own telemetry (`--open-telemetry`): its spans exported over OTLP/HTTP to
 * `$OTEL_EXPORTER_OTLP_ENDPOINT` when set, otherwise written to `<artifacts-dir>/spans.jsonl`, and kept (the
 * recent and the running ones) for the website's timeline; the orchestrator's metrics (core's `Telemetry`) served
 * by `@opentelemetry/exporter-prometheus` on a loopback port the kernel picks, for the run's Prometheus.
 *
 * **Details**
 *
 * - Loaded only when the option is on (`Run.ts` imports it then), and the OpenTelemetry SDK only once its layer
 *   is built: a run without the option, and `--help`, load none of it.
 * - The file gets one JSON line per span as it ends (`Telemetry.SpanRecord`), written at once: a Ctrl+C, even a
 *   second one, loses nothing already ended. The OTLP exporter sends batches every second and flushes when the
 *   layer's scope closes (the end of the run, Ctrl+C included), waiting at most 3 s for the endpoint.
 * - The metrics' listener belongs to the layer's scope: it closes when the run ends.
 */
import { CloudError, Telemetry } from "@tezt-cloud/core"
import { Cause, Context, Duration, Effect, Exit, Layer, Option, type Scope, Tracer } from "effect"
import { FetchHttpClient, HttpClient } from "effect/http"
import { OtlpExporter, OtlpSerialization, OtlpTracer } from "effect/observability"
import * as fs from "node:fs"
import * as http from "node:http"
import type * as net from "node:net"
import * as path from "node:path"

export interface Options {
  /** The run's artifacts dir: `spans.jsonl` goes there when no endpoint is given. */
  readonly artifactsDir: string
  /** The run's namespace, a resource attribute of the spans. */
  readonly namespace: string
  /** The environment: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_ENDPOINT`, `…_HEADERS`. */
  readonly env: Readonly<Record<string, string | undefined>>
  /** How long the end of the run waits for the endpoint to take the last spans; 3 s by default. */
  readonly flushTimeout?: Duration.Duration | undefined
}

/** How many ended spans the timeline keeps (the most recent). */
export const timelineLimit = 2000

/** The file of the spans in the artifacts dir. */
export const spansFile = (artifactsDir: string) => path.join(artifactsDir, "spans.jsonl")

/**
 * The OTLP/HTTP traces URL of the environment, as OpenTelemetry's SDKs read it: the traces endpoint as given, or
 * the general endpoint with `/v1/traces`; `undefined` when neither is set.
 */
export const tracesUrl = (env: Options["env"]): string | undefined => {
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim()
  if (traces !== undefined && traces !== "") return traces
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim()
  if (base === undefined || base === "") return undefined
  return `${base.replace(/\/+$/, "")}/v1/traces`
}

/** Refuses an endpoint that is not an http(s) URL, naming the variable, before anything is created. */
export const check = (env: Options["env"]): Effect.Effect<void, CloudError.CloudError> => {
  const url = tracesUrl(env)
  if (url === undefined || /^https?:\/\/[^/]/.test(url) && URL.canParse(url)) return Effect.void
  const variable = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim()
    ? "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    : "OTEL_EXPORTER_OTLP_ENDPOINT"
  return Effect.fail(CloudError.config(
    `$${variable}`,
    "--open-telemetry sends the spans there over OTLP/HTTP: give an http:// or https:// URL (e.g. http://127.0.0.1:4318), or unset it to write them to spans.jsonl"
  ))
}

/** `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`, values URL-encoded), as headers of the export requests. */
export const headers = (env: Options["env"]): Record<string, string> =>
  Object.fromEntries(
    (env.OTEL_EXPORTER_OTLP_TRACES_HEADERS ?? env.OTEL_EXPORTER_OTLP_HEADERS ?? "").split(",").flatMap((pair) => {
      const at = pair.indexOf("=")
      return at <= 0 ? [] : [[pair.slice(0, at).trim(), decodeURIComponent(pair.slice(at + 1).trim())]]
    })
  )

const millis = (nanos: bigint) => Number(nanos / 1000n) / 1000

/** A span as the file and the timeline keep it (its end and status once it has ended). */
export const record = (span: Tracer.Span): Telemetry.SpanRecord => {
  const attributes: Record<string, string | number | boolean> = {}
  for (const [key, value] of span.attributes) {
    // The stack traces `Effect.fn` attaches are for error reports, not for a timeline.
    if (key.startsWith("code.")) continue
    if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") attributes[key] = value
  }
  const parent = Option.getOrUndefined(span.parent)
  const base = {
    name: span.name,
    traceId: span.traceId,
    spanId: span.spanId,
    ...(parent === undefined ? {} : { parentSpanId: parent.spanId }),
    start: millis(span.status.startTime),
    attributes
  }
  if (span.status._tag === "Started") return { ...base, status: "running" }
  const exit = span.status.exit
  if (Exit.isSuccess(exit)) return { ...base, end: millis(span.status.endTime), status: "ok" }
  if (Cause.hasInterruptsOnly(exit.cause)) return { ...base, end: millis(span.status.endTime), status: "interrupted" }
  const error = Cause.squash(exit.cause)
  return {
    ...base,
    end: millis(span.status.endTime),
    status: "error",
    error: error instanceof Error ? error.message : String(error)
  }
}

/** What the tracer keeps for the timeline and tells the sink: the running spans, the recent ended ones. */
const recorder = (sink: (span: Telemetry.SpanRecord) => void) => {
  const running = new Map<Tracer.Span, true>()
  const ended: Array<Telemetry.SpanRecord> = []
  const ours = new WeakSet<Tracer.AnySpan>()
  const wrap = (inner: Tracer.Tracer): Tracer.Tracer =>
    Tracer.make({
      span(options) {
        // A span under one begun before this tracer (the CLI's own) is a root: its parent is never exported.
        const parent = Option.getOrUndefined(options.parent)
        const orphan = parent !== undefined && parent._tag === "Span" && !ours.has(parent)
        const span = inner.span(orphan ? { ...options, parent: Option.none(), root: true } : options)
        ours.add(span)
        if (!span.sampled) return span
        const end = span.end
        running.set(span, true)
        span.end = (endTime, exit) => {
          end.call(span, endTime, exit)
          if (!running.delete(span)) return
          const done = record(span)
          ended.push(done)
          if (ended.length > 2 * timelineLimit) ended.splice(0, ended.length - timelineLimit)
          sink(done)
        }
        return span
      },
      ...(inner.context === undefined ? {} : { context: inner.context })
    })
  const spans = Effect.sync(() =>
    [...ended.slice(-timelineLimit), ...[...running.keys()].map(record)].toSorted((a, b) => a.start - b.start)
  )
  return { wrap, spans }
}

/** `spans.jsonl`, opened for the layer's scope; each span is one line written as it ends. */
const spansSink = (file: string) =>
  Effect.acquireRelease(
    Effect.try({
      try: () => ({ fd: fs.openSync(file, "a", 0o600), open: true }),
      catch: (e) =>
        CloudError.config("--open-telemetry", `cannot write the spans to ${file}: ${CloudError.messageOf(e)}`)
    }),
    (sink) =>
      Effect.sync(() => {
        sink.open = false
        fs.closeSync(sink.fd)
      })
  ).pipe(
    Effect.map((sink) => (span: Telemetry.SpanRecord) => {
      if (sink.open) fs.writeSync(sink.fd, JSON.stringify(span) + "\n")
    })
  )

/**
 * The exporter's HTTP client: the first failure to deliver (the endpoint refuses, or answers an error) is a
 * warning naming `destination`, once; the exporter itself retries quietly.
 */
const client = (destination: string) =>
  Layer.effect(
    HttpClient.HttpClient,
    Effect.gen(function*() {
      const inner = yield* HttpClient.HttpClient
      let warned = false
      const warn = (why: string) =>
        Effect.suspend(() => {
          if (warned) return Effect.void
          warned = true
          return Effect.logWarning(`telemetry: cannot send the spans to ${destination} (${why}); retrying`)
        })
      return inner.pipe(
        HttpClient.tap((response) => response.status >= 300 ? warn(`HTTP ${response.status}`) : Effect.void),
        HttpClient.tapError((error) => warn(error.message))
      )
    })
  ).pipe(Layer.provide(FetchHttpClient.layer))

/** The OTLP/HTTP tracer of `url`, flushed when the current scope closes. */
const otlpTracer = (url: string, destination: string, options: Options) =>
  OtlpTracer.make({
    url,
    headers: headers(options.env),
    resource: { serviceName: "tezt-cloud", attributes: { "tezt_cloud.namespace": options.namespace } },
    exportInterval: Duration.seconds(1),
    shutdownTimeout: options.flushTimeout ?? Duration.seconds(3)
  }).pipe(
    Effect.provide(Layer.mergeAll(OtlpExporter.layerFlusher, OtlpSerialization.layerJson, client(destination)))
  )

/**
 * The orchestrator's metrics on `http://127.0.0.1:<port>/metrics` (a port the kernel picks) for the current
 * scope, through the OpenTelemetry SDK's Prometheus exporter (loaded here, not before); returns `host:port`.
 */
const serveMetrics: Effect.Effect<string, CloudError.CloudError, Scope.Scope> = Effect.gen(function*() {
  const [{ PrometheusExporter }, OtelMetrics, Resource] = yield* Effect.promise(() =>
    Promise.all([
      import("@opentelemetry/exporter-prometheus"),
      import("@effect/opentelemetry/OtelMetrics"),
      import("@effect/opentelemetry/Resource")
    ])
  )
  const exporter = new PrometheusExporter({ preventServerStart: true })
  yield* Layer.build(
    OtelMetrics.layer(() => exporter).pipe(Layer.provide(Resource.layer({ serviceName: "tezt-cloud" })))
  )
  const server = http.createServer((request, response) => {
    if (request.url === "/metrics" || request.url?.startsWith("/metrics?")) {
      return exporter.getMetricsRequestHandler(request, response)
    }
    response.statusCode = 404
    response.end("not found\n")
  })
  const address = yield* Effect.acquireRelease(
    Effect.callback<net.AddressInfo, CloudError.CloudError>((resume) => {
      server.once(
        "error",
        (e) =>
          resume(Effect.fail(CloudError.service("telemetry", `cannot serve the orchestrator's metrics: ${e.message}`)))
      )
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server.address() as net.AddressInfo)))
    }),
    () => Effect.callback<void>((resume) => void server.close(() => resume(Effect.void)))
  )
  return `127.0.0.1:${address.port}`
})

/**
 * The tool's telemetry for a run: core's `Telemetry` and the tracer that feeds it (OTLP/HTTP or `spans.jsonl`),
 * and the orchestrator's metrics served for the run's Prometheus.
 */
export const layer = (options: Options): Layer.Layer<Telemetry.Telemetry, CloudError.CloudError> =>
  Layer.effectContext(Effect.gen(function*() {
    const url = tracesUrl(options.env)
    const file = spansFile(options.artifactsDir)
    const sink = url === undefined ? yield* spansSink(file) : () => {}
    const { spans, wrap } = recorder(sink)
    // The URL without its query or credentials: it may carry a token.
    const destination = url === undefined ? file : new URL(url).origin + new URL(url).pathname
    const inner = url === undefined ? Tracer.nativeTracer : yield* otlpTracer(url, destination, options)
    const metricsTarget = yield* serveMetrics
    yield* Effect.logInfo(`telemetry: spans to ${destination}, metrics on http://${metricsTarget}/metrics`)
    return Context.make(Telemetry.Telemetry, Telemetry.Telemetry.of({ spans, metricsTarget, destination })).pipe(
      Context.add(Tracer.Tracer, wrap(inner))
    )
  }))
