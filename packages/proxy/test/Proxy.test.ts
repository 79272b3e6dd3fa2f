/**
 * The proxy as a backend value: which backend makes the proxy machine (a local Docker container for
 * `--localhost --proxy`; a GCP VM is refused with the fix), and what it selects on each side: it passes on the
 * user's machine (the run is handed to the proxy before any backend is chosen) and, on the proxy, runs the agents
 * with the proxy's own runtimes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Backend, type CloudError, TestCloud } from "@tezt-cloud/core"
import { Effect, Exit } from "effect"
import * as Proxy from "../src/Proxy.ts"
import * as Protocol from "../src/ProxyProtocol.ts"

const context = { stateDir: "/nonexistent", artifactsDir: "/nonexistent/a", passed: [] }

const reasonOf = <A>(exit: Exit.Exit<A, CloudError.CloudError>) =>
  Exit.isFailure(exit) && exit.cause.reasons[0]?._tag === "Fail"
    ? (exit.cause.reasons[0].error as CloudError.CloudError)
    : undefined

describe("Proxy", () => {
  it.effect("--localhost --proxy: the proxy is a Docker container on a network of its own", () =>
    Effect.gen(function*() {
      const config = yield* TestCloud.config({ tezt_cloud: "ns", proxy: true })
      const inner = yield* Proxy.inner(config)
      assert.strictEqual(inner.backend.id, "docker")
      assert.deepInclude(inner.config, { mode: "localhost", dockerHostNetwork: false, namespace: "ns" })
    }))

  it.effect("--proxy alone (a GCP VM) and a namespace too long for <ns>-proxy are refused with the fix", () =>
    Effect.gen(function*() {
      const gcp = reasonOf(yield* Effect.exit(Proxy.inner(yield* TestCloud.config({ localhost: false, proxy: true }))))
      assert.strictEqual(gcp?.reason._tag, "NotAvailable")
      assert.include(gcp?.message, "--localhost --proxy")
      const long = "n".repeat(Proxy.maxNamespace + 1)
      const tooLong = reasonOf(
        yield* Effect.exit(Proxy.inner(yield* TestCloud.config({ tezt_cloud: long, proxy: true })))
      )
      assert.strictEqual(tooLong?.reason._tag, "ConfigInvalid")
      assert.include(tooLong?.message, "--tezt-cloud")
    }))

  it.effect("it passes without --proxy, and on the user's machine; on the proxy it runs the agents there", () =>
    Effect.gen(function*() {
      const plain = yield* Proxy.backend.select(yield* TestCloud.config({ tezt_cloud: "ns" }), context)
      assert.deepStrictEqual(plain, Backend.Pass({ why: "not --proxy" }))
      const proxied = yield* TestCloud.config({ tezt_cloud: "ns", proxy: true })
      assert.strictEqual((yield* Proxy.backend.select(proxied, context))._tag, "Pass")
      const saved = { on: process.env[Protocol.onProxyVariable], docker: process.env.DOCKER_HOST }
      process.env[Protocol.onProxyVariable] = "ns"
      process.env.DOCKER_HOST = "unix:///nonexistent/tezt-cloud-no-docker.sock"
      const choice = yield* Proxy.backend.select(proxied, context).pipe(
        Effect.ensuring(Effect.sync(() => {
          for (const [key, value] of [[Protocol.onProxyVariable, saved.on], ["DOCKER_HOST", saved.docker]] as const) {
            if (value === undefined) delete process.env[key]
            else process.env[key] = value
          }
        }))
      )
      assert.strictEqual(choice._tag, "Take")
      assert.match(choice._tag === "Take" ? choice.description : "", /^local process sandboxes \(.*\), on the proxy$/)
      assert.isFalse(Proxy.onProxy({ [Protocol.onProxyVariable]: "other" }, "ns"))
    }))
})
