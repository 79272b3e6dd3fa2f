/**
 * How far this machine has shown a proxied run's log (`ProxyRecord.showLines`, the offset file): clients that
 * follow the log one after the other, the first stopped at every point of its bookkeeping (between two batches,
 * between a line shown and its offset recorded, after it was recorded), show every line, in order, and repeat
 * nothing, except the one line a `kill -9` caught between showing it and recording it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as ProxyRecord from "../src/ProxyRecord.ts"

/** The log's lines: multi-byte characters too, so that offsets are bytes, not characters. */
const log = Array.from({ length: 12 }, (_, i) => `{"type":"tick","n":${i + 1},"é":"${"€".repeat(i % 3)}"}`)

/** The byte offset where each line starts, and the end. */
const starts = log.reduce<Array<number>>((acc, line) => {
  acc.push(acc.at(-1)! + Buffer.byteLength(line) + 1)
  return acc
}, [0])

/** The server's answers from `from`: batches of up to three lines, each with the offset after it. */
const batches = (from: number) => {
  const first = starts.indexOf(from)
  assert.isAtLeast(first, 0, `${from} is a line start`)
  const out: Array<{ lines: Array<string>; next: number }> = []
  for (let i = first; i < log.length; i += 3) {
    const end = Math.min(i + 3, log.length)
    out.push({ lines: log.slice(i, end), next: starts[end]! })
  }
  return out
}

/** Where the client is stopped: before showing its `line`th line, or after showing it, before or after counting it. */
type Stop = { readonly line: number; readonly when: "before show" | "before record" | "after record" }

/** What stops a client where a `kill -9` would. */
const killed = new Error("killed")

/**
 * A client following the log from the recorded offset as `ProxyRun` does (the offset read once, then moved after
 * each batch), stopped at `stop` if given; returns the lines it showed.
 */
const client = (stateDir: string, stop?: Stop) => {
  const shown: Array<string> = []
  let at = ProxyRecord.readOffset(stateDir, "ns")
  let recorded = 0
  try {
    for (const { lines, next } of batches(at)) {
      ProxyRecord.showLines(lines, at, next, (line) => {
        if (stop?.when === "before show" && shown.length === stop.line) throw killed
        shown.push(line)
        if (stop?.when === "before record" && shown.length === stop.line + 1) throw killed
      }, (offset) => {
        assert.include(starts, offset, "a recorded offset is a line start")
        ProxyRecord.writeOffset(stateDir, "ns", offset)
        recorded += 1
        if (stop?.when === "after record" && recorded === stop.line + 1) throw killed
      })
      at = next
    }
  } catch (e) {
    if (e !== killed) throw e
  }
  return shown
}

const withStateDir = <A>(body: (stateDir: string) => A) => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-offset-"))
  fs.mkdirSync(path.dirname(ProxyRecord.offsetFile(stateDir, "ns")))
  try {
    return body(stateDir)
  } finally {
    fs.rmSync(stateDir, { recursive: true, force: true })
  }
}

describe("ProxyRecord.showLines", () => {
  it.effect("a client stopped anywhere but between a line shown and its offset recorded: the next shows the rest, nothing twice", () =>
    Effect.sync(() => {
      for (const when of ["before show", "after record"] as const) {
        for (let line = 0; line < log.length; line++) {
          withStateDir((stateDir) => {
            const first = client(stateDir, { line, when })
            const second = client(stateDir)
            assert.deepStrictEqual([...first, ...second], log, `stopped ${when} line ${line}`)
          })
        }
      }
    }))

  it.effect("a kill -9 between a line shown and its offset recorded: that line, and only it, is shown again", () =>
    Effect.sync(() => {
      for (let line = 0; line < log.length; line++) {
        withStateDir((stateDir) => {
          const first = client(stateDir, { line, when: "before record" })
          const second = client(stateDir)
          assert.strictEqual(first.at(-1), log[line])
          assert.strictEqual(second[0], log[line], "the line caught by the kill is shown again")
          assert.deepStrictEqual([...first, ...second.slice(1)], log, `killed after showing line ${line}`)
        })
      }
    }))

  it.effect("three clients in turn, each stopped at a batch's middle: every line once, in order", () =>
    Effect.sync(() =>
      withStateDir((stateDir) => {
        const first = client(stateDir, { line: 4, when: "after record" })
        const second = client(stateDir, { line: 3, when: "before show" })
        const third = client(stateDir)
        assert.deepStrictEqual([...first, ...second, ...third], log)
      })
    ))

  it.effect("lines whose lengths do not add up to the server's offset: only that offset, after the batch", () =>
    Effect.sync(() => {
      const events: Array<string> = []
      ProxyRecord.showLines(["a", "b"], 10, 20, (line) => events.push(`show ${line}`), (o) => events.push(`at ${o}`))
      assert.deepStrictEqual(events, ["show a", "show b", "at 20"])
      events.length = 0
      ProxyRecord.showLines(["a", "éb"], 10, 16, (line) => events.push(`show ${line}`), (o) => events.push(`at ${o}`))
      assert.deepStrictEqual(events, ["show a", "at 12", "show éb", "at 16"], "each line then its end")
    }))
})
