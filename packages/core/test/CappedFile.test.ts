/**
 * A capped file keeps the tail of what was written, never more than its cap on disk (even before it is closed),
 * with a marker line saying how much was dropped; a file under the cap is left as written.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { CappedFile } from "../src/index.ts"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-capped-"))
afterAll(() => fs.rmSync(work, { recursive: true, force: true }))
let next = 0
const fresh = () => path.join(work, `d${next++}`, "out.log")

/** Bytes on disk for `file` and its older half. */
const onDisk = (file: string) =>
  [file, `${file}.older`].reduce((sum, f) => sum + (fs.existsSync(f) ? fs.statSync(f).size : 0), 0)

describe("CappedFile", () => {
  it("under the cap: the file as written, no marker, nothing dropped", () => {
    const file = fresh()
    const capped = CappedFile.make(file, 100)
    capped.write("one\n")
    capped.write(Buffer.from("two\n"))
    capped.close()
    capped.close()
    assert.strictEqual(fs.readFileSync(file, "utf8"), "one\ntwo\n")
    assert.strictEqual(capped.dropped(), 0)
    assert.isFalse(fs.existsSync(`${file}.older`))
  })

  it("written without end: at most the cap on disk all along; closed, the marker then exactly the last bytes", () => {
    const file = fresh()
    const cap = 1000
    const capped = CappedFile.make(file, cap)
    let all = ""
    for (let i = 0; i < 2000; i++) {
      const line = `line ${i}\n`
      all += line
      capped.write(line)
      assert.isAtMost(onDisk(file), cap)
    }
    capped.close()
    const text = fs.readFileSync(file, "utf8")
    const marker = text.slice(0, text.indexOf("\n") + 1)
    const kept = text.slice(marker.length)
    assert.strictEqual(kept, all.slice(all.length - kept.length))
    assert.isAtMost(kept.length, cap)
    assert.isAtLeast(kept.length, cap / 2)
    assert.strictEqual(marker, CappedFile.droppedMarker(all.length - kept.length, kept.length))
    assert.strictEqual(capped.dropped(), all.length - kept.length)
    assert.isFalse(fs.existsSync(`${file}.older`))
  })

  it("one chunk larger than the cap keeps its tail only", () => {
    const file = fresh()
    const capped = CappedFile.make(file, 10)
    capped.write("abc")
    capped.write("0123456789ABCDEFGHIJ")
    capped.close()
    const text = fs.readFileSync(file, "utf8")
    assert.isTrue(text.endsWith("\nFGHIJ"), text)
    assert.strictEqual(capped.dropped(), 18)
  })
})
