/**
 * The fault suite on process sandboxes (`--localhost --agent-runtime process`): real runs of the real CLI, one agent
 * or two with a daemon each, hit by SIGINT, a double SIGINT, SIGTERM, SIGHUP or SIGKILL at a random point of their
 * deploy, body or teardown, and by the special faults that make sense here (a daemon ignoring SIGTERM, a full
 * artifacts disk, a failing finalizer). Every run must exit within 30 s of its last signal, and after it (and
 * `CLOUD clean up` when it needs one) nothing of it may be left. The harness and the replay variables:
 * `FaultSuite.ts`.
 */
import { afterAll, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { noDocker } from "../fixtures/Cli.ts"
import * as FaultSuite from "./FaultSuite.ts"

const suite = FaultSuite.make("process")

const processes: FaultSuite.Backend = {
  target: async () => ({
    target: {
      args: ["--localhost", "--agent-runtime", "process"],
      env: { ...FaultSuite.common, DOCKER_HOST: noDocker }
    },
    done: FaultSuite.nothing
  })
}

describe("fault suite", () => {
  afterAll(suite.report)

  it.live(
    `process sandboxes: ${suite.faults} faults (signals and special ones), nothing leaks, nothing hangs`,
    () =>
      Effect.promise(() =>
        suite.runAll(processes, suite.plans(["daemon ignores SIGTERM", "artifacts disk full", "finalizer fails"]))
      ),
    FaultSuite.timeout
  )
})
