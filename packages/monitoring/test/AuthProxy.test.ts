/**
 * The auth proxy against a real HTTP server standing in for a UI service: the credential check, what is forwarded
 * (method, path, body, headers, but never the credentials), answers streamed as they come (and cut when the service
 * dies mid-answer), 502 for a service that does not answer, and a taken port refused naming the option.
 */
import { assert, describe, it } from "@effect/vitest"
import { CloudError } from "@tezt-cloud/core"
import { Deferred, Effect, Exit, Scope } from "effect"
import * as http from "node:http"
import type * as net from "node:net"
import { AuthProxy } from "../src/index.ts"
import { freePort } from "./utils.ts"

const user = "alice"
const password = "pä:ss word"
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString("base64")}`

/** What the stand-in service saw of a request. */
interface Seen {
  readonly method: string
  readonly url: string
  readonly authorization: string | undefined
  readonly body: string
}

/**
 * A service on a free port of 127.0.0.1 in the current scope: `/stream` sends a first line and ends only once
 * `release` is done; every other path answers 201 with the request's body and an `x-service` header.
 */
const service = (release: Deferred.Deferred<void>) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly port: number; readonly seen: Array<Seen>; readonly server: http.Server }>((resume) => {
      const seen: Array<Seen> = []
      const server = http.createServer((request, response) => {
        const chunks: Array<Buffer> = []
        request.on("data", (c: Buffer) => chunks.push(c))
        request.on("end", () => {
          seen.push({
            method: request.method ?? "",
            url: request.url ?? "",
            authorization: request.headers.authorization,
            body: Buffer.concat(chunks).toString("utf8")
          })
          if (request.url === "/die") {
            response.writeHead(200, { "content-type": "text/plain" })
            response.write("part of it\n")
            return void setImmediate(() => response.socket?.destroy())
          }
          if (request.url === "/stream") {
            response.writeHead(200, { "content-type": "text/plain" })
            response.write("first\n")
            void Effect.runPromise(Deferred.await(release)).then(() => response.end("last\n"))
            return
          }
          response.writeHead(201, { "x-service": "yes", "content-type": "text/plain" })
          response.end(Buffer.concat(chunks))
        })
      })
      server.listen(0, "127.0.0.1", () =>
        resume(Effect.succeed({ port: (server.address() as net.AddressInfo).port, seen, server })))
    }),
    ({ server }) =>
      Effect.sync(() => {
        server.closeAllConnections()
        server.close()
      })
  )

const route = (port: number, target: number): AuthProxy.Route => ({
  service: "the website",
  option: "--website-port",
  host: "127.0.0.1",
  port,
  target: { host: "127.0.0.1", port: target }
})

const fetchFrom = (url: string, init: RequestInit = {}) =>
  Effect.promise(() => fetch(url, { ...init, signal: AbortSignal.timeout(10_000) }))

describe("AuthProxy", () => {
  it("checks the credentials of an Authorization header", () => {
    const allowed = AuthProxy.checker(user, password)
    assert.isTrue(allowed(basic(user, password)))
    assert.isTrue(allowed(basic(user, password).replace("Basic", "basic")))
    for (
      const header of [
        undefined,
        "",
        basic(user, "wrong"),
        basic("bob", password),
        basic(user, `${password}x`),
        `Bearer ${password}`,
        "Basic !!!"
      ]
    ) {
      assert.isFalse(allowed(header), String(header))
    }
  })

  it.live("401 without the credentials; with them the request is forwarded without them, the answer streamed (or cut)", () =>
    Effect.gen(function*() {
      const release = yield* Deferred.make<void>()
      const upstream = yield* service(release)
      const port = yield* Effect.promise(freePort)
      yield* AuthProxy.serve({ user, password, routes: [route(port, upstream.port)] })
      const url = `http://127.0.0.1:${port}`

      for (const authorization of [undefined, basic(user, "wrong")]) {
        const response = yield* fetchFrom(`${url}/echo`, {
          method: "POST",
          body: "not for you",
          headers: authorization === undefined ? {} : { authorization }
        })
        assert.strictEqual(response.status, 401)
        assert.strictEqual(response.headers.get("www-authenticate"), `Basic realm="tezt-cloud"`)
        yield* Effect.promise(() => response.text())
      }
      assert.deepStrictEqual(upstream.seen, [], "nothing reached the service without the credentials")

      const echoed = yield* fetchFrom(`${url}/echo?x=1`, {
        method: "POST",
        body: "hello",
        headers: { authorization: basic(user, password) }
      })
      assert.strictEqual(echoed.status, 201)
      assert.strictEqual(echoed.headers.get("x-service"), "yes")
      assert.strictEqual(yield* Effect.promise(() => echoed.text()), "hello")
      assert.deepStrictEqual(upstream.seen, [{
        method: "POST",
        url: "/echo?x=1",
        authorization: undefined,
        body: "hello"
      }])

      // The first line arrives while the service still holds the answer open: nothing is buffered.
      const streamed = yield* fetchFrom(`${url}/stream`, { headers: { authorization: basic(user, password) } })
      const reader = streamed.body!.getReader()
      const first = yield* Effect.promise(() => reader.read())
      assert.strictEqual(new TextDecoder().decode(first.value), "first\n")
      yield* Deferred.succeed(release, undefined)
      let rest = ""
      for (let chunk = yield* Effect.promise(() => reader.read()); !chunk.done;) {
        rest += new TextDecoder().decode(chunk.value)
        chunk = yield* Effect.promise(() => reader.read())
      }
      assert.strictEqual(rest, "last\n")

      // A service that dies mid-answer cuts that answer, and only that one.
      const cut = yield* fetchFrom(`${url}/die`, { headers: { authorization: basic(user, password) } })
      assert.strictEqual(cut.status, 200)
      const read = yield* Effect.promise(() => cut.text().then(() => "read", () => "cut"))
      assert.strictEqual(read, "cut")
      const after = yield* fetchFrom(`${url}/echo`, {
        method: "POST",
        body: "still here",
        headers: { authorization: basic(user, password) }
      })
      assert.strictEqual(yield* Effect.promise(() => after.text()), "still here")
    }).pipe(Effect.scoped))

  it.live("502 when the service does not answer; a taken port is refused naming the option; closed with its scope", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const nobody = yield* Effect.promise(freePort)
      const scope = yield* Scope.make()
      yield* AuthProxy.serve({ user, password, routes: [route(port, nobody)] }).pipe(Scope.provide(scope))
      const response = yield* fetchFrom(`http://127.0.0.1:${port}/`, {
        headers: { authorization: basic(user, password) }
      })
      assert.strictEqual(response.status, 502)
      assert.include(yield* Effect.promise(() => response.text()), "the website does not answer")

      const taken = yield* Effect.flip(
        AuthProxy.serve({ user, password, routes: [route(port, nobody)] }).pipe(Effect.scoped)
      )
      assert.instanceOf(taken, CloudError.CloudError)
      assert.include(taken.message, `cannot listen on 127.0.0.1:${port}`)
      assert.include(taken.message, "choose another --website-port")

      yield* Scope.close(scope, Exit.void)
      const after = yield* Effect.promise(() =>
        fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(10_000) }).then(
          (r) => r.status,
          () => 0
        )
      )
      assert.strictEqual(after, 0, "nothing listens once the scope is closed")
    }))
})
