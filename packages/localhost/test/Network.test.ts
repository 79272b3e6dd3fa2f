import { afterAll, assert, describe, it } from "@effect/vitest"
import {
  AgentConfig,
  Cloud,
  CloudConfig,
  Deployment,
  Ledger,
  LoopbackNetwork,
  Network,
  Orchestrator
} from "@tezt-cloud/core"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as NetworkProbe from "../../../scenarios/src/NetworkProbe.ts"
import * as BackendLayer from "../../../test/fixtures/BackendLayer.ts"
import { Localhost } from "../src/index.ts"

const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "localhost-network-"))
const namespace = `nf-${process.pid}-${Math.random().toString(36).slice(2, 8)}`

afterAll(() => {
  Localhost.forceKillSync(namespace)
  fs.rmSync(stateDir, { recursive: true, force: true })
})

const backend = BackendLayer.layer({
  stateDir,
  namespace,
  input: { vm_base_port: 47300, ports_per_vm: 10 },
  deployment: (config) =>
    Localhost.layer({ stateDir, config, artifactsDir: path.join(stateDir, "artifacts"), killGrace: "1 second" })
})

/** The backend built in the current scope, agents called `names` deployed, and their network faults. */
const deployed = (names: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(backend)
    const config = Context.get(context, CloudConfig.CurrentConfig)
    const deployment = Context.get(context, Deployment.Deployment)
    const agents = yield* deployment.deploy(
      AgentConfig.complete(names.map((name) => ({ name })), Orchestrator.agentDefaults(config))
    )
    const faults = yield* deployment.network!(agents, Network.seeded(42))
    return { config, ledger: Context.get(context, Ledger.Ledger), agents, faults }
  })

const networkKinds = (ledger: Ledger.Ledger["Service"]) =>
  ledger.outstanding.pipe(
    Effect.map((records) => records.filter((r) => LoopbackNetwork.kinds.includes(r.kind)).map((r) => r.kind))
  )

describe("network faults on process sandboxes", () => {
  it.live(
    "delay, jitter, a partition, loss and a bandwidth cap between real agents, each undone when its scope closes",
    () =>
      Effect.gen(function*() {
        const { agents, config, faults, ledger } = yield* deployed(["a", "b", "c"])
        const [a, b, c] = agents as [typeof agents[0], typeof agents[0], typeof agents[0]]
        const withCloud = <A, E>(effect: Effect.Effect<A, E, Cloud.Cloud | Scope.Scope>) =>
          effect.pipe(Effect.scoped, Effect.provideService(Cloud.Cloud, Cloud.make(config, agents, undefined, faults)))
        const server = yield* NetworkProbe.echoServer(b)
        const base = yield* NetworkProbe.transfer(a, server, 65536)

        // Delay: each request/response of a to b's port takes twice the delay more (once each way).
        yield* withCloud(Effect.gen(function*() {
          yield* Network.delay(b, { millis: 200, jitterMillis: 0 })
          const times = yield* NetworkProbe.roundTrips(a, server, 3)
          for (const t of times) assert.isAtLeast(t, 400, `round trips ${times.join(", ")}`)
          // Recorded before they exist: the run's table, the relay and its redirect.
          const kinds = yield* networkKinds(ledger)
          for (const kind of ["nft-table", "relay", "nft-chain"]) assert.include(kinds, kind)
        }))
        const undone = yield* NetworkProbe.roundTrips(a, server, 3)
        // Were the delay still there, every trip would take 400 ms or more; a loaded machine may slow some others.
        assert.isBelow(Math.min(...undone), 200, `round trips once the delay is undone: ${undone.join(", ")}`)

        // Jitter: the round trips spread, far more than a loaded machine's own noise (tens of ms): each one is
        // 200 ms ± up to 200 ms, so 12 of them all within 100 ms of each other is about a chance in 10^5.
        yield* withCloud(Effect.gen(function*() {
          yield* Network.delay(b, { millis: 100, jitterMillis: 100 })
          const times = yield* NetworkProbe.roundTrips(a, server, 12)
          assert.isAtLeast(NetworkProbe.summary(times).spread, 100, `round trips ${times.join(", ")}`)
        }))

        // A partition: a cannot reach b; b's own group (c) still can; healed at the end of its scope.
        yield* withCloud(Effect.gen(function*() {
          yield* Network.partition([a], [b, c])
          assert.deepStrictEqual(yield* NetworkProbe.attempts(a, server, 2, 1), { ok: 0, failed: 2 })
          assert.deepStrictEqual(yield* NetworkProbe.attempts(c, server, 2, 5), { ok: 2, failed: 0 })
        }))
        assert.deepStrictEqual(yield* NetworkProbe.attempts(a, server, 2, 5), { ok: 2, failed: 0 })

        // Loss: requests fail (or wait for retransmissions past their deadline).
        yield* withCloud(Effect.gen(function*() {
          yield* Network.loss(b, 60)
          const lossy = yield* NetworkProbe.attempts(a, server, 6, 0.5)
          assert.isAtLeast(lossy.failed, 1, JSON.stringify(lossy))
        }))
        assert.deepStrictEqual(yield* NetworkProbe.attempts(a, server, 2, 5), { ok: 2, failed: 0 })

        // A bandwidth cap: 64 KiB at 32 KiB/s takes about 2 s, against milliseconds without.
        yield* withCloud(Effect.gen(function*() {
          yield* Network.bandwidth(b, 32 * 1024)
          const capped = yield* NetworkProbe.transfer(a, server, 65536)
          assert.strictEqual(capped.bytes, 65536)
          assert.isAtLeast(capped.millis, 1500, `capped ${capped.millis} ms, without a cap ${base.millis} ms`)
        }))

        // A killed run: faults whose scope never closes; CLOUD clean up removes their rules and records.
        const killed = yield* Scope.make()
        yield* Effect.gen(function*() {
          yield* Network.loss(a, 10)
          yield* Network.delay(c, { millis: 10, jitterMillis: 0 })
        }).pipe(
          Effect.provideService(Scope.Scope, killed),
          Effect.provideService(Cloud.Cloud, Cloud.make(config, agents, undefined, faults))
        )
        assert.isNotEmpty(LoopbackNetwork.leftovers(namespace))
        const lines = yield* Localhost.backend.cleanUp({ stateDir, config }).pipe(
          Effect.provideService(Ledger.Ledger, ledger)
        )
        assert.isTrue(lines.some((l) => l.includes(LoopbackNetwork.tableName(namespace))), lines.join("\n"))
        assert.deepStrictEqual(LoopbackNetwork.leftovers(namespace), [])
        assert.deepStrictEqual(yield* networkKinds(ledger), [])
        yield* Scope.close(killed, Exit.void)
      }).pipe(Effect.scoped),
    120_000
  )

  it.live("a run's own scope removes its rules and relays", () =>
    Effect.gen(function*() {
      yield* Effect.gen(function*() {
        const { agents, faults } = yield* deployed(["d"])
        yield* faults.delay(agents[0]!, { millis: 1, jitterMillis: 0 })
        yield* faults.loss(agents[0]!, 1)
        assert.isNotEmpty(LoopbackNetwork.leftovers(namespace))
      }).pipe(Effect.scoped)
      assert.deepStrictEqual(LoopbackNetwork.leftovers(namespace), [])
      const ledger = yield* Ledger.Ledger
      assert.deepStrictEqual(yield* networkKinds(ledger), [])
    }).pipe(Effect.provide(Ledger.Ledger.layer(stateDir, namespace))), 60_000)

  it.live("the second Ctrl+C's force kill deletes the rules at once", () =>
    Effect.gen(function*() {
      const { agents, faults } = yield* deployed(["e"])
      yield* Effect.scoped(Effect.gen(function*() {
        yield* faults.delay(agents[0]!, { millis: 1, jitterMillis: 0 })
        assert.isNotEmpty(LoopbackNetwork.leftovers(namespace))
        assert.isAtLeast(Localhost.forceKillSync(namespace), 1)
        assert.deepStrictEqual(LoopbackNetwork.leftovers(namespace), [])
      }))
    }).pipe(Effect.scoped), 60_000)
})
