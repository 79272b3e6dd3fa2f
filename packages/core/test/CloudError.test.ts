/**
 * A `CloudError` keeps the error under it (`cause`): out of its one-line message, and shown by `details` (what
 * `--log-level debug` logs), `Cause.pretty`, and the `run-end` and `teardown-failed` events of `events.jsonl`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as CloudConfig from "../src/CloudConfig.ts"
import * as CloudError from "../src/CloudError.ts"
import * as CopyPolicy from "../src/CopyPolicy.ts"
import * as Deployment from "../src/Deployment.ts"
import * as Orchestrator from "../src/Orchestrator.ts"
import { RunEvents, type Stamped } from "../src/RunEvents.ts"
import * as Scenario from "../src/Scenario.ts"
import * as Teardown from "../src/Teardown.ts"

const missing = path.join(os.tmpdir(), `tezt-cloud-missing-${process.pid}`, "file")

/** A failure of a real read of a missing file, as the code around `fs` makes it. */
const readMissing = Effect.try({
  try: () => fs.readFileSync(missing),
  catch: (e) => CloudError.state(missing, `cannot read it: ${CloudError.messageOf(e)}`, { cause: e })
})

describe("CloudError: the cause", () => {
  it.effect("copying a missing file: the stat error is the cause (ENOENT), the one line is unchanged", () =>
    Effect.gen(function*() {
      const copier = CopyPolicy.make({
        agent: "a",
        md5: () => Effect.succeed(undefined),
        put: () => Effect.void
      }, { binariesPath: "/bin", checkFileConsistency: true })
      const error = yield* Effect.flip(copier.copy(missing))
      assert.strictEqual(error.message, `agent a: copy of ${missing} failed: no such local file or directory`)
      const cause = error.cause as NodeJS.ErrnoException
      assert.strictEqual(cause.code, "ENOENT")
      assert.strictEqual(cause.syscall, "stat")
      const details = CloudError.details(error)!
      assert.match(details, /^caused by Error: ENOENT: no such file or directory, stat/)
      assert.include(details, "statSync", "the stack says where it failed")
      assert.notInclude(details, "node_modules/effect", "Effect's own frames are left out")
      assert.include(Cause.pretty(Cause.fail(error)), "ENOENT")
    }))

  it.effect("a config file that is not JSON: one line saying where, and no cause (the parser's quotes the file)", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(CloudConfig.decodeFile("run.json", "{\n\"a\": 1 x}"))
      assert.isUndefined(error.cause)
      assert.isUndefined(CloudError.details(error))
      assert.strictEqual(error.message, "--config-file: run.json is not valid JSON at line 2, column 8")
    }))

  it("no cause, no details; a chain is followed to its end, each error once, with the code a stack lacks", () => {
    assert.isUndefined(CloudError.details(CloudError.state("p", "m")))
    assert.isUndefined(CloudError.details(new Error("plain")))
    const root = Object.assign(new Error("the root"), { code: "EROOT" })
    const error = CloudError.deploy("a", "m", { cause: new Error("in between", { cause: root }) })
    const details = CloudError.details(error)!
    assert.isBelow(details.indexOf("in between"), details.indexOf("the root"))
    assert.include(details, "(code EROOT)")
    assert.strictEqual(details.match(/^caused by /gm)?.length, 2)
    const a = new Error("a")
    const b = new Error("b", { cause: a })
    a.cause = b
    assert.strictEqual(CloudError.details(CloudError.agents("m", { cause: a }))!.match(/^caused by /gm)?.length, 2)
    assert.strictEqual(CloudError.details(CloudError.agents("m", { cause: "a string" })), "caused by a string")
  })

  it.effect("a failed run's run-end event carries the cause; its message is the one line", () =>
    Effect.gen(function*() {
      const events: Array<Stamped> = []
      const config = yield* CloudConfig.resolve({ tezt_cloud: "t", localhost: true }, {}, {})
      const scenario = Scenario.make({ title: "t", tags: [], vms: [], run: readMissing })
      yield* Orchestrator.run(scenario, config, []).pipe(
        Effect.provide(RunEvents.layer([(e) => void events.push(e)])),
        Effect.provideService(Orchestrator.WaitForEnter, Effect.void),
        Effect.provide(Deployment.layerNone),
        Effect.flip
      )
      const end = events.find((e) => e.type === "run-end")
      assert.strictEqual(
        end?.type === "run-end" && end.message,
        `Scenario terminated unexpectedly: ${missing}: cannot read it: ENOENT: no such file or directory, open '${missing}'` +
          ` (at ${import.meta.filename}:24:28)`
      )
      assert.match(end?.type === "run-end" ? end.cause ?? "" : "", /^caused by Error: ENOENT/)
    }))

  it.effect("a failed teardown step's event carries the cause", () =>
    Effect.gen(function*() {
      const events: Array<Stamped> = []
      yield* Teardown.step("agent x", readMissing).pipe(Effect.provide(RunEvents.layer([(e) => void events.push(e)])))
      const failed = events.find((e) => e.type === "teardown-failed")
      assert.strictEqual(
        failed?.type === "teardown-failed" && failed.message,
        `${missing}: cannot read it: ENOENT: no such file or directory, open '${missing}'`
      )
      assert.match(failed?.type === "teardown-failed" ? failed.cause ?? "" : "", /^caused by Error: ENOENT/)
    }))
})
