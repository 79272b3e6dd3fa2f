/**
 * A scenario author's path through the real CLI: a scenario module kept in a directory of its own, outside this
 * clone, imports `@tezt-cloud/core` and `effect` from the tool and runs; one that throws names its own file and
 * line in the terminal, in the one-line error and in `events.jsonl`.
 */
import { afterAll, assert, describe } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fresh, leftovers, live, nothingLeft, root, start } from "./fixtures/Cli.ts"

/** A directory outside the clone, as a user's own repository is, removed after the file's tests. */
const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-author-"))
afterAll(() => fs.rmSync(userDir, { recursive: true, force: true }))
const mine = path.join(userDir, "Mine.ts")
fs.writeFileSync(
  mine,
  `import { Cloud, Scenario } from "@tezt-cloud/core"
import { Effect } from "effect"
import * as Schedule from "effect/Schedule"

const ok = Scenario.make({
  title: "echo from a module of my own",
  tags: ["ok"],
  vms: [{ name: "a" }],
  run: Effect.gen(function*() {
    const agent = yield* (yield* Cloud.Cloud).agent("a")
    const out = yield* agent.run("echo", ["hi"]).pipe(Effect.retry(Schedule.recurs(1)))
    yield* Effect.logInfo(\`mine got \${out.trim()}\`)
  })
})

const throws = Scenario.make({
  title: "a scenario that throws",
  tags: ["throws"],
  vms: [{ name: "a" }],
  run: Effect.gen(function*() {
    const cloud = yield* Cloud.Cloud
    const record: { readonly field: string } | undefined = cloud.agents.length > 5 ? { field: "" } : undefined
    yield* Effect.logInfo(record!.field)
  })
})

export const group = Scenario.group("MINE", "My scenarios", [ok, throws])
`
)
/** The line of `mine` that throws. */
const throwingLine = fs.readFileSync(mine, "utf8").split("\n").findIndex((l) => l.includes("record!.field")) + 1

describe("a scenario author's module outside the clone", () => {
  live("runs through the CLI, its @tezt-cloud/core and effect imports resolved from the tool", async () => {
    assert.isFalse(mine.startsWith(root + path.sep))
    const { env, namespace, stateDir } = fresh()
    const cli = start(["MINE", "ok", "--localhost", "--tezt-cloud", namespace], { ...env, TEZT_CLOUD_SCENARIOS: mine })
    assert.strictEqual(await cli.exit, 0, cli.stderr())
    assert.include(cli.stdout(), "mine got hi")
    assert.deepStrictEqual(await leftovers(stateDir, namespace), nothingLeft)
  })

  live("a scenario that throws names its file and line: terminal, one-line error, events.jsonl", async () => {
    const { env, namespace, stateDir } = fresh()
    const artifacts = path.join(stateDir, "artifacts")
    const cli = start(
      ["MINE", "throws", "--localhost", "--tezt-cloud", namespace, "--artifacts-dir", artifacts],
      { ...env, TEZT_CLOUD_SCENARIOS: mine }
    )
    assert.strictEqual(await cli.exit, 1, cli.stderr())
    const at = `${mine}:${throwingLine}:`
    // The one line the CLI ends with.
    assert.match(
      cli.stderr(),
      new RegExp(
        `tezt-cloud: error: a scenario that throws: Cannot read properties of undefined \\(reading 'field'\\) \\(at ${at}\\d+\\)`
      )
    )
    // The run's log: the line, and Effect's trace under it.
    assert.include(cli.stdout(), `Scenario terminated unexpectedly: Cannot read properties of undefined`)
    assert.include(cli.stdout(), `    at file://${at}`)
    const events = fs.readFileSync(path.join(artifacts, "events.jsonl"), "utf8").trim().split("\n")
      .map((l) => JSON.parse(l) as { readonly type: string; readonly location?: string; readonly trace?: string })
    const end = events.find((e) => e.type === "run-end")
    assert.match(end?.location ?? "", new RegExp(`^${at}\\d+$`))
    assert.include(end?.trace ?? "", `TypeError: Cannot read properties of undefined (reading 'field')`)
    assert.deepStrictEqual(await leftovers(stateDir, namespace), nothingLeft)
  })

  live("an unknown group is one line listing the groups (the user's too) and the closest one", async () => {
    const { env, namespace } = fresh()
    const cli = start(["MINR", "ok", "--localhost", "--tezt-cloud", namespace], { ...env, TEZT_CLOUD_SCENARIOS: mine })
    assert.strictEqual(await cli.exit, 2)
    assert.strictEqual(
      cli.stderr(),
      `tezt-cloud: error: unknown group "MINR" (did you mean "MINE"?): the groups are BASIC, CLOUD, MINE, and the ` +
        `commands agents, proxy (see tezt-cloud --help)\n`
    )
  })
})
