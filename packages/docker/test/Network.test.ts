/**
 * Network faults on Docker agents (test/fixtures/DockerEngine.ts): on the host network, a delay and a partition
 * between real containers, undone with their scopes; on a network of their own, a partition, a bandwidth cap and
 * a delay (or its refusal, where the kernel has no netem).
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
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
import { Context, Effect, Layer, type Scope } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as NetworkProbe from "../../../scenarios/src/NetworkProbe.ts"
import * as DockerEngine from "../../../test/fixtures/DockerEngine.ts"
import * as Integration from "../../../test/fixtures/Integration.ts"
import * as Ports from "../../../test/fixtures/Ports.ts"
import { DockerAgents, DockerClient } from "../src/index.ts"
import * as DockerBackend from "./fixtures/DockerBackend.ts"

/** This file's agent ports (see `Ports.ts`). */
const ports = Ports.take(200)

const enabled = Integration.available("docker integration tests", DockerEngine.binaries)
const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-docker-network-"))
const namespace = `dn${process.pid}`
const client = DockerClient.layer({ socketPath: DockerEngine.socket })

const backend = (input: CloudConfig.Input) =>
  DockerBackend.layer({ stateDir, namespace, keyHome: path.join(stateDir, "home"), ports, input })

/**
 * Agents a, b and c deployed (in the current scope) with `input`, their faults, an echo server on b, and
 * `withCloud`, which runs a scenario's piece with them in a scope of its own.
 */
const deployed = (input: CloudConfig.Input) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(backend(input))
    const config = Context.get(context, CloudConfig.CurrentConfig)
    const deployment = Context.get(context, Deployment.Deployment)
    const agents = yield* deployment.deploy(
      AgentConfig.complete(["a", "b", "c"].map((name) => ({ name })), Orchestrator.agentDefaults(config))
    )
    const [a, b, c] = agents as [typeof agents[0], typeof agents[0], typeof agents[0]]
    const faults = yield* deployment.network!(agents, Network.seeded(7))
    const withCloud = <A, E>(effect: Effect.Effect<A, E, Cloud.Cloud | Scope.Scope>) =>
      effect.pipe(Effect.scoped, Effect.provideService(Cloud.Cloud, Cloud.make(config, agents, undefined, faults)))
    return { a, b, c, faults, withCloud, server: yield* NetworkProbe.echoServer(b) }
  })

/** While [a] | [b, c] holds, a cannot reach b's server and c can; once it heals, a can. */
const partitionHolds = ({ a, b, c, server, withCloud }: Effect.Success<ReturnType<typeof deployed>>) =>
  Effect.gen(function*() {
    yield* withCloud(Effect.gen(function*() {
      yield* Network.partition([a], [b, c])
      assert.deepStrictEqual(yield* NetworkProbe.attempts(a, server, 2, 1), { ok: 0, failed: 2 })
      assert.deepStrictEqual(yield* NetworkProbe.attempts(c, server, 2, 5), { ok: 2, failed: 0 })
    }))
    assert.deepStrictEqual(yield* NetworkProbe.attempts(a, server, 2, 5), { ok: 2, failed: 0 })
  })

describe.runIf(enabled)("network faults on Docker agents", () => {
  beforeAll(() => DockerEngine.ready(), 600_000)

  afterAll(async () => {
    await Effect.runPromise(
      DockerAgents.cleanUp(namespace).pipe(
        Effect.provide(Layer.mergeAll(client, Ledger.Ledger.layer(stateDir, namespace))),
        Effect.ignore
      )
    )
    fs.rmSync(stateDir, { recursive: true, force: true })
  })

  it.live(
    "host network: a delay and a partition between containers, each undone when its scope closes",
    () =>
      Effect.gen(function*() {
        const run = yield* deployed({})
        const { a, b, server, withCloud } = run
        assert.include((yield* run.faults.mechanisms).join("\n"), "Docker containers on the host network")

        yield* withCloud(Effect.gen(function*() {
          yield* Network.delay(b, { millis: 200, jitterMillis: 0 })
          const times = yield* NetworkProbe.roundTrips(a, server, 3)
          for (const t of times) assert.isAtLeast(t, 400, `round trips ${times.join(", ")}`)
        }))
        const undone = yield* NetworkProbe.roundTrips(a, server, 3)
        // Were the delay still there, every trip would take 400 ms or more; a loaded machine may slow some others.
        assert.isBelow(Math.min(...undone), 200, `round trips once the delay is undone: ${undone.join(", ")}`)

        // The relay tells the containers' processes apart (their agent is in their environment).
        yield* partitionHolds(run)
      }).pipe(
        Effect.scoped,
        Effect.andThen(Effect.sync(() => {
          assert.deepStrictEqual(LoopbackNetwork.leftovers(namespace), [], "the run's rules are gone with its scope")
        }))
      ),
    180_000
  )

  it.live(
    "a network of their own: partitions by routes, a cap by tbf, delay by netem or a refusal naming it",
    () =>
      Effect.gen(function*() {
        const run = yield* deployed({ docker_host_network: false, vm_base_port: ports + 100 })
        const { a, b, server, withCloud } = run
        assert.include((yield* run.faults.mechanisms).join("\n"), "blackhole routes")
        yield* partitionHolds(run)

        // b's answers leave through its capped eth0: 64 KiB at 32 KiB/s (16 KiB of burst) takes at least 1.5 s.
        yield* withCloud(Effect.gen(function*() {
          yield* Network.bandwidth(b, 32 * 1024)
          const capped = yield* NetworkProbe.transfer(a, server, 65536)
          assert.strictEqual(capped.bytes, 65536)
          assert.isAtLeast(capped.millis, 1000, `capped transfer: ${capped.millis} ms`)
        }))
        const fast = yield* NetworkProbe.transfer(a, server, 65536)
        assert.isBelow(fast.millis, 1000, `once the cap is undone: ${fast.millis} ms`)

        // netem delays b's answers (its egress); without netem in the kernel, the delay is refused, naming it.
        const delayed = yield* withCloud(Effect.gen(function*() {
          yield* Network.delay(b, { millis: 200, jitterMillis: 0 })
          return yield* NetworkProbe.roundTrips(a, server, 2)
        })).pipe(Effect.result)
        if (delayed._tag === "Success") { for (const t of delayed.success) assert.isAtLeast(t, 200) }
        else assert.include(delayed.failure.message, "netem")
      }).pipe(Effect.scoped),
    180_000
  )
})
