/**
 * `--log-file`: the run's log in a file, rotated past its size or at a new day keeping N copies, and reopened on
 * SIGUSR1 after an external rotator moved it (SIGHUP stays "tear down").
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { RunEvents } from "@tezt-cloud/core"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as LogFile from "../src/LogFile.ts"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-logfile-"))
afterAll(() => fs.rmSync(work, { recursive: true, force: true }))
let next = 0
const fresh = () => path.join(work, `d${next++}`, "run.log")
const read = (file: string) => fs.existsSync(file) ? fs.readFileSync(file, "utf8") : undefined

describe("LogFile", () => {
  it("rotates past its size, keeping N copies, the newest first", () => {
    const file = fresh()
    const log = LogFile.make(file, { keep: 2, maxBytes: 10 })
    for (const line of ["one 1\n", "two 2\n", "three\n", "four\n"]) log.write(line)
    log.close()
    assert.strictEqual(read(file), "four\n")
    assert.strictEqual(read(`${file}.1`), "three\n")
    assert.strictEqual(read(`${file}.2`), "two 2\n")
    assert.isUndefined(read(`${file}.3`), "only 2 copies")
  })

  it("rotates at a new day; never with 0 copies", () => {
    const file = fresh()
    let now = Date.parse("2026-01-01T23:59:00Z")
    const log = LogFile.make(file, { keep: 1, now: () => now })
    log.write("monday\n")
    now += 120_000
    log.write("tuesday\n")
    log.close()
    assert.strictEqual(read(`${file}.1`), "monday\n")
    assert.strictEqual(read(file), "tuesday\n")
    const never = fresh()
    const kept = LogFile.make(never, { keep: 0, maxBytes: 1 })
    kept.write("a\n")
    kept.write("b\n")
    kept.close()
    assert.strictEqual(read(never), "a\nb\n")
  })

  it.live("attached to a run's events: plain lines; SIGUSR1 reopens it under its name after a move", () =>
    Effect.gen(function*() {
      const file = fresh()
      const events = yield* RunEvents.RunEvents
      yield* events.emit({ type: "output", agent: "a", stream: "stdout", line: "before" })
      yield* Effect.scoped(Effect.gen(function*() {
        yield* LogFile.attach(events, file, 3)
        yield* events.emit({ type: "output", agent: "a", stream: "stdout", line: "still in the old file" })
        fs.renameSync(file, `${file}.moved`)
        process.kill(process.pid, "SIGUSR1")
        // The signal is delivered to the listener between turns of the event loop.
        for (let i = 0; i < 200 && !fs.existsSync(file); i++) yield* Effect.sleep("10 millis")
        yield* events.emit({ type: "output", agent: "a", stream: "stdout", line: "in the new file" })
      }))
      assert.strictEqual(read(`${file}.moved`), "[a] before\n[a] still in the old file\n")
      assert.strictEqual(read(file), "[a] in the new file\n")
      assert.deepStrictEqual(process.listeners("SIGUSR1"), [], "its listener is gone with its scope")
    }).pipe(Effect.provide(RunEvents.RunEvents.layer([]))))
})
