/**
 * The bundle the proxy runs: the CLI's build in it is fresh there, so that the orchestrator on the proxy starts from
 * the build and not from the sources. Checked with the CLI's own freshness rule on a directory holding the bundle's
 * files that rule reads, dated before the build (the tarball carries the times of a fresh build's files, and this
 * tree's build need not be fresh while one edits it): what the rule then finds missing is missing from the bundle.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as CliBuild from "../../cli/src/CliBuild.mjs"
import * as Bundle from "../src/Bundle.ts"

describe("Bundle", () => {
  it.effect("holds what the build's freshness is checked against: the build is fresh on the proxy", () =>
    Effect.gen(function*() {
      const root = Bundle.repoRoot
      const manifestFile = path.join(CliBuild.buildDir(root), "manifest.json")
      assert.isTrue(fs.existsSync(manifestFile), "the repository has a CLI build (scripts/bootstrap.sh makes it)")
      const manifest = JSON.parse(fs.readFileSync(manifestFile, "utf8")) as {
        readonly inputs: ReadonlyArray<string>
        readonly built: number
      }
      const before = new Date(manifest.built - 1000)
      const bundle = yield* Bundle.make(root)
      const read = new Set([...manifest.inputs, "package-lock.json", `${Bundle.cliBuildDir}/manifest.json`])
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-bundle-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      for (const file of bundle.files.filter((f) => read.has(f))) {
        const to = path.join(dir, file)
        fs.mkdirSync(path.dirname(to), { recursive: true })
        fs.copyFileSync(path.join(root, file), to)
        fs.utimesSync(to, before, before)
      }
      assert.strictEqual(CliBuild.fresh(dir)?.built, manifest.built)
    }).pipe(Effect.scoped))

  it.effect("packs scenario files in memory: the tarball holds them, the temporary directory gains nothing", () =>
    Effect.gen(function*() {
      const root = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-scenarios-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(root, { recursive: true, force: true })))
      fs.mkdirSync(path.join(root, "scenarios"))
      fs.writeFileSync(path.join(root, "scenarios", "a.ts"), "export const a = 1\n")
      fs.writeFileSync(path.join(root, "scenarios", "b.ts"), "export const b = 2\n")
      const before = fs.readdirSync(os.tmpdir())
      const tarball = yield* Bundle.pack(root, ["scenarios", "scenarios/a.ts", "scenarios/b.ts"])
      assert.deepStrictEqual(fs.readdirSync(os.tmpdir()), before)
      const listing = child.execFileSync("tar", ["-tzf", "-"], { input: tarball }).toString().trim().split("\n")
      assert.deepStrictEqual(listing, ["scenarios/", "scenarios/a.ts", "scenarios/b.ts"])
      const content = child.execFileSync("tar", ["-xzOf", "-", "scenarios/b.ts"], { input: tarball }).toString()
      assert.strictEqual(content, "export const b = 2\n")
    }).pipe(Effect.scoped))
})
