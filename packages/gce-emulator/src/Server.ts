/**
 * The emulator's HTTP front: every request under `/compute/v1/` is matched against the Compute routes, decoded
 * by `Api`, handled by `Compute` and shaped back by `Api`; `/dns/v1/` goes to `Dns`; `/emulator/v1/` is the emulator's own admin API (a path
 * Google's APIs do not use):
 *
 * - `GET /emulator/v1/faults`, `PUT /emulator/v1/faults` (a `Faults.Config` JSON; unknown keys refused);
 * - `POST /emulator/v1/projects/P/zones/Z/instances/I/fail`: kills the instance's host, which goes `TERMINATED`.
 */
import { Effect, Schema } from "effect"
import { HttpRouter, type HttpServerRequest, HttpServerResponse } from "effect/http"
import type * as Api from "./Api.ts"
import * as ApiError from "./ApiError.ts"
import type * as Compute from "./Compute.ts"
import type * as Dns from "./Dns.ts"
import * as Faults from "./Faults.ts"

const json = (status: number, body: unknown) =>
  HttpServerResponse.text(JSON.stringify(body, null, 1), { status, contentType: "application/json; charset=UTF-8" })

const failWith = (e: ApiError.ApiError) => {
  const { status, body } = ApiError.toHttp(e)
  return json(status, body)
}

/** Compute: route, decode, handle, shape. */
const computeMethod = (
  api: Api.Definitions,
  handlers: Compute.Compute["handlers"],
  request: HttpServerRequest.HttpServerRequest,
  url: URL
) =>
  Effect.gen(function*() {
    const matched = api.match(request.method, url.pathname)
    if (matched === undefined) {
      return yield* ApiError.notFound(
        `The requested URL ${request.method} ${url.pathname} is not a Compute API method.`
      )
    }
    const { route, params } = matched
    const handler = handlers.get(`${route.service}.${route.method}`)
    if (handler === undefined) {
      return yield* ApiError.notImplemented(
        `The emulator does not serve ${route.service}.${route.method} (${route.verb} ${route.template}).`
      )
    }
    const body = yield* request.text.pipe(Effect.orElseSucceed(() => ""))
    const decoded = yield* api.decode(route, params, url.searchParams, body)
    const result = yield* handler(decoded)
    return json(200, api.encode(route.responseType.name, result))
  })

const faultsConfig = Schema.decodeUnknownEffect(Faults.Config, { onExcessProperty: "error" })

const admin = (
  api: Api.Definitions,
  compute: Compute.Compute,
  faults: Faults.Faults["Service"],
  request: HttpServerRequest.HttpServerRequest,
  url: URL
) =>
  Effect.gen(function*() {
    const path = url.pathname
    if (path === "/emulator/v1/faults" && request.method === "GET") return json(200, yield* faults.current)
    if (path === "/emulator/v1/faults" && request.method === "PUT") {
      const text = yield* request.text.pipe(Effect.orElseSucceed(() => ""))
      const config = yield* Effect.try({ try: () => JSON.parse(text) as unknown, catch: (e) => String(e) }).pipe(
        Effect.flatMap((input) => faultsConfig(input).pipe(Effect.mapError((e) => e.message))),
        Effect.mapError((message) => ApiError.invalid(`faults: ${message}`))
      )
      yield* faults.set(config)
      return json(200, config)
    }
    const fail = /^\/emulator\/v1\/projects\/([^/]+)\/zones\/([^/]+)\/instances\/([^/]+)\/fail$/.exec(path)
    if (fail !== null && request.method === "POST") {
      const instance = yield* compute.fail(fail[1]!, fail[2]!, fail[3]!)
      return json(200, api.encode("Instance", instance))
    }
    return yield* ApiError.notFound(`No emulator admin method at ${request.method} ${path}.`)
  })

/** Cloud DNS: handled as a whole by `Dns`. */
const dnsMethod = (dns: Dns.Dns, request: HttpServerRequest.HttpServerRequest, url: URL) =>
  Effect.gen(function*() {
    const body = yield* request.text.pipe(Effect.orElseSucceed(() => ""))
    return json(200, yield* dns.handle(request.method, url, body))
  })

/** The routes of an emulator. */
export const routes = (
  api: Api.Definitions,
  computeService: Compute.Compute,
  dns: Dns.Dns,
  faults: Faults.Faults["Service"]
) =>
  HttpRouter.use(Effect.fn(function*(router) {
    yield* router.add("*", "*", (request) => {
      const url = new URL(request.url, "http://emulator.invalid")
      const handle = url.pathname.startsWith("/emulator/v1/")
        ? admin(api, computeService, faults, request, url)
        : url.pathname.startsWith("/dns/v1/")
        ? dnsMethod(dns, request, url)
        : computeMethod(api, computeService.handlers, request, url)
      return handle.pipe(
        Effect.catchTag("ApiError", (e) => Effect.succeed(failWith(e))),
        Effect.catchDefect((defect) =>
          Effect.succeed(json(500, {
            error: { code: 500, message: `emulator bug: ${String(defect)}`, status: "INTERNAL" }
          }))
        )
      )
    })
  }))
