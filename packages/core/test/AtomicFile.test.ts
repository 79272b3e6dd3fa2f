/**
 * Files written whole or not at all: replaced by a rename of a flushed temporary file, with the mode asked for,
 * never leaving a temporary behind; created at most once when processes race to create them.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Syscalls from "../../../test/fixtures/Syscalls.ts"
import { AtomicFile } from "../src/index.ts"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-atomic-"))
afterAll(() => fs.rmSync(work, { recursive: true, force: true }))
const child = path.join(import.meta.dirname, "fixtures/writeAtomic.ts")

let next = 0
const freshDir = () => {
  const dir = path.join(work, `d${next++}`)
  fs.mkdirSync(dir)
  return dir
}
const mode = (p: string) => (fs.statSync(p).mode & 0o777).toString(8)

describe("AtomicFile", () => {
  it("writeAtomic replaces the file with the mode asked for, even one that existed with another, and leaves no temporary", () => {
    const dir = freshDir()
    const file = path.join(dir, "deployment.json")
    fs.writeFileSync(file, "old", { mode: 0o644 })
    AtomicFile.writeAtomic(file, "new")
    assert.strictEqual(fs.readFileSync(file, "utf8"), "new")
    assert.strictEqual(mode(file), "600")
    AtomicFile.writeAtomic(file, "public", 0o644)
    assert.strictEqual(mode(file), "644")
    assert.deepStrictEqual(fs.readdirSync(dir), ["deployment.json"])
  })

  it("a write that fails leaves the target as it was and no temporary", () => {
    const dir = freshDir()
    // A rename cannot replace a non-empty directory.
    fs.mkdirSync(path.join(dir, "target", "inside"), { recursive: true })
    assert.throws(() => AtomicFile.writeAtomic(path.join(dir, "target"), "x"))
    assert.deepStrictEqual(fs.readdirSync(dir), ["target"])
    assert.deepStrictEqual(fs.readdirSync(path.join(dir, "target")), ["inside"])
  })

  it.live.runIf(Syscalls.available())(
    "the target is never opened for writing: a temporary is written, flushed and renamed, then the directory flushed",
    () =>
      Effect.promise(async () => {
        const dir = freshDir()
        const file = path.join(dir, "deployment.json")
        fs.writeFileSync(file, "old")
        const calls = await Syscalls.trace(child, ["write", file, "new"], dir)
        const text = calls.join("\n")
        assert.notMatch(text, new RegExp(`openat\\([^)]*"${file}"`), text)
        const temporary = new RegExp(`^openat\\([^,]*, "(${dir}/\\.deployment\\.json\\.[^"]+)", [^)]*O_EXCL`)
        const opened = calls.findIndex((c) => temporary.test(c))
        assert.isAtLeast(opened, 0, text)
        const name = temporary.exec(calls[opened]!)![1]!
        const fsync = calls.findIndex((c) => c.startsWith("fsync(") && c.includes(`<${name}>`))
        const rename = calls.findIndex((c) =>
          c.startsWith("rename") && c.includes(`"${name}"`) && c.includes(`"${file}"`)
        )
        const dirSync = calls.findIndex((c) => c.startsWith("fsync(") && c.includes(`<${dir}>`))
        assert.isTrue(opened < fsync && fsync < rename && rename < dirSync, text)
      }),
    { timeout: 30_000 }
  )

  it("createAtomic creates a file once: an existing one is left as it is", () => {
    const dir = freshDir()
    const file = path.join(dir, "key")
    assert.isTrue(AtomicFile.createAtomic(file, "first"))
    assert.isFalse(AtomicFile.createAtomic(file, "second"))
    assert.strictEqual(fs.readFileSync(file, "utf8"), "first")
    assert.strictEqual(mode(file), "600")
    assert.deepStrictEqual(fs.readdirSync(dir), ["key"])
  })

  it.live(
    "of processes creating the same file at once, exactly one does, and the file is its content",
    () =>
      Effect.promise(async () => {
        const dir = freshDir()
        const file = path.join(dir, "key")
        const created = await Promise.all(
          Array.from({ length: 6 }, (_, i) => Syscalls.run(child, ["create", file, `content ${i}`]))
        )
        const winners = created.flatMap((c, i) => c === "true" ? [i] : [])
        assert.strictEqual(winners.length, 1, created.join(" "))
        assert.strictEqual(fs.readFileSync(file, "utf8"), `content ${winners[0]}`)
        assert.deepStrictEqual(fs.readdirSync(dir), ["key"])
      }),
    { timeout: 30_000 }
  )
})
