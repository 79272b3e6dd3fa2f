/**
 * Helpers of the monitoring, website and end-to-end suites: gating on real binaries (`TEZT_CLOUD_IT`), ports
 * of their own, bounded polling and plain HTTP requests to 127.0.0.1.
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import { it } from "@effect/vitest"
import { Ledger } from "@tezt-cloud/core"
import { Effect, Layer, Schedule } from "effect"
import * as http from "node:http"
import type * as net from "node:net"
import * as Ports from "../../../test/fixtures/Ports.ts"
import { which } from "../src/internal/binaries.ts"
import * as Metrics from "../src/Metrics.ts"

export { which }

/**
 * `it.live` for tests that need real binaries: they run when every binary is installed; otherwise they are
 * skipped, unless `TEZT_CLOUD_IT=require` (CI), where they fail naming what is missing.
 */
export const liveWith = (...binaries: ReadonlyArray<string>): typeof it.live.skip => {
  const missing = binaries.filter((b) => which(b) === undefined)
  if (missing.length === 0) return it.live
  if (process.env.TEZT_CLOUD_IT !== "require") return it.live.skip
  return (name) =>
    it.live(name, () =>
      Effect.die(
        new Error(`needs ${missing.join(", ")}, not installed, and TEZT_CLOUD_IT=require: run .ci/run's apt step`)
      ))
}

/** The platform's services and an in-memory ledger (Prometheus records its storage there). */
export const platform = Layer.mergeAll(NodeServices.layer, Ledger.Ledger.layerMemory("test"))

/** A port of this test file's own (see `test/fixtures/Ports.ts`: no other file running at once gets it). */
export const freePort = (): Promise<number> => Promise.resolve(Ports.one())

/** `count` consecutive ports of this test file's own (an agent range for `--vm-base-port`); the first is returned. */
export const freeRange = (count: number): Promise<number> => Promise.resolve(Ports.take(count))

export interface Response {
  readonly status: number
  readonly body: string
  readonly contentType: string | null
}

/** A request to 127.0.0.1 that never throws on a refused connection: the status is then 0. */
export const request = (url: string, init: RequestInit = {}): Effect.Effect<Response> =>
  Effect.promise(async () => {
    if (!url.startsWith("http://127.0.0.1:")) throw new Error(`tests only talk to 127.0.0.1, not ${url}`)
    try {
      const response = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) })
      return { status: response.status, body: await response.text(), contentType: response.headers.get("content-type") }
    } catch {
      return { status: 0, body: "", contentType: null }
    }
  })

/** Polls `check` every 100 ms until it returns a value, for at most `attempts` tries (no timed assertion). */
export const eventually = <A>(
  check: Effect.Effect<A | undefined>,
  what: string,
  attempts = 300
): Effect.Effect<A> =>
  check.pipe(
    Effect.flatMap((a) => a === undefined ? Effect.fail(what) : Effect.succeed(a)),
    Effect.retry({ schedule: Schedule.spaced("100 millis"), times: attempts }),
    Effect.orDie
  )

/**
 * A local HTTP server answering every path with the registry's exposition, on `port` (a free one by default), in
 * the current scope: a stand-in for the website. Returns its `host:port`.
 */
export const serveMetrics = (metrics: Metrics.Metrics["Service"], port = 0) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<http.Server>((done) => {
        const server = http.createServer((_, res) => {
          void Effect.runPromise(metrics.render).then((body) => {
            res.writeHead(200, { "content-type": Metrics.contentType })
            res.end(body)
          })
        })
        server.listen(port, "127.0.0.1", () => done(server))
      })
    ),
    (server) => Effect.promise(() => new Promise<void>((done) => server.close(() => done())))
  ).pipe(Effect.map((server) => `127.0.0.1:${(server.address() as net.AddressInfo).port}`))

/** What a fake Grafana received. */
export interface GrafanaRequest {
  readonly method: string
  readonly path: string
  readonly authorization: string | undefined
  readonly body: unknown
}

/**
 * A fake Grafana on a free port, in the current scope, answering the HTTP API calls tezt-cloud makes, as
 * documented: `/api/health`, datasources by uid (404 until created), `POST /api/datasources`,
 * `PUT /api/datasources/uid/<uid>`, `POST /api/dashboards/db`. With `token`, other credentials get 401.
 */
export const fakeGrafana = (options: { readonly token?: string } = {}) =>
  Effect.gen(function*() {
    const requests: Array<GrafanaRequest> = []
    const datasources = new Map<string, unknown>()
    const dashboards = new Map<string, unknown>()
    const handle = (req: http.IncomingMessage, body: string): [number, unknown] => {
      const path = req.url ?? "/"
      const json = body === "" ? undefined : JSON.parse(body) as Record<string, unknown>
      requests.push({ method: req.method ?? "", path, authorization: req.headers.authorization, body: json })
      if (path === "/api/health") return [200, { database: "ok", version: "fake" }]
      if (options.token !== undefined && req.headers.authorization !== `Bearer ${options.token}`) {
        return [401, { message: "Unauthorized" }]
      }
      const uid = /^\/api\/datasources\/uid\/(.+)$/.exec(path)?.[1]
      if (uid !== undefined && req.method === "GET") {
        return datasources.has(uid) ? [200, datasources.get(uid)] : [404, { message: "Data source not found" }]
      }
      if (uid !== undefined && req.method === "PUT") {
        datasources.set(uid, json)
        return [200, { message: "Datasource updated" }]
      }
      if (path === "/api/datasources" && req.method === "POST") {
        const created = json as { uid: string }
        if (datasources.has(created.uid)) return [409, { message: "data source with the same uid already exists" }]
        datasources.set(created.uid, json)
        return [200, { message: "Datasource added" }]
      }
      if (path === "/api/dashboards/db" && req.method === "POST") {
        const { dashboard, overwrite } = json as { dashboard: { uid: string }; overwrite: boolean }
        if (dashboards.has(dashboard.uid) && !overwrite) return [412, { status: "version-mismatch" }]
        dashboards.set(dashboard.uid, dashboard)
        return [200, { status: "success", uid: dashboard.uid, url: `/d/${dashboard.uid}` }]
      }
      return [404, { message: "Not found" }]
    }
    return { url: yield* serveJson(handle), requests, datasources, dashboards }
  })

/**
 * A local HTTP server on a free port, in the current scope, answering each request (with its whole body) with
 * `handle`'s status and JSON. Returns its URL.
 */
export const serveJson = (handle: (req: http.IncomingMessage, body: string) => readonly [number, unknown]) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<http.Server>((done) => {
        const s = http.createServer((req, res) => {
          let body = ""
          req.on("data", (d: Buffer) => (body += d.toString()))
          req.on("end", () => {
            const [status, answer] = handle(req, body)
            res.writeHead(status, { "content-type": "application/json" })
            res.end(JSON.stringify(answer))
          })
        })
        s.listen(0, "127.0.0.1", () => done(s))
      })
    ),
    (s) => Effect.promise(() => new Promise<void>((done) => s.close(() => done())))
  ).pipe(Effect.map((server) => `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`))
/** A span as an OTLP/HTTP JSON body carries it (the fields the tests read). */
export interface OtlpSpan {
  readonly name: string
  readonly attributes: ReadonlyArray<{ readonly key: string; readonly value: { readonly stringValue?: string } }>
}

/** An OTLP/HTTP (JSON) receiver on a free 127.0.0.1 port, keeping the spans POSTed to `/v1/traces`. */
export const otlpReceiver = (): Promise<
  { readonly url: string; readonly spans: Array<OtlpSpan>; readonly close: () => Promise<void> }
> =>
  new Promise((done) => {
    const spans: Array<OtlpSpan> = []
    const server = http.createServer((req, res) => {
      let body = ""
      req.on("data", (chunk) => (body += chunk))
      req.on("end", () => {
        if (req.url === "/v1/traces") {
          const data = JSON.parse(body) as {
            resourceSpans: Array<{ scopeSpans: Array<{ spans: Array<OtlpSpan> }> }>
          }
          for (const r of data.resourceSpans) for (const s of r.scopeSpans) spans.push(...s.spans)
        }
        res.writeHead(200, { "content-type": "application/json" })
        res.end("{}")
      })
    })
    server.listen(0, "127.0.0.1", () =>
      done({
        url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
        spans,
        close: () => new Promise<void>((closed) => server.close(() => closed()))
      }))
  })

/** The string attribute `key` of an OTLP span. */
export const otlpAttribute = (span: OtlpSpan, key: string) =>
  span.attributes.find((a) => a.key === key)?.value.stringValue
