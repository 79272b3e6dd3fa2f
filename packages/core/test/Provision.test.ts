/**
 * The provisioning loop's own work around a backend's provisioner, on an in-memory provisioner: here, `--faketime`
 * skews every agent before it counts as ready, and an agent without libfaketime fails the deployment by name, its
 * resource removed.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import {
  AgentConfig,
  Deployment,
  Faketime,
  Ledger,
  Orchestrator,
  Provision,
  RunEvents,
  TestCloud
} from "../src/index.ts"

/** A provisioner whose agents answer `probe` with `library` (exit 1 when `undefined`) and echo the rest. */
const inMemory = (library: string | undefined, removed: Array<string>) =>
  Provision.provisioner({
    backend: "in-memory",
    prepare: () => Effect.void,
    record: (_, slot) => ({ id: `thing:${slot.name}`, kind: "thing", data: {} }),
    create: (_, slot) => Effect.succeed(slot.name),
    ready: (_, slot) =>
      Effect.succeed({
        point: undefined,
        connect: slot.name,
        descriptor: { backend: "in-memory" },
        runner: {
          exec: (command, args, options) =>
            Effect.succeed(
              args[1] === Faketime.probe
                ? { exitCode: library === undefined ? 1 : 0, stdout: library ?? "", stderr: "", pid: 1 }
                : { exitCode: 0, stdout: `${options?.env?.FAKETIME ?? "real"}\n`, stderr: "", pid: 2 }
            ),
          spawn: () => Effect.die("no daemons here"),
          copy: (source) => Effect.succeed(source)
        }
      }),
    destroy: (_, slot) => Effect.sync(() => void removed.push(slot.name))
  })

const deploy = (library: string | undefined, removed: Array<string>) =>
  Effect.gen(function*() {
    const config = yield* TestCloud.config({ faketime: "-10d" })
    const context = yield* Layer.build(
      Provision.layer({ config, artifactsDir: "/artifacts" }, () => Effect.succeed(inMemory(library, removed))).pipe(
        Layer.provide([Ledger.Ledger.layerMemory("test"), RunEvents.RunEvents.layerNoop])
      )
    )
    const configs = AgentConfig.complete([{ name: "a" }, { name: "b" }], Orchestrator.agentDefaults(config))
    return yield* Context.get(context, Deployment.Deployment).deploy(configs)
  })

describe("Provision", () => {
  it.effect("--faketime: every agent is skewed before it is ready", () =>
    Effect.gen(function*() {
      const agents = yield* deploy("/usr/lib/faketime/libfaketime.so.1\n", [])
      for (const agent of agents) assert.strictEqual(yield* agent.run("date", []), "-10d\n")
    }))

  it.effect("--faketime on an agent without libfaketime: its deployment fails naming the fix; it is removed", () =>
    Effect.gen(function*() {
      const removed: Array<string> = []
      const error = yield* Effect.flip(Effect.scoped(deploy(undefined, removed)))
      assert.strictEqual(error.reason._tag, "DeployFailed")
      assert.match(error.message, /^agent [ab]: deployment failed: in-memory: --faketime: libfaketime is not installed/)
      assert.include(error.message, "install the Debian package libfaketime")
      const failed = /^agent (\w+)/.exec(error.message)![1]!
      assert.include(removed, failed, "the agent that failed is removed")
    }))
})
