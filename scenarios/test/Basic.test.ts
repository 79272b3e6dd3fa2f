import { assert, describe, it } from "@effect/vitest"
import { CloudError, TestCloud } from "@tezt-cloud/core"
import { Effect } from "effect"
import { Basic } from "../src/index.ts"

describe("BASIC on TestCloud", () => {
  it.effect("simple health: each of the two agents echoes Hello world", () =>
    Effect.gen(function*() {
      const result = yield* TestCloud.run(Basic.simpleHealth)
      assert.deepStrictEqual(result.calls, [
        { agent: "agent-000", kind: "exec", command: "echo Hello world" },
        { agent: "agent-001", kind: "exec", command: "echo Hello world" }
      ])
      assert.includeMembers(result.logs, [
        "Hello world from agent 0",
        "Hello world from agent 1",
        "Scenario ended successfully."
      ])
      assert.deepStrictEqual(result.teardown, ["agent-001", "agent-000"])
    }))

  it.effect("simple health copes with a single agent (--vms-limit 1)", () =>
    Effect.gen(function*() {
      const result = yield* TestCloud.run(Basic.simpleHealth, { config: { vms_limit: 1 } })
      assert.deepStrictEqual(result.calls.map((c) => c.agent), ["agent-000", "agent-000"])
      assert.includeMembers(result.logs, ["Hello world from agent 0", "Hello world from agent 1"])
    }))

  it.effect("simple health fails when an agent's echo fails", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        TestCloud.run(Basic.simpleHealth, {
          responses: { "agent-001: echo Hello world": { exitCode: 1, stderr: "no route to host" } }
        })
      )
      assert.instanceOf(error, CloudError.CloudError)
      assert.strictEqual(error.reason._tag, "ScenarioFailed")
      assert.include(error.message, "agent-001: echo Hello world exited with code 1: no route to host")
    }))

  it.effect("run detach: the daemon is started and stopped by the teardown", () =>
    Effect.gen(function*() {
      const result = yield* TestCloud.run(Basic.runDetach)
      assert.deepStrictEqual(result.calls, [
        { agent: "agent-000", kind: "spawn", command: "sleep 10" },
        { agent: "agent-000", kind: "stop", command: "sleep" }
      ])
    }))

  it.effect("monitoring health needs the website, and says so in one line", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(TestCloud.run(Basic.monitoringHealth))
      assert.strictEqual(error.reason._tag, "ScenarioFailed")
      assert.include(error.message, "monitoring health: the website is off")
      assert.include(error.message, "run with --website")
      assert.notInclude(error.message, "\n")
    }))
})
