/**
 * The registry of backends (`Backends.ts`): which backend a configuration selects and what it says, errors that
 * name the backend and the reason, a `CLOUD clean up` that runs every backend's clean-up even when one fails, and
 * reattaching only through the backend a descriptor names. No Docker engine answers in this file
 * (`DOCKER_HOST` points nowhere), so `--localhost` means process sandboxes.
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import { assert, describe, it } from "@effect/vitest"
import { CloudConfig, type CloudError, Ledger, RunEvents, TestCloud } from "@tezt-cloud/core"
import { Cause, Effect, Exit, Layer, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Backends from "../src/Backends.ts"

const noEngine = "unix:///nonexistent/tezt-cloud-no-docker.sock"
process.env.DOCKER_HOST = noEngine
const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "backends-test-"))
const where = { stateDir, artifactsDir: path.join(stateDir, "artifacts") }

const reasonOf = <A>(exit: Exit.Exit<A, CloudError.CloudError>) => {
  assert.isTrue(Exit.isFailure(exit), "it fails")
  return Exit.isFailure(exit) ? (Cause.squash(exit.cause) as CloudError.CloudError) : undefined
}

describe("Backends", () => {
  it.effect("every entry loads the backend of its own id, and ids are unique", () =>
    Effect.gen(function*() {
      const all = yield* Backends.all
      assert.deepStrictEqual(all.map((b) => b.id), Backends.entries.map((e) => e.id))
      assert.strictEqual(new Set(all.map((b) => b.id)).size, all.length)
    }))

  it.effect("each backend's config is a slice of the run configuration, with every option it owns", () =>
    Effect.gen(function*() {
      const owner: Record<string, CloudConfig.BackendTag> = { "ssh-host": "ssh", docker: "docker", "ssh-docker": "ssh" }
      const config = yield* TestCloud.config({ ssh_max_channels: 3, docker_host_network: false })
      for (const backend of yield* Backends.all) {
        const fields = Object.entries(backend.config.fields)
        assert.isAbove(fields.length, 0, backend.id)
        for (const [name, schema] of fields) {
          assert.strictEqual(
            schema,
            (CloudConfig.CloudConfig.fields as Schema.Struct.Fields)[name],
            `${backend.id}: ${name}`
          )
        }
        const tag = owner[backend.id]
        if (tag !== undefined) {
          assert.includeMembers(Object.keys(backend.config.fields), Object.keys(CloudConfig.ownedBy(tag)), backend.id)
        }
        // Every field of the slice decodes from the run's configuration, as it is.
        const slice = Schema.decodeUnknownSync(backend.config as unknown as Schema.Codec<Record<string, unknown>>)(
          config
        )
        for (const name of Object.keys(backend.config.fields)) {
          assert.deepStrictEqual(slice[name], (config as Record<string, unknown>)[name], `${backend.id}: ${name}`)
        }
      }
      assert.sameMembers(Object.keys(CloudConfig.ownedBy("ssh")), [
        "sshConfig",
        "sshJump",
        "sshPrivateKey",
        "insecureHostKeys",
        "sshProvision",
        "sshMaxChannels"
      ])
      assert.sameMembers(Object.keys(CloudConfig.ownedBy("docker")), ["dockerHostNetwork"])
    }))

  it.effect("--localhost with no engine: process sandboxes, saying why", () =>
    Effect.gen(function*() {
      const auto = yield* Backends.select(yield* TestCloud.config({ localhost: true }), where)
      assert.strictEqual(auto.description, `local process sandboxes (no Docker engine answers at ${noEngine})`)
      const forced = yield* Backends.select(yield* TestCloud.config({ agent_runtime: "process" }), where)
      assert.strictEqual(forced.description, "local process sandboxes (--agent-runtime process)")
    }))

  it.effect("--agent-runtime docker with no engine is refused, naming the option and the fix", () =>
    Effect.gen(function*() {
      const config = yield* TestCloud.config({ agent_runtime: "docker" })
      const error = reasonOf(yield* Effect.exit(Backends.select(config, where)))
      assert.strictEqual(error?.reason._tag, "ConfigInvalid")
      assert.match(error?.message ?? "", /--agent-runtime docker: no Docker engine answers.*--agent-runtime process/)
    }))

  it.effect("--ssh-host selects the ssh host, without connecting to it", () =>
    Effect.gen(function*() {
      const config = yield* TestCloud.config({ localhost: false, ssh_host: "bob@10.1.2.3:2222" })
      const selected = yield* Backends.select(config, where)
      assert.strictEqual(selected.description, "process sandboxes on bob@10.1.2.3:2222 over ssh")
    }))

  it.effect("--ssh-host with --agent-runtime docker selects the host's Docker engine, without connecting to it", () =>
    Effect.gen(function*() {
      const config = yield* TestCloud.config({
        localhost: false,
        ssh_host: "bob@10.1.2.3:2222",
        agent_runtime: "docker"
      })
      const selected = yield* Backends.select(config, where)
      assert.strictEqual(selected.description, "Docker containers on bob@10.1.2.3:2222's engine over ssh")
    }))

  it.effect("the default mode selects GCP VMs, on the emulator TEZT_CLOUD_GCP_ENDPOINT names, contacting nothing", () =>
    Effect.gen(function*() {
      const config = yield* TestCloud.config({ localhost: false, project_id: "p" })
      process.env.TEZT_CLOUD_GCP_ENDPOINT = "http://127.0.0.1:1"
      const selected = yield* Backends.select(config, where).pipe(
        Effect.ensuring(Effect.sync(() => delete process.env.TEZT_CLOUD_GCP_ENDPOINT))
      )
      assert.strictEqual(
        selected.description,
        "GCP VMs (project p, zone europe-west1-b, emulator http://127.0.0.1:1)"
      )
    }))

  it.effect("a mode no backend runs is refused before anything is created", () =>
    Effect.gen(function*() {
      const config = yield* TestCloud.config({ localhost: false, proxy: true })
      const error = reasonOf(yield* Effect.exit(Backends.select(config, where)))
      assert.strictEqual(error?.reason._tag, "NotAvailable")
      assert.include(error?.message ?? "", "--localhost")
    }))

  it.effect("clean up runs every backend's clean-up even when one fails, and reports the failure", () =>
    Effect.gen(function*() {
      const namespace = "cleanup-all"
      const config = yield* TestCloud.config({ tezt_cloud: namespace })
      const sandbox = path.join(stateDir, namespace, "agents", "a")
      fs.mkdirSync(sandbox, { recursive: true })
      const ledger = Ledger.Ledger.layer(stateDir, namespace)
      yield* Effect.gen(function*() {
        const l = yield* Ledger.Ledger
        // A container recorded by a killed run, on an engine that does not answer: Docker's clean-up fails.
        yield* l.acquire({ id: "docker-container:x", kind: "docker-container", data: { name: "x" } })
        yield* l.acquire({ id: "sandbox:a", kind: "sandbox", data: { agent: "a", path: sandbox, marker: "m" } })
      }).pipe(Effect.provide(ledger))
      const report = yield* Backends.cleanUp(stateDir, config).pipe(Effect.provide(ledger))
      assert.deepStrictEqual(report.failed.map((f) => f.backend), ["docker"])
      assert.include(report.failed[0]!.error.message, "no Docker engine answers")
      assert.deepStrictEqual(
        report.done.map((d) => d.backend),
        ["proxy", "localhost", "ssh-docker", "ssh-host", "gcp"],
        "the proxy first: a run on a proxy is stopped before the machine it runs on goes"
      )
      assert.isFalse(fs.existsSync(sandbox), "the sandbox is removed although Docker's clean-up failed")
      const left = yield* Effect.flatMap(Effect.service(Ledger.Ledger), (l) => l.outstanding).pipe(
        Effect.provide(ledger)
      )
      assert.deepStrictEqual(left.map((r) => r.id), ["docker-container:x"], "only the failed backend's record stays")
    }))

  it.effect("reattaching agents of a backend this build does not have names it", () =>
    Effect.gen(function*() {
      const config = yield* TestCloud.config({})
      const exit = yield* Effect.exit(
        Effect.scoped(
          Backends.reattach([{ backend: "no-such-backend", agent: "a" }], { config, stateDir, oneCommandEach: true })
        ).pipe(
          Effect.provide(
            Layer.mergeAll(Ledger.Ledger.layerMemory("t"), RunEvents.RunEvents.layerNoop, NodeServices.layer)
          )
        )
      )
      const error = reasonOf(exit)
      assert.strictEqual(error?.reason._tag, "NotAvailable")
      assert.include(error?.message ?? "", "backend no-such-backend")
    }))
})
