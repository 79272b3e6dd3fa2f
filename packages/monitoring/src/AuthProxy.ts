/**
 * Auth mode's front door (`--auth-username` with `--auth-password`): a basic-auth reverse proxy run by the
 * orchestrator itself, one listener per UI service on the service's usual port, forwarding to the service, which
 * then listens on 127.0.0.1 at its port + 10000. What Tezt cloud does with an nginx container, without Docker.
 *
 * **Details**
 *
 * A request without the run's credentials gets `401` with `WWW-Authenticate: Basic realm="tezt-cloud"` and never
 * reaches the service. The check compares SHA-256 digests of the given and expected `user:password` with
 * `timingSafeEqual`: its time does not tell how much of a guess was right. A request with them is forwarded as is
 * (method, path, headers, body), without its `Authorization` header, and the answer streams back as it comes (the
 * website's live events, Prometheus' large answers): neither body is buffered. A service that does not answer
 * gives `502`. The password lives in this process' memory only: no file, no command line, no log.
 *
 * **Gotchas**
 *
 * Connection upgrades (WebSocket) are not forwarded: neither the website nor Prometheus uses them.
 */
import { CloudError } from "@tezt-cloud/core"
import { Effect, Schedule, type Scope } from "effect"
import * as crypto from "node:crypto"
import * as http from "node:http"
import * as Http from "./internal/http.ts"

/** One UI service behind the proxy. */
export interface Route {
  /** The service, as errors and logs name it (`the website`). */
  readonly service: string
  /** The option that sets its port, named when that port cannot be listened on. */
  readonly option: string
  /** Where the proxy answers for it: the service's usual address. */
  readonly host: string
  readonly port: number
  /** Where the service itself listens. */
  readonly target: { readonly host: string; readonly port: number }
}

export interface Options {
  readonly user: string
  readonly password: string
  readonly routes: ReadonlyArray<Route>
}

/** The realm browsers show when they ask for the credentials. */
export const realm = "tezt-cloud"

const digest = (text: string) => crypto.createHash("sha256").update(text, "utf8").digest()

/** Whether an `Authorization` header carries `user:password`, checked in a time that does not depend on the guess. */
export const checker = (user: string, password: string) => {
  const expected = digest(`${user}:${password}`)
  return (header: string | undefined): boolean => {
    const match = /^basic[ \t]+([A-Za-z0-9+/=]+)[ \t]*$/i.exec(header ?? "")
    const given = digest(match === null ? "" : Buffer.from(match[1]!, "base64").toString("utf8"))
    return crypto.timingSafeEqual(given, expected) && match !== null
  }
}

const unauthorized = (response: http.ServerResponse) => {
  response.writeHead(401, {
    "www-authenticate": `Basic realm="${realm}"`,
    "content-type": "text/plain; charset=utf-8"
  })
  response.end("401 Unauthorized: this run's services need its --auth-username and --auth-password\n")
}

/** The request handler of one route: the check, then the request streamed to the service and its answer back. */
const handler =
  (allowed: (header: string | undefined) => boolean, route: Route) =>
  (request: http.IncomingMessage, response: http.ServerResponse) => {
    if (!allowed(request.headers.authorization)) {
      request.resume()
      return unauthorized(response)
    }
    const { authorization: _, ...headers } = request.headers
    const upstream = http.request(
      { host: route.target.host, port: route.target.port, method: request.method, path: request.url, headers },
      (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.statusMessage, answer.rawHeaders)
        // The service went away mid-answer: so does the answer (an unhandled stream error would end the run).
        answer.on("error", () => response.destroy())
        answer.pipe(response)
      }
    )
    upstream.on("error", (e) => {
      if (response.headersSent) return void response.destroy()
      response.writeHead(502, { "content-type": "text/plain; charset=utf-8" })
      response.end(`502 Bad Gateway: ${route.service} does not answer (${e.message})\n`)
    })
    // The client went away: so does the request to the service (a long poll, a large answer).
    response.on("close", () => {
      if (!response.writableFinished) upstream.destroy()
    })
    request.on("error", () => upstream.destroy())
    request.pipe(upstream)
  }

/** Listens for `route` until the scope closes; open connections are cut then. */
const listen = (allowed: (header: string | undefined) => boolean, route: Route) =>
  Effect.acquireRelease(
    Effect.callback<http.Server, CloudError.CloudError>((resume) => {
      const server = http.createServer(handler(allowed, route))
      server.once("error", (e) =>
        resume(Effect.fail(CloudError.service(
          "auth proxy",
          `cannot listen on ${route.host}:${route.port} for ${route.service} (${e.message}): choose another ${route.option}`,
          { cause: e }
        ))))
      server.listen(route.port, route.host, () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.callback<void>((resume) => {
        server.close(() => resume(Effect.void))
        server.closeAllConnections()
      })
  )

/**
 * Serves `options.routes` in the current scope and waits until the first one answers `401` (as Tezt cloud waits
 * for its nginx).
 */
export const serve = Effect.fn("AuthProxy.serve")(function*(
  options: Options
): Effect.fn.Return<void, CloudError.CloudError, Scope.Scope> {
  const allowed = checker(options.user, options.password)
  for (const route of options.routes) {
    yield* listen(allowed, route)
    yield* Effect.logInfo(
      `auth proxy for ${route.service}: ${route.host}:${route.port} (${route.service} itself: ${route.target.host}:${route.target.port})`
    )
  }
  const first = options.routes[0]
  if (first === undefined) return
  const url = `http://${first.host.includes(":") ? `[${first.host}]` : first.host}:${first.port}/`
  yield* Http.request("auth proxy", url).pipe(
    Effect.flatMap((r) =>
      r.status === 401
        ? Effect.void
        : Effect.fail(CloudError.service("auth proxy", `${url} answered ${r.status}, not 401: is it ours?`))
    ),
    Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 50 })
  )
})
