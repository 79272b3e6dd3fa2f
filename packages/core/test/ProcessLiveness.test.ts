/**
 * ProcessLiveness on real processes: this one, and a child that has exited.
 */
import { assert, describe, it } from "@effect/vitest"
import * as child from "node:child_process"
import { ProcessLiveness } from "../src/index.ts"

describe("ProcessLiveness", () => {
  it("a pid is live only while it names the recorded process; a record without a start time goes by its pid", () => {
    const start = ProcessLiveness.startTime(process.pid)
    assert.isString(start)
    assert.isTrue(ProcessLiveness.isLive(process.pid, start))
    assert.isTrue(ProcessLiveness.isLive(process.pid), "an older record, without a start time")
    assert.isFalse(ProcessLiveness.isLive(process.pid, "1"), "the same pid, another process (a reused pid)")
    const exited = child.spawnSync("true")
    assert.isFalse(ProcessLiveness.isLive(exited.pid!), "an exited (and reaped) child")
    assert.isFalse(ProcessLiveness.isLive(0))
  })
})
