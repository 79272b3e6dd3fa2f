import { assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { optionsTable } from "../scripts/options-table.ts"

const root = path.resolve(import.meta.dirname, "..")
const readme = fs.readFileSync(path.join(root, "README.md"), "utf8")

describe("README", () => {
  it("its option table is the one generated from CloudConfig.options", () => {
    const match = /<!-- options-table:start -->\n([\s\S]*?)\n<!-- options-table:end -->/.exec(readme)
    assert.isNotNull(match)
    assert.strictEqual(match![1], optionsTable(), "run: sh scripts/with-node.sh node scripts/options-table.ts")
  })

  it("its example scenario is the shipped file, verbatim", () => {
    const example = fs.readFileSync(path.join(root, "scenarios/examples/PingPong.ts"), "utf8")
    const body = example.slice(example.indexOf("import "))
    assert.include(readme, "```ts\n" + body + "```")
  })

  it("the test command in it is the one CI runs", () => {
    assert.include(readme, "npm test ")
    assert.include(fs.readFileSync(path.join(root, ".ci/run"), "utf8"), "npm test --")
  })
})
