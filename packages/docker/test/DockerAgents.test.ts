/**
 * The `--localhost` Docker runtime against a real engine (test/fixtures/DockerEngine.ts): the Runner contract
 * unchanged, nothing of a run left behind (containers, network, image tags), an interrupted start-up, clean up
 * after a run that never tore down, namespaces that are prefixes of each other, names that never collide, and
 * containers or networks of our names that are someone else's, left alone.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { AgentConfig, CloudConfig, Deployment, Ledger, Orchestrator } from "@tezt-cloud/core"
import { Context, Effect, Fiber, Layer, Scope } from "effect"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as DockerEngine from "../../../test/fixtures/DockerEngine.ts"
import * as Integration from "../../../test/fixtures/Integration.ts"
import * as Ports from "../../../test/fixtures/Ports.ts"
import { clockSkewChecks } from "../../core/test/contract/ClockSkew.ts"
import { runnerContract } from "../../core/test/contract/RunnerContract.ts"
import { BaseImage, DockerAgents, DockerClient, DockerRegistry } from "../src/index.ts"
import * as DockerBackend from "./fixtures/DockerBackend.ts"

/** This file's agent ports (see `Ports.ts`). */
const ports = Ports.take(4000)

const enabled = Integration.available("docker integration tests", DockerEngine.binaries)
const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-docker-"))
const keyHome = path.join(stateDir, "home")
const base = `dt${process.pid}`
const client = DockerClient.layer({ socketPath: DockerEngine.socket })

/** The Docker runtime for `namespace`, on the test engine (the key all namespaces share, or the namespace's). */
const backend = (namespace: string, input: CloudConfig.Input = {}, key?: DockerBackend.Options["key"]) =>
  DockerBackend.layer({ stateDir, namespace, keyHome, ports, input, key })

const deploy = (
  namespace: string,
  names: ReadonlyArray<string>,
  input: CloudConfig.Input = {},
  key?: DockerBackend.Options["key"]
) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(backend(namespace, input, key))
    const config = Context.get(context, CloudConfig.CurrentConfig)
    const configs = AgentConfig.complete(names.map((name) => ({ name })), Orchestrator.agentDefaults(config))
    const agents = yield* Context.get(context, Deployment.Deployment).deploy(configs)
    return { agents, ledger: Context.get(context, Ledger.Ledger), config }
  })

const leftovers = (namespace: string) => DockerAgents.leftovers(namespace).pipe(Effect.provide(client))

/**
 * The names of the namespace's containers, as `leftovers` lists them, without its listing of images (which walks
 * every image the engine has, its build cache too: the slow part on a busy engine).
 */
const containers = (namespace: string) =>
  Effect.flatMap(
    Effect.service(DockerClient.DockerClient),
    (docker) => docker.containers({ [DockerClient.namespaceLabel]: namespace })
  ).pipe(
    Effect.map((found) => found.map((c) => c.name)),
    Effect.provide(client)
  )

const nothingLeft = (namespace: string) =>
  Effect.gen(function*() {
    const left = yield* leftovers(namespace)
    assert.deepStrictEqual(left, { containers: [], networks: [], images: [] }, `${namespace} left something`)
  })

describe.runIf(enabled)("docker", () => {
  beforeAll(() => DockerEngine.ready(), 600_000)

  afterAll(async () => {
    // Whatever a failed test left of this file's namespaces.
    const namespaces = ["rc", "host", "net", "int", "kill", "force", "forcex", "a", "ab", "a-b", "reg", "theirs"]
      .map((suffix) => `${base}-${suffix}`)
    for (const namespace of await DockerEngine.holding(namespaces)) {
      await Effect.runPromise(
        DockerAgents.cleanUp(namespace).pipe(
          Effect.provide(Layer.mergeAll(client, Ledger.Ledger.layer(stateDir, namespace))),
          Effect.ignore
        )
      )
    }
    fs.rmSync(stateDir, { recursive: true, force: true })
  })

  // Tests run concurrently and sshd binds its port on the host network: each deployment gets its own range.
  let nextBase = ports + 1000
  runnerContract(
    "docker",
    Layer.unwrap(Effect.sync(() => backend(`${base}-rc`, { vm_base_port: nextBase += 100 }))),
    { timeout: 90_000 }
  )

  it.live(
    "host network: agents on 127.0.0.1 at base + i * ports-per-vm; --faketime skews their clocks (the image's " +
      "libfaketime); nothing left once the scope closes",
    () =>
      Effect.gen(function*() {
        const ns = `${base}-host`
        yield* Effect.scoped(Effect.gen(function*() {
          // With the namespace's own key, as a run without --ssh-private-key (the other tests share one key).
          const { agents } = yield* deploy(ns, ["a", "b", "c"], { faketime: "-10d" }, "namespace")
          assert.deepStrictEqual(
            agents.map((a) => a.point),
            [0, 1, 2].map((i) => ({
              host: "127.0.0.1",
              port: ports + i * 10
            }))
          )
          // On the host network every container has the host's name: each tells its own sshd's pid file.
          const names = yield* Effect.forEach(agents, (a) => a.run("sh", ["-c", "ls /run/*.sshd.pid"]))
          assert.deepStrictEqual(
            names,
            ["a", "b", "c"].map((n) => `/run/${DockerAgents.containerName(ns, n)}.sshd.pid\n`),
            "each agent is its own container"
          )
          const left = yield* leftovers(ns)
          assert.sameMembers([...left.containers], ["a", "b", "c"].map((n) => DockerAgents.containerName(ns, n)))
          assert.lengthOf(left.images, 1, "one image for the three agents")
          yield* clockSkewChecks(agents[2]!, -10)
        }))
        yield* nothingLeft(ns)
      }),
    120_000
  )

  it.live(
    "a dedicated network: agents at their container's address; the network goes with the run",
    () =>
      Effect.gen(function*() {
        const ns = `${base}-net`
        yield* Effect.scoped(Effect.gen(function*() {
          const { agents } = yield* deploy(ns, ["a", "b"], { docker_host_network: false })
          for (const agent of agents) assert.notStrictEqual(agent.point!.host, "127.0.0.1")
          assert.deepStrictEqual((yield* leftovers(ns)).networks, [DockerAgents.networkName(ns)])
          // Agents reach each other on the network: from a, a TCP connection to b's address and port answers
          // with sshd's banner (bash's /dev/tcp: the image has no curl, no nc).
          const b = agents[1]!.point!
          const probe = agents[0]!.exec("timeout", [
            "10",
            "bash",
            "-c",
            "exec 3<>/dev/tcp/$1/$2 && head -c 4 <&3",
            "probe",
            b.host,
            String(b.port)
          ])
          const reached = yield* probe
          assert.deepStrictEqual([reached.exitCode, reached.stdout], [0, "SSH-"], reached.stderr)
          // b taken off the network: the same probe fails (it shows the network, not that a probe always passes).
          const container = DockerAgents.containerName(ns, "b")
          yield* Effect.sync(() =>
            child.execFileSync("docker", ["network", "disconnect", DockerAgents.networkName(ns), container], {
              env: { ...process.env, DOCKER_HOST: DockerEngine.host },
              stdio: "pipe"
            })
          )
          // a forgets b's link address (the first probe taught it): the connect then fails as soon as nothing
          // answers for b's address on the network (no route to host), not at the probe's time limit.
          yield* agents[0]!.run("ip", ["neigh", "flush", "all"])
          const cut = yield* probe
          assert.notStrictEqual(cut.exitCode, 0, cut.stdout)
          assert.include(cut.stderr, "No route to host")
        }))
        yield* nothingLeft(ns)
      }),
    120_000
  )

  it.live(
    "interrupted during container start-up: no container of the namespace is left",
    () =>
      Effect.gen(function*() {
        const ns = `${base}-int`
        const fiber = yield* Effect.forkChild(Effect.scoped(deploy(ns, ["a", "b", "c", "d"])))
        // Interrupt once the first container exists, while the others start.
        yield* Effect.gen(function*() {
          while ((yield* containers(ns)).length === 0) yield* Effect.sleep("20 millis")
        }).pipe(Effect.timeout("60 seconds"))
        yield* Fiber.interrupt(fiber)
        yield* nothingLeft(ns)
      }),
    120_000
  )

  it.live(
    "a run that never tore down (kill -9): clean up removes its containers, network and image by label",
    () =>
      Effect.gen(function*() {
        const ns = `${base}-kill`
        // A scope never closed stands for the killed orchestrator.
        const scope = yield* Scope.make()
        yield* deploy(ns, ["a", "b"], { docker_host_network: false }).pipe(Scope.provide(scope))
        assert.lengthOf(yield* containers(ns), 2)
        const removed = yield* DockerAgents.cleanUp(ns).pipe(
          Effect.provide(Layer.mergeAll(client, Ledger.Ledger.layer(stateDir, ns)))
        )
        assert.lengthOf(removed.containers, 2)
        yield* nothingLeft(ns)
        const outstanding = yield* Effect.gen(function*() {
          const ledger = yield* Ledger.Ledger
          return yield* ledger.outstanding
        }).pipe(Effect.provide(Ledger.Ledger.layer(stateDir, ns)))
        assert.deepStrictEqual(
          outstanding.filter((r) => DockerAgents.kinds.includes(r.kind)),
          [],
          "the ledger's Docker records are released"
        )
      }),
    120_000
  )

  it.live(
    "the second Ctrl+C's last resort removes the namespace's containers at once, and only them",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const ns = `${base}-force`
        const other = `${base}-forcex`
        yield* deploy(other, ["x"], { vm_base_port: ports + 700 })
        // Never closed: the orchestrator is about to exit without its teardown.
        const scope = yield* Scope.make()
        yield* deploy(ns, ["a", "b"], { vm_base_port: ports + 600 }).pipe(Scope.provide(scope))
        assert.lengthOf(yield* containers(ns), 2)
        assert.strictEqual(DockerAgents.backend.forceKill(ns), 2)
        assert.deepStrictEqual(yield* containers(ns), [])
        assert.deepStrictEqual(yield* containers(other), [DockerAgents.containerName(other, "x")])
        yield* DockerAgents.cleanUp(ns).pipe(Effect.provide(Layer.mergeAll(client, Ledger.Ledger.layer(stateDir, ns))))
        yield* nothingLeft(ns)
      })),
    120_000
  )

  it.live(
    "namespaces a and ab: cleaning up one never touches the other's containers",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const a = `${base}-a`
        const ab = `${base}-ab`
        yield* deploy(ab, ["x"])
        const scope = yield* Scope.make()
        yield* deploy(a, ["bx"], { vm_base_port: ports + 500 }).pipe(Scope.provide(scope))
        // teztcloud-<a>-bx and teztcloud-<ab>-x: a name prefix would confuse them; labels do not.
        yield* DockerAgents.cleanUp(a).pipe(Effect.provide(Layer.mergeAll(client, Ledger.Ledger.layer(stateDir, a))))
        yield* nothingLeft(a)
        assert.deepStrictEqual(yield* containers(ab), [DockerAgents.containerName(ab, "x")])
      })),
    120_000
  )

  it.live(
    "names never collide: namespace a with agent b-x and namespace a-b with agent x are two containers",
    () =>
      Effect.gen(function*() {
        const a = `${base}-a`
        const ab = `${base}-a-b`
        assert.notStrictEqual(DockerAgents.containerName(a, "b-x"), DockerAgents.containerName(ab, "x"))
        yield* Effect.scoped(Effect.gen(function*() {
          const { agents } = yield* deploy(ab, ["x"], { vm_base_port: ports + 3100 })
          yield* Effect.scoped(Effect.gen(function*() {
            yield* deploy(a, ["b-x"], { vm_base_port: ports + 3200 })
            assert.deepStrictEqual(yield* containers(a), [DockerAgents.containerName(a, "b-x")])
          }))
          // a's teardown removed its own container only.
          assert.deepStrictEqual(yield* containers(ab), [DockerAgents.containerName(ab, "x")])
          assert.strictEqual(yield* agents[0]!.run("echo", ["still here"]), "still here\n")
        }))
        yield* nothingLeft(a)
        yield* nothingLeft(ab)
      }),
    120_000
  )

  /** A container of someone else's named `name` (no label of ours), running until removed. */
  const theirContainer = (name: string) =>
    Effect.acquireRelease(
      Effect.flatMap(Effect.service(DockerClient.DockerClient), (docker) =>
        docker.run({
          name,
          image: BaseImage.reference,
          entrypoint: ["sleep"],
          cmd: ["600"],
          labels: {},
          network: "none"
        })),
      (id) => Effect.ignore(Effect.flatMap(Effect.service(DockerClient.DockerClient), (docker) => docker.remove(id)))
    ).pipe(Effect.provide(client))

  /** Whether the container `id` still runs. */
  const running = (id: string) =>
    Effect.flatMap(Effect.service(DockerClient.DockerClient), (docker) => docker.exec(id, ["true"])).pipe(
      Effect.map((r) => r.code === 0),
      Effect.orElseSucceed(() => false),
      Effect.provide(client)
    )

  it.live(
    "the registry and an agent named registry are two containers; someone else's of the registry's name stays",
    () =>
      Effect.gen(function*() {
        if (!Integration.available("docker registry test", [DockerRegistry.binary])) return
        const ns = `${base}-reg`
        const dir = path.join(stateDir, ns, "registry")
        const address = `127.0.0.1:${24400 + (process.pid % 100)}`
        const registry = DockerRegistry.deploy({ namespace: ns, dir, address }).pipe(Effect.provide(client))
        yield* Effect.scoped(Effect.gen(function*() {
          const { agents } = yield* deploy(ns, ["registry"], { vm_base_port: ports + 3300 })
          yield* Effect.ensuring(
            Effect.gen(function*() {
              assert.strictEqual(yield* registry, address)
              // The registry's deploy left the agent's container alone.
              assert.strictEqual(yield* agents[0]!.run("echo", ["alive"]), "alive\n")
            }),
            Effect.ignore(
              Effect.flatMap(
                Effect.service(DockerClient.DockerClient),
                (docker) => docker.remove(DockerRegistry.containerName(ns))
              ).pipe(Effect.provide(client))
            )
          )
        }))
        yield* Effect.scoped(Effect.gen(function*() {
          const theirs = yield* theirContainer(DockerRegistry.containerName(ns))
          const error = yield* Effect.flip(registry)
          assert.include(error.message, DockerRegistry.containerName(ns))
          assert.match(error.message, /remove \(or rename\)/)
          assert.isTrue(yield* running(theirs), "someone else's container is left alone")
        }))
      }),
    120_000
  )

  it.live(
    "someone else's network or container of the run's names: an error naming it and the fix; it stays",
    () =>
      Effect.gen(function*() {
        const ns = `${base}-theirs`
        const network = DockerAgents.networkName(ns)
        const docker = yield* Effect.service(DockerClient.DockerClient).pipe(Effect.provide(client))
        // The network: refused, still there, nothing of the namespace made.
        yield* Effect.scoped(Effect.gen(function*() {
          yield* Effect.acquireRelease(
            docker.createNetwork(network, {}),
            () => Effect.ignore(docker.removeNetwork(network, {}))
          )
          const error = yield* Effect.flip(
            Effect.scoped(deploy(ns, ["a"], { docker_host_network: false, vm_base_port: ports + 3500 }))
          )
          assert.include(error.message, `a network named ${network}, not this namespace's`)
          assert.include(error.message, `docker network rm ${network}`)
          assert.lengthOf(
            yield* docker.networks({}).pipe(
              Effect.map((all) => all.filter((n) => n.name === network))
            ),
            1
          )
          yield* nothingLeft(ns)
        }))
        // An agent's container: refused, still running.
        yield* Effect.scoped(Effect.gen(function*() {
          const name = DockerAgents.containerName(ns, "a")
          const theirs = yield* theirContainer(name)
          const error = yield* Effect.flip(Effect.scoped(deploy(ns, ["a"], { vm_base_port: ports + 3500 })))
          assert.include(error.message, `a container named ${name}, not tezt-cloud's, is in the way`)
          assert.include(error.message, `docker rm -f ${name}`)
          assert.isTrue(yield* running(theirs), "someone else's container is left alone")
        }))
        yield* nothingLeft(ns)
      }),
    120_000
  )
})
