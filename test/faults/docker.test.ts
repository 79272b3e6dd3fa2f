/**
 * The fault suite on Docker (`--localhost --agent-runtime docker`, on the test engine): real runs of the real CLI,
 * one agent container or two with a daemon each, hit by SIGINT, a double SIGINT, SIGTERM, SIGHUP or SIGKILL at a
 * random point of their deploy, body or teardown, and by the special faults that make sense here (a daemon
 * ignoring SIGTERM, a full artifacts disk, a failing finalizer). Every run must exit within 30 s of its last
 * signal, and after it (and `CLOUD clean up` when it needs one) nothing of it may be left: no container, network
 * or image tag with its label either. The harness and the replay variables: `FaultSuite.ts`.
 */
import { afterAll, beforeAll, describe, it } from "@effect/vitest"
import { SshKeys } from "@tezt-cloud/ssh"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as DockerEngine from "../fixtures/DockerEngine.ts"
import * as Integration from "../fixtures/Integration.ts"
import * as DockerFaults from "./DockerFaults.ts"
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
      env: DockerFaults.env,
      dockerSocket: DockerEngine.socket
    },
    done: FaultSuite.nothing
  })
}

describe.runIf(Integration.available("docker fault suite", DockerEngine.binaries))("fault suite on Docker", () => {
  beforeAll(async () => {
    await DockerEngine.ready()
    await Effect.runPromise(SshKeys.ensure("faults", undefined, keyHome))
  }, 600_000)

  afterAll(() => DockerFaults.end(suite, keyHome))

  it.live(
    `docker: ${suite.faults} faults (signals and special ones), nothing leaks, nothing hangs`,
    () =>
      Effect.promise(() =>
        suite.runAll(docker, suite.plans(["daemon ignores SIGTERM", "artifacts disk full", "finalizer fails"]))
      ),
    FaultSuite.timeout
  )
})
