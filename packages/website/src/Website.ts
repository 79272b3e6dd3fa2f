/**
 * The run's website, as Tezt cloud serves one, with `effect/http` on `--website-port`: the summary page, the
 * pushed metrics on `/metrics` (and `/metrics.txt`, the name Tezt cloud gives them), `/api/run` (the page's model as
 * JSON), and a read-only proxy to Prometheus' query API for the page's charts, so the browser only ever talks to
 * the website.
 *
 * **Details**
 *
 * Every request renders from the stack's current state, so the page is regenerated on `addService` and
 * `registerBinary` by construction. The charting library (uPlot) is served from `node_modules`, never a CDN.
 * The run's events reach the page through `RunEvents.subscribe`.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { CloudError, type RunEvents } from "@tezt-cloud/core"
import { Endpoints, Metrics, type RunMonitor } from "@tezt-cloud/monitoring"
import { Effect, Layer, type Scope } from "effect"
import { HttpMiddleware, HttpRouter, type HttpServerRequest, HttpServerResponse } from "effect/http"
import * as fs from "node:fs"
import * as http from "node:http"
import { createRequire } from "node:module"
import * as path from "node:path"
import * as Page from "./Page.ts"

const require = createRequire(import.meta.url)

/** The static files of the page, read once: ours, and uPlot's from its npm package. */
const assets = (): ReadonlyMap<string, { readonly body: string; readonly type: string }> => {
  const own = path.join(import.meta.dirname, "..", "assets")
  const file = (p: string, type: string) => ({ body: fs.readFileSync(p, "utf8"), type })
  return new Map([
    ["app.js", file(path.join(own, "app.js"), "text/javascript; charset=utf-8")],
    ["timeline.js", file(path.join(own, "timeline.js"), "text/javascript; charset=utf-8")],
    ["style.css", file(path.join(own, "style.css"), "text/css; charset=utf-8")],
    ["verdicts.js", file(path.join(own, "verdicts.js"), "text/javascript; charset=utf-8")],
    ["uPlot.iife.min.js", file(require.resolve("uplot/dist/uPlot.iife.min.js"), "text/javascript; charset=utf-8")],
    ["uPlot.min.css", file(require.resolve("uplot/dist/uPlot.min.css"), "text/css; charset=utf-8")]
  ])
}

/** The Prometheus API paths the charts may call through the website. */
const proxied = new Set(["query", "query_range"])

/** The routes of the website for `view`; `events` is the run's recent events, oldest first. */
export const routes = (view: RunMonitor.View, events: ReadonlyArray<RunEvents.Stamped>) => {
  const files = assets()
  const metrics = view.metrics.render.pipe(
    Effect.map((body) => HttpServerResponse.text(body, { contentType: Metrics.contentType }))
  )
  const model = Page.model(view, events)
  return HttpRouter.use(Effect.fn(function*(router) {
    yield* router.add("GET", "/", Effect.map(model, (m) => HttpServerResponse.html(Page.render(m))))
    yield* router.add("GET", "/metrics", metrics)
    yield* router.add("GET", "/metrics.txt", metrics)
    yield* router.add("GET", "/api/run", Effect.map(model, (m) => HttpServerResponse.jsonUnsafe(m)))
    yield* router.add("GET", "/assets/:file", (request) => {
      const asset = files.get(request.url.split("?")[0]!.slice("/assets/".length))
      return Effect.succeed(
        asset === undefined
          ? HttpServerResponse.text("not found", { status: 404 })
          : HttpServerResponse.text(asset.body, { contentType: asset.type })
      )
    })
    yield* router.add("GET", "/api/prometheus/:endpoint", (request) => proxy(view, request))
  }))
}

const proxy = (view: RunMonitor.View, request: HttpServerRequest.HttpServerRequest) => {
  const [pathname, query = ""] = request.url.split("?")
  const endpoint = pathname!.slice("/api/prometheus/".length)
  if (!view.config.prometheus) {
    return Effect.succeed(HttpServerResponse.jsonUnsafe({ status: "error", error: "Prometheus is off" }, {
      status: 404
    }))
  }
  if (!proxied.has(endpoint)) {
    return Effect.succeed(HttpServerResponse.jsonUnsafe({ status: "error", error: "not proxied" }, { status: 404 }))
  }
  return Endpoints.get(`${Endpoints.prometheus(view.config)}/api/v1/${endpoint}?${query}`).pipe(
    Effect.map((r) => HttpServerResponse.text(r.body, { status: r.status, contentType: "application/json" })),
    Effect.catch((e) =>
      Effect.succeed(HttpServerResponse.jsonUnsafe({ status: "error", error: e.message }, { status: 502 }))
    )
  )
}

/** Serves the website of `view` on `host:port` (a loopback address) in the current scope. */
export const serve = Effect.fn("Website.serve")(function*(
  view: RunMonitor.View,
  options: { readonly host: string; readonly port: number }
): Effect.fn.Return<void, CloudError.CloudError, Scope.Scope> {
  // It shows every command and its output, without authentication: never beyond loopback.
  if (!Endpoints.isLoopback(options.host)) {
    return yield* CloudError.service(
      "website",
      `it must listen on a loopback address, not ${options.host}: it has no authentication`
    )
  }
  const events: Array<RunEvents.Stamped> = []
  yield* view.subscribe((event) => {
    if (event.type === "run-start") events.length = 0
    events.push(event)
    if (events.length > 2 * Page.eventsShown) events.splice(0, events.length - Page.eventsShown)
  })
  const server = HttpRouter.serve(routes(view, events), { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provide(NodeHttpServer.layer(() => http.createServer(), { host: options.host, port: options.port })),
    // Its pages are not the run's work: no span per request in the tool's own telemetry (`--open-telemetry`).
    Layer.provide(Layer.succeed(HttpMiddleware.TracerDisabledWhen)(() => true))
  )
  yield* Layer.build(server).pipe(
    Effect.mapError((e) =>
      CloudError.service(
        "website",
        `cannot listen on ${options.host}:${options.port} (${
          CloudError.messageOf(e.cause ?? e)
        }): choose another --website-port`,
        { cause: e }
      )
    )
  )
  yield* Effect.logInfo(`website: ${Endpoints.shown(view.config, view.config.websitePort)}`)
})

/** The website as the stack's web front, on `--website-port` (+ 10000 behind the auth proxy, in auth mode). */
export const front: RunMonitor.Front = (view) =>
  serve(view, {
    host: Endpoints.listenHost(view.config),
    port: Endpoints.servicePort(view.config, view.config.websitePort)
  })
