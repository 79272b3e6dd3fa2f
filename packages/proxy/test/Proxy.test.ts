/**
 * The proxy as a backend value: which backend makes the proxy machine (a local Docker container for
 * `--localhost --proxy`, a GCP VM for `--proxy`, with what the run there needs of it), and what it selects on each
 * side: it passes on the user's machine (the run is handed to the proxy before any backend is chosen) and, on the
 * proxy, runs the agents with the proxy's own runtimes, or as GCP VMs.
 */
import { assert, describe, it } from "@effect/vitest"
import { Backend, type CloudError, TestCloud } from "@tezt-cloud/core"
import { GcpTarget } from "@tezt-cloud/gcp"
import { Effect, Exit } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Proxy from "../src/Proxy.ts"
import * as Protocol from "../src/ProxyProtocol.ts"

const context = { stateDir: "/nonexistent", artifactsDir: "/nonexistent/a", passed: [] }

const reasonOf = <A>(exit: Exit.Exit<A, CloudError.CloudError>) =>
  Exit.isFailure(exit) && exit.cause.reasons[0]?._tag === "Fail"
    ? (exit.cause.reasons[0].error as CloudError.CloudError)
    : undefined

/** `effect` with `vars` set in this process' environment, restored after. */
const withEnv = <A, E, R>(vars: Record<string, string>, effect: () => Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]))
    Object.assign(process.env, vars)
    return Effect.suspend(effect).pipe(Effect.ensuring(Effect.sync(() => {
      for (const [key, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[key]
        else process.env[key] = value
      }
    })))
  })

describe("Proxy", () => {
  it.effect("--localhost --proxy: the proxy is a Docker container on a network of its own", () =>
    Effect.gen(function*() {
      const config = yield* TestCloud.config({ tezt_cloud: "ns", proxy: true })
      const inner = yield* Proxy.inner(config)
      assert.strictEqual(inner.backend.id, "docker")
      assert.deepInclude(inner.config, { mode: "localhost", dockerHostNetwork: false, namespace: "ns" })
    }))

  it.effect("--proxy alone: the proxy is a GCP VM; the run there gets the API, zone and project, no --localhost", () =>
    Effect.gen(function*() {
      const config = yield* TestCloud.config({ tezt_cloud: "ns", localhost: false, proxy: true, project_id: "p" })
      const inner = yield* Proxy.inner(config)
      assert.strictEqual(inner.backend.id, "gcp")
      assert.deepInclude(inner.config, { mode: "cloud", backend: { _tag: "Gcp" }, namespace: "ns" })
      const remote = yield* withEnv(
        { [GcpTarget.endpointVariable]: "http://127.0.0.1:8086", [GcpTarget.zoneVariable]: "us-east1-c" },
        () => Effect.all([inner.remote({}), inner.remote({ project_id: "p" })])
      )
      assert.deepStrictEqual(remote[0], {
        args: ["--project-id", "p"],
        env: { [GcpTarget.endpointVariable]: "http://127.0.0.1:8086", [GcpTarget.zoneVariable]: "us-east1-c" },
        secrets: {}
      })
      assert.deepStrictEqual(remote[1].args, [], "a project the options name is in them already")
      // Google's API: the user's credentials file goes whole to the 0600 secrets file, never to the environment.
      const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "proxy-adc-")), "adc.json")
      fs.writeFileSync(file, JSON.stringify({ type: "authorized_user", refresh_token: "r3fresh" }))
      const google = yield* withEnv(
        { [GcpTarget.endpointVariable]: "", GOOGLE_APPLICATION_CREDENTIALS: file },
        () => inner.remote({ project_id: "p" })
      )
      assert.deepStrictEqual(google.secrets, { [GcpTarget.credentialsVariable]: fs.readFileSync(file, "utf8") })
      assert.notInclude(JSON.stringify([google.args, google.env]), "r3fresh")
      assert.deepStrictEqual((yield* (yield* Proxy.inner(yield* TestCloud.config({ proxy: true }))).remote({})).args, [
        "--localhost"
      ])
    }))

  it.effect("a namespace too long for <ns>-proxy is refused with the fix", () =>
    Effect.gen(function*() {
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
      const onGcp = yield* TestCloud.config({ tezt_cloud: "ns", localhost: false, proxy: true, project_id: "p" })
      const gcp = yield* withEnv(
        { [Protocol.onProxyVariable]: "ns", [GcpTarget.endpointVariable]: "http://127.0.0.1:8086" },
        () => Proxy.backend.select(onGcp, context)
      )
      assert.strictEqual(
        gcp._tag === "Take" ? gcp.description : "",
        "GCP VMs (project p, zone europe-west1-b, emulator http://127.0.0.1:8086), from the proxy"
      )
      // Google's API: the user's credentials (and so their project) come from the run's 0600 secrets file.
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "proxy-secrets-"))
      const secrets = path.join(dir, "secrets.json")
      const credentials = { type: "authorized_user", quota_project_id: "from-secrets" }
      fs.writeFileSync(secrets, JSON.stringify({ [GcpTarget.credentialsVariable]: JSON.stringify(credentials) }), {
        mode: 0o600
      })
      const unnamed = yield* TestCloud.config({ tezt_cloud: "ns", localhost: false, proxy: true })
      const google = yield* withEnv(
        {
          [Protocol.onProxyVariable]: "ns",
          [Protocol.secretsVariable]: secrets,
          [GcpTarget.endpointVariable]: "",
          CLOUDSDK_CONFIG: dir,
          GOOGLE_APPLICATION_CREDENTIALS: ""
        },
        () => Proxy.backend.select(unnamed, context)
      )
      assert.match(google._tag === "Take" ? google.description : "", /^GCP VMs \(project from-secrets, /)
    }))
})
