/**
 * The workspace a run gets on the proxy, made by the shell line `Shipping.workspace` sends (run here with `sh`):
 * from a shipped bundle, a hard-linked copy; from the bundle of the proxy's image (read-only, where a hard link
 * copies), links to its entries but the top-level directories that receive the scenario's files, which are copies.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as ProxyImage from "../src/ProxyImage.ts"
import * as Shipping from "../src/Shipping.ts"

/** A bundle of three entries (two directories, a dotted one, a file) under a fresh directory. */
const bundle = (image: boolean) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-shipping-"))
  const dir = path.join(root, "bundle")
  for (const d of ["packages/core", "scenarios", ".tools/bin"]) fs.mkdirSync(path.join(dir, d), { recursive: true })
  fs.writeFileSync(path.join(dir, "packages/core/index.ts"), "core")
  fs.writeFileSync(path.join(dir, "scenarios/basic.ts"), "basic")
  fs.writeFileSync(path.join(dir, ".tools/bin/node"), "node")
  fs.writeFileSync(path.join(dir, "package.json"), "{}")
  fs.writeFileSync(path.join(dir, ".complete"), "")
  if (image) fs.writeFileSync(path.join(dir, ProxyImage.imageMarker), "")
  return { root, dir, workspace: path.join(root, "workspace") }
}

const make = (b: ReturnType<typeof bundle>, scenarioFiles: ReadonlyArray<string>) => {
  const r = child.spawnSync("sh", ["-c", Shipping.workspace(b.dir, b.workspace, scenarioFiles)], { encoding: "utf8" })
  assert.strictEqual(r.status, 0, r.stderr)
}

const kind = (file: string) => {
  const stat = fs.lstatSync(file)
  return stat.isSymbolicLink() ? "link" : stat.isDirectory() ? "dir" : "file"
}

describe("Shipping.workspace", () => {
  it.effect("from the image's bundle: links to its entries, copies of the directories that get scenario files", () =>
    Effect.sync(() => {
      const b = bundle(true)
      make(b, ["scenarios/mine.ts", "test/faults/FaultScenarios.ts"])
      assert.deepStrictEqual(
        Object.fromEntries(fs.readdirSync(b.workspace).toSorted().map((e) => [e, kind(path.join(b.workspace, e))])),
        {
          ".complete": "link",
          [ProxyImage.imageMarker]: "link",
          ".tools": "link",
          "package.json": "link",
          packages: "link",
          scenarios: "dir"
        }
      )
      assert.strictEqual(fs.readlinkSync(path.join(b.workspace, "packages")), path.join(b.dir, "packages"))
      assert.strictEqual(fs.readFileSync(path.join(b.workspace, "packages/core/index.ts"), "utf8"), "core")
      // A scenario file written into the workspace does not reach the bundle.
      fs.writeFileSync(path.join(b.workspace, "scenarios/mine.ts"), "mine")
      assert.isFalse(fs.existsSync(path.join(b.dir, "scenarios/mine.ts")))
      fs.rmSync(b.root, { recursive: true, force: true })
    }))

  it.effect("from a shipped bundle: a hard-linked copy", () =>
    Effect.sync(() => {
      const b = bundle(false)
      make(b, [])
      assert.strictEqual(kind(path.join(b.workspace, "packages")), "dir")
      const inode = (f: string) => fs.statSync(f).ino
      assert.strictEqual(
        inode(path.join(b.workspace, "packages/core/index.ts")),
        inode(path.join(b.dir, "packages/core/index.ts"))
      )
      fs.rmSync(b.root, { recursive: true, force: true })
    }))
})

describe("Shipping.writeFiles", () => {
  it.effect("one command writes each file from the input, in order, and leaves the rest to the next command", () =>
    Effect.sync(() => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-shipping-"))
      const files = [
        { target: `"${dir}/key"`, content: "-----BEGIN KEY-----\nline é\n" },
        { target: `"${dir}/empty"`, content: "" },
        { target: `"${dir}/secrets.json"`, content: "{\"TOKEN\":\"s3cret\"}" }
      ]
      const { line, input } = Shipping.writeFiles(files)
      assert.notInclude(line, "s3cret", "contents never on the command line")
      const r = child.spawnSync("sh", ["-c", `umask 077; ${line}; cat > "${dir}/rest"`], {
        input: Buffer.concat([input, Buffer.from("the tarball")])
      })
      assert.strictEqual(r.status, 0, r.stderr.toString())
      for (const f of files) {
        const file = path.join(dir, path.basename(f.target.slice(1, -1)))
        assert.strictEqual(fs.readFileSync(file, "utf8"), f.content)
        assert.strictEqual(fs.statSync(file).mode & 0o777, 0o600)
      }
      assert.strictEqual(fs.readFileSync(path.join(dir, "rest"), "utf8"), "the tarball")
      fs.rmSync(dir, { recursive: true, force: true })
    }))
})
