/**
 * The fault suite on Docker (`--localhost --agent-runtime docker`, on the test engine): real runs of the real CLI,
 * one agent container or two with a daemon each, hit by SIGINT, a double SIGINT, SIGTERM, SIGHUP or SIGKILL at a
 * random point of their deploy, body or teardown, and by the special faults that make sense here (a daemon
 * ignoring SIGTERM, a full artifacts disk, a failing finalizer). Every run must exit within 30 s of its last
 * signal, and after it (and `CLOUD clean up` when it needs one) nothing of it may be left: no container, network
 * or image tag with its label either. The harness and the replay variables: `FaultSuite.ts`.
 */
import { afterAll, beforeAll, describe, it } from "@effect/vitest"
import { DockerAgents, DockerClient } from "@tezt-cloud/docker"
import { SshKeys } from "@tezt-cloud/ssh"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { root } from "../fixtures/Cli.ts"
import * as DockerEngine from "../fixtures/DockerEngine.ts"
import * as Integration from "../fixtures/Integration.ts"
import * as FaultSuite from "./FaultSuite.ts"

const suite = FaultSuite.make("docker")

/** The file's ssh key (the containers' authorized key; given with `--ssh-private-key`). */
const keyHome = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-fault-home-"))
const keyPath = SshKeys.defaultPath("faults", keyHome)

/** A run on the test engine's containers. */
const docker: FaultSuite.Backend = {
  target: async () => ({
    target: {
      args: ["--localhost", "--agent-runtime", "docker", "--dockerfile-alias", "debian", "--ssh-private-key", keyPath],
      env: {
        ...FaultSuite.common,
        DOCKER_HOST: DockerEngine.host,
        TEZT_CLOUD_DOCKERFILES: path.join(root, "dockerfiles")
      },
      dockerSocket: DockerEngine.socket
    },
    done: FaultSuite.nothing
  })
}

/** Removes what leaked runs left on the engine, once reported: later suites must not meet it. */
const removeDockerLeftovers = (namespaces: ReadonlyArray<string>) =>
  Effect.runPromise(
    Effect.forEach(namespaces, (namespace) =>
      Effect.gen(function*() {
        const engine = yield* DockerClient.DockerClient
        const left = yield* DockerAgents.leftovers(namespace)
        yield* Effect.forEach(left.containers, (c) => engine.remove(c))
        yield* Effect.forEach(
          left.networks,
          (n) => engine.removeNetwork(n, { [DockerClient.namespaceLabel]: namespace })
        )
        yield* Effect.forEach(left.images, (i) => engine.removeImage(i))
      }).pipe(Effect.ignore)).pipe(Effect.provide(DockerClient.layer({ socketPath: DockerEngine.socket })))
  )

describe.runIf(Integration.available("docker fault suite", DockerEngine.binaries))("fault suite on Docker", () => {
  beforeAll(async () => {
    await DockerEngine.ready()
    await Effect.runPromise(SshKeys.ensure("faults", undefined, keyHome))
  }, 600_000)

  afterAll(async () => {
    suite.report()
    await removeDockerLeftovers(suite.outcomes.filter((o) => o.leaked).map((o) => o.namespace))
    fs.rmSync(keyHome, { recursive: true, force: true })
  })

  it.live(
    `docker: ${suite.faults} faults (signals and special ones), nothing leaks, nothing hangs`,
    () =>
      Effect.promise(() =>
        suite.runAll(docker, suite.plans(["daemon ignores SIGTERM", "artifacts disk full", "finalizer fails"]))
      ),
    FaultSuite.timeout
  )
})
