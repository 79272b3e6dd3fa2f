/**
 * A scenario author's path through the real CLI: `init` makes a repository of one's own outside this clone, whose
 * test command passes and whose scenario runs (its `@tezt-cloud/core` and `effect` imports resolved from the tool);
 * a scenario that throws names its own file and line in the terminal, the one-line error and `events.jsonl`; an
 * unknown group lists the groups.
 */
import { afterAll, assert, describe } from "@effect/vitest"
import * as child from "node:child_process"
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

export const group = Scenario.group("MINE", "My scenarios", [throws])
`
)
/** The line of `mine` that throws. */
const throwingLine = fs.readFileSync(mine, "utf8").split("\n").findIndex((l) => l.includes("record!.field")) + 1

describe("a scenario author's module outside the clone", () => {
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

  live(
    "an unknown group is one line listing the groups (the user's too) and the closest one; --help says how to add some",
    async () => {
      const { env, namespace } = fresh()
      const cli = start(["MINR", "ok", "--localhost", "--tezt-cloud", namespace], {
        ...env,
        TEZT_CLOUD_SCENARIOS: mine
      })
      const help = start(["--help"], env)
      assert.strictEqual(await help.exit, 0)
      assert.include(help.stdout(), "Groups of your own: $TEZT_CLOUD_SCENARIOS=path/to/Mine.ts")
      assert.strictEqual(await cli.exit, 2)
      assert.strictEqual(
        cli.stderr(),
        `tezt-cloud: error: unknown group "MINR" (did you mean "MINE"?): the groups are BASIC, CLOUD, MINE, and the ` +
          `commands agents, logs, proxy, init (see tezt-cloud --help)\n`
      )
    }
  )

  live(
    "init makes a scenarios repository whose own test command passes, and whose scenario runs for real",
    async () => {
      const { env, namespace, stateDir } = fresh()
      // Outside the clone, as a user's own repository is: its imports resolve from the tool all the same.
      const repo = path.join(userDir, "my-scenarios")
      assert.isFalse(repo.startsWith(root + path.sep))
      const init = start(["init", repo], env)
      assert.strictEqual(await init.exit, 0, init.stderr())
      const scripts = (JSON.parse(fs.readFileSync(path.join(repo, "package.json"), "utf8")) as {
        readonly scripts: { readonly test: string }
      }).scripts
      // `npm test`, as its package.json says, from the repository: the example's test on TestCloud.
      const { FORCE_COLOR: _color, ...plain } = process.env
      const test = child.spawnSync("sh", ["-c", scripts.test], {
        cwd: repo,
        encoding: "utf8",
        env: { ...plain, NO_COLOR: "1" }
      })
      assert.strictEqual(test.status, 0, test.stdout + test.stderr)
      assert.match(test.stdout, /Tests\s+\S*2 passed/)
      // The README's line: the scenario on process sandboxes.
      const run = start(["MINE", "hello", "--localhost", "--tezt-cloud", namespace], {
        ...env,
        TEZT_CLOUD_SCENARIOS: path.join(repo, "scenarios/Example.ts")
      })
      assert.strictEqual(await run.exit, 0, run.stderr())
      assert.include(run.stdout(), "hello from second")
      assert.deepStrictEqual(await leftovers(stateDir, namespace), nothingLeft)
      // A directory that is not empty is refused, and left as it was.
      const again = start(["init", repo], env)
      assert.strictEqual(await again.exit, 2)
      assert.include(again.stderr(), "already exists and is not empty: give a new directory")
    }
  )
})
