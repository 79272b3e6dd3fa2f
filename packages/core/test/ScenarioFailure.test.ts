import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as url from "node:url"
import { Cloud, CloudError, Scenario, TestCloud } from "../src/index.ts"

const thisFile = url.fileURLToPath(import.meta.url)

/** The line number, in this file, of the first line containing `text`. */
const lineOf = (text: string) => fs.readFileSync(thisFile, "utf8").split("\n").findIndex((l) => l.includes(text)) + 1

const throwing = Scenario.make({
  title: "throws",
  tags: [],
  vms: [{ name: "a" }],
  run: Effect.gen(function*() {
    const cloud = yield* Cloud.Cloud
    const record: { readonly field: string } | undefined = cloud.agents.length > 5 ? { field: "" } : undefined
    yield* Effect.logInfo(record!.field)
  })
})

const failingCommand = Scenario.make({
  title: "fails",
  tags: [],
  vms: [{ name: "a" }],
  run: Effect.gen(function*() {
    const agent = yield* (yield* Cloud.Cloud).agent("a")
    yield* agent.run("false", [])
  })
})

describe("a failed scenario names its own file and line", () => {
  it.effect("a TypeError thrown by the scenario: the line that threw", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(TestCloud.run(throwing))
      assert.instanceOf(error, CloudError.CloudError)
      assert.strictEqual(error.reason._tag, "ScenarioFailed")
      assert.match(
        error.message,
        new RegExp(
          `^throws: Cannot read properties of undefined \\(reading 'field'\\) \\(at ${thisFile}:${
            lineOf("record!.field")
          }:\\d+\\)$`
        )
      )
    }))

  it.effect("a command that failed on an agent: the scenario's line that ran it, not the tool's", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(TestCloud.run(failingCommand))
      assert.match(
        error.message,
        new RegExp(`exited with code 127: .* \\(at ${thisFile}:${lineOf(`agent.run("false"`)}:\\d+\\)$`)
      )
    }))
})
