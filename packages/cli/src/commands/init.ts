/**
 * `tezt-cloud init DIR`: a scenarios repository of one's own, ready to test and run. DIR gets a `package.json`
 * whose `test` runs the example scenario's test on `TestCloud`, a `tsconfig.json` whose `check` type-checks it, a
 * vitest config, the example scenario and its test, and a README saying how to run it for real. Nothing is
 * installed there: `@tezt-cloud/*`, `effect`, `@effect/*` and the test runner are this installation's, found by the
 * vitest config's resolver and the tsconfig's paths, as the CLI finds them for scenario modules (`ScenarioModules`).
 */
import { CloudError } from "@tezt-cloud/core"
import { Console, Effect } from "effect"
import { Argument, Command } from "effect/cli"
import * as fs from "node:fs"
import * as path from "node:path"
import { toolRoot } from "../ScenarioModules.ts"

const json = (value: unknown) => JSON.stringify(value, null, 2) + "\n"

/** The files of a new scenarios repository, by path relative to it, for this installation at `tool`. */
export const files = (tool: string, name: string): Record<string, string> => {
  const withNode = `sh ${JSON.stringify(path.join(tool, "scripts/with-node.sh"))}`
  const modules = path.join(tool, "node_modules")
  return {
    "package.json": json({
      name,
      private: true,
      type: "module",
      scripts: {
        test: `${withNode} vitest run`,
        check: `${withNode} tsc -p tsconfig.json --noEmit`
      }
    }),
    "tsconfig.json": json({
      compilerOptions: {
        target: "ES2024",
        lib: ["ES2024"],
        module: "NodeNext",
        moduleResolution: "NodeNext",
        // As strict as the installation's own sources, which are checked with these.
        strict: true,
        exactOptionalPropertyTypes: true,
        allowJs: true,
        noEmit: true,
        allowImportingTsExtensions: true,
        skipLibCheck: true,
        types: [path.join(modules, "@types/node")],
        // This installation's packages, as the CLI and the vitest config resolve them.
        paths: {
          "@tezt-cloud/*": [path.join(tool, "packages/*/src/index.ts")],
          "effect": [path.join(modules, "effect/dist/index.d.ts")],
          "effect/*": [path.join(modules, "effect/dist/*/index.d.ts"), path.join(modules, "effect/dist/*.d.ts")],
          "@effect/vitest": [path.join(modules, "@effect/vitest/dist/index.d.ts")],
          "vitest": [path.join(modules, "vitest/dist/index.d.ts")]
        }
      },
      include: ["scenarios", "test"]
    }),
    "vitest.config.mjs":
      `// The tests of these scenarios, run by this tezt-cloud installation's vitest (\`npm test\`). Imports of
// @tezt-cloud/*, effect and @effect/* resolve from the installation, as the tezt-cloud CLI resolves them.
const anchor = ${JSON.stringify(path.join(tool, "packages/cli/src/ScenarioModules.ts"))}
const shared = /^(?:effect|@effect\\/[^/]+|@tezt-cloud\\/[^/]+)(?:\\/.*)?$/

export default {
  plugins: [{
    name: "tezt-cloud-packages",
    enforce: "pre",
    resolveId(source, importer, options) {
      return shared.test(source) ? this.resolve(source, anchor, { ...options, skipSelf: true }) : null
    }
  }],
  test: { include: ["test/**/*.test.ts"] }
}
`,
    ".gitignore": "node_modules\n",
    "scenarios/Example.ts": `/**
 * An example scenario: each of two agents says hello; the run counts the hellos. Run it with
 *   TEZT_CLOUD_SCENARIOS=scenarios/Example.ts ${path.join(tool, "tezt-cloud")} MINE hello --localhost --tezt-cloud demo
 */
import { Cloud, Scenario } from "@tezt-cloud/core"
import { Effect, Schedule } from "effect"

export const hello = Scenario.make({
  title: "Each agent says hello",
  tags: ["hello"],
  vms: [{ name: "first" }, { name: "second" }],
  run: Effect.gen(function*() {
    const cloud = yield* Cloud.Cloud
    for (const agent of cloud.agents) {
      // A command may fail for a while (a daemon starting): retry it.
      const said = yield* agent.run("echo", [\`hello from \${agent.name}\`]).pipe(
        Effect.retry({ schedule: Schedule.spaced("1 second"), times: 10 })
      )
      yield* Effect.logInfo(said.trim())
    }
    // A push sets the value, counters too: push the running total.
    yield* cloud.pushMetric({ name: "hellos_total", value: cloud.agents.length, type: "counter" })
  })
})

export const group = Scenario.group("MINE", "My scenarios", [hello])
`,
    "test/Example.test.ts": `import { assert, describe, it } from "@effect/vitest"
import { Cloud, TestCloud } from "@tezt-cloud/core"
import { Effect } from "effect"
import { hello } from "../scenarios/Example.ts"

describe("hello", () => {
  it.effect("each agent says hello; the hellos are counted", () =>
    Effect.gen(function*() {
      const result = yield* TestCloud.run(hello)
      assert.includeMembers(result.logs, ["hello from first", "hello from second"])
      assert.deepStrictEqual(result.metrics, [{ name: "hellos_total", value: 2, type: "counter" }])
    }))

  it.effect("an agent whose echo fails at first is retried, in virtual time", () =>
    Effect.gen(function*() {
      yield* hello.run
      const recording = yield* TestCloud.Recording
      // Three failures and the answer on first, one answer on second; a second between tries.
      assert.strictEqual(recording.calls.length, 5)
      assert.strictEqual(yield* recording.elapsedMillis, 3_000)
      assert.strictEqual((yield* Cloud.Cloud).agents.length, 2)
    }).pipe(Effect.provide(TestCloud.layer({
      scenario: hello,
      responses: [{ agent: "first", command: "echo", response: flaky(3, "hello from first\\n") }]
    }))))
})

/** Fails (exit 1) the first \`failures\` times, then answers \`stdout\`. */
function flaky(failures: number, stdout: string) {
  let calls = 0
  return () => (++calls <= failures ? { exitCode: 1, stderr: "not yet" } : stdout)
}
`,
    "README.md": `# ${name}

Scenarios for [tezt-cloud](${tool}), which they run on.

\`\`\`sh
npm test            # the scenarios' tests, on TestCloud (no agent is deployed)
npm run check       # type-check
TEZT_CLOUD_SCENARIOS=scenarios/Example.ts ${path.join(tool, "tezt-cloud")} MINE hello --localhost --tezt-cloud demo
\`\`\`

The last line runs the scenario for real, on local process sandboxes (or Docker containers when an engine answers;
\`--agent-runtime process|docker\` chooses). \`@tezt-cloud/*\`, \`effect\` and \`@effect/*\` are tezt-cloud's own:
nothing to install here.
`
  }
}

/** The repository's name: its directory's, as npm accepts it. */
const packageName = (dir: string) =>
  path.basename(dir).toLowerCase().replaceAll(/[^a-z0-9._-]+/g, "-").replace(/^[._-]+/, "") || "scenarios"

/** Writes a new scenarios repository into `dir`, which must not exist or be empty. */
export const init = Effect.fn("Init.init")(function*(dir: string, tool: string = toolRoot) {
  const target = path.resolve(dir)
  const taken = yield* Effect.try({
    try: () => fs.existsSync(target) && (!fs.statSync(target).isDirectory() || fs.readdirSync(target).length > 0),
    catch: (e) => CloudError.config("DIR", `${target}: ${CloudError.messageOf(e)}`, { cause: e })
  })
  if (taken) return yield* CloudError.config("DIR", `${target} already exists and is not empty: give a new directory`)
  const written = Object.entries(files(tool, packageName(target)))
  yield* Effect.try({
    try: () => {
      for (const [file, text] of written) {
        fs.mkdirSync(path.dirname(path.join(target, file)), { recursive: true })
        fs.writeFileSync(path.join(target, file), text)
      }
    },
    catch: (e) => CloudError.state(target, `cannot write the repository: ${CloudError.messageOf(e)}`, { cause: e })
  })
  yield* Console.log(`tezt-cloud: a scenarios repository in ${target}: cd there, then 'npm test' (see its README.md)`)
})

export const command = Command.make("init", {
  dir: Argument.String("dir").pipe(Argument.withDescription("The new repository's directory (new or empty)"))
}, ({ dir }) => init(dir).pipe(Effect.tapError(CloudError.logDetails))).pipe(
  Command.withDescription(
    "Make a repository of your own scenarios: an example scenario, its test on TestCloud (npm test), a tsconfig"
  )
)
