/**
 * The tar reader `Fetch` extracts an agent's directory with: what GNU tar writes (long names included) comes out
 * whole, in chunks of any size; an entry that would land outside the directory, a link or a device is skipped.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as childProcess from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Untar from "../src/internal/untar.ts"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-untar-"))
afterAll(() => fs.rmSync(work, { recursive: true, force: true }))

/** A ustar header block for `name` of `type` with `size` bytes of data. */
const header = (name: string, type: string, size: number) => {
  const block = Buffer.alloc(512)
  block.write(name, 0, "utf8")
  block.write("0000644\0", 100)
  block.write(size.toString(8).padStart(11, "0") + "\0", 124)
  block.write(type, 156)
  block.write("ustar\0", 257)
  return block
}
const entry = (name: string, type: string, data = "") => {
  const bytes = Buffer.from(data)
  const padding = Buffer.alloc((512 - (bytes.length % 512)) % 512)
  return Buffer.concat([header(name, type, bytes.length), bytes, padding])
}

describe("untar", () => {
  it("GNU tar's archive of a tree (a long name too) comes out whole, fed byte chunks of any size", () => {
    const source = path.join(work, "source")
    const long = "d".repeat(120)
    fs.mkdirSync(path.join(source, "sub", long), { recursive: true })
    fs.writeFileSync(path.join(source, "a.txt"), "A\n")
    fs.writeFileSync(path.join(source, "sub", long, "f".repeat(110)), Buffer.alloc(3000, 7))
    fs.mkdirSync(path.join(source, "empty"))
    const archive = childProcess.execFileSync("tar", ["-C", source, "-cf", "-", "."])
    const root = path.join(work, "out")
    const untar = Untar.make(root)
    for (let i = 0; i < archive.length; i += 777) untar.push(archive.subarray(i, i + 777))
    assert.deepStrictEqual(untar.end(), { files: 2, skipped: 0 })
    assert.strictEqual(fs.readFileSync(path.join(root, "a.txt"), "utf8"), "A\n")
    assert.deepStrictEqual(fs.readFileSync(path.join(root, "sub", long, "f".repeat(110))), Buffer.alloc(3000, 7))
    assert.isTrue(fs.statSync(path.join(root, "empty")).isDirectory())
  })

  it("never writes outside its directory, nor a link or a device", () => {
    const root = path.join(work, "guarded", "root")
    const untar = Untar.make(root)
    untar.push(Buffer.concat([
      entry("../escape.txt", "0", "out"),
      entry("/etc/abs.txt", "0", "abs"),
      entry("ok/../../up.txt", "0", "up"),
      entry("ok/link", "2"),
      entry("ok/dev", "3"),
      entry("ok/file.txt", "0", "fine"),
      Buffer.alloc(1024)
    ]))
    assert.deepStrictEqual(untar.end(), { files: 1, skipped: 5 })
    assert.deepStrictEqual(fs.readdirSync(path.join(work, "guarded")), ["root"])
    assert.deepStrictEqual(fs.readdirSync(path.join(root, "ok")), ["file.txt"])
    assert.strictEqual(fs.readFileSync(path.join(root, "ok", "file.txt"), "utf8"), "fine")
  })
})
