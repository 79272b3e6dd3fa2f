import { assert, describe, it } from "@effect/vitest"
import type { RunEvents } from "@tezt-cloud/core"
import * as Terminal from "../src/Terminal.ts"

const capture = () => {
  let text = ""
  return { out: { write: (s: string) => (text += s) }, text: () => text }
}

const at = (millis: number) => ({ at: 1_000_000 + millis })

const deployAndTearDown: ReadonlyArray<RunEvents.Stamped> = [
  { type: "deploy-start", total: 2, ...at(0) },
  { type: "agent-ready", agent: "a", ready: 1, total: 2, ...at(100) },
  { type: "log", level: "Info", message: "between", ...at(200) },
  { type: "agent-ready", agent: "b", ready: 2, total: 2, ...at(300) },
  { type: "deploy-done", total: 2, millis: 300, ...at(300) },
  { type: "output", agent: "a", stream: "stdout", line: "Hello world", ...at(400) },
  { type: "log", level: "Warn", message: "careful", ...at(450) },
  { type: "teardown-start", total: 2, ...at(500) },
  { type: "agent-down", agent: "b", down: 1, total: 2, ...at(600) },
  { type: "agent-down", agent: "a", down: 2, total: 2, ...at(700) }
]

describe("Terminal", () => {
  it("plain: a judgment during the run is one line when its status changes; the final verdicts, a table", () => {
    const { out, text } = capture()
    const sink = Terminal.plain(out)
    const verdict = {
      name: "height",
      expression: "height",
      comparison: ">=",
      threshold: 5,
      observed: "3",
      status: "failed",
      at: 1
    } as const
    sink({
      type: "verdict",
      verdict: { ...verdict, observed: undefined, status: "pending", reason: "no samples" },
      ...at(0)
    })
    sink({
      type: "verdicts",
      verdicts: [verdict, { ...verdict, name: "rate \x1b[2J", observed: "9", status: "met" }],
      ...at(9)
    })
    const lines = text().trimEnd().split("\n")
    assert.match(lines[0]!, /\] criterion height: \(no samples\) >= 5: pending$/)
    assert.match(lines[1]!, /\] verdicts:$/)
    assert.match(lines[2]!, /^criterion\s+expression\s+observed\s+threshold\s+verdict$/)
    assert.match(lines[3]!, /^height\s+height\s+3\s+>= 5\s+failed$/)
    assert.match(lines[4]!, /^rate \\x1b\[2J\s+height\s+9\s+>= 5\s+met$/, "a name is shown, never obeyed")
  })

  it("plain: one line per event, no control characters", () => {
    const { out, text } = capture()
    const sink = Terminal.plain(out)
    for (const e of deployAndTearDown) sink(e)
    const lines = text().trimEnd().split("\n")
    assert.isFalse(text().includes("\x1b") || text().includes("\r"))
    assert.match(lines[0]!, /deploying 2 agents$/)
    assert.match(lines[1]!, /agent a ready \(1\/2\)$/)
    assert.include(lines, "[a] Hello world")
    assert.isTrue(lines.some((l) => l.endsWith("warn: careful")))
    assert.match(lines.at(-1)!, /agent a down \(2\/2\)$/)
  })

  it("plain: a network fault is one line naming the agent, the fault and its seed", () => {
    const { out, text } = capture()
    const sink = Terminal.plain(out)
    sink({ type: "network", agent: "a", fault: "delay 200 ms ± 0 ms (relay)", ...at(0) })
    sink({ type: "network", agent: "a b", fault: "--tc-delay 0.2,0.2, drawn: a 200 ± 0 ms", seed: 7, ...at(1) })
    const lines = text().trimEnd().split("\n")
    assert.match(lines[0]!, /\] network: a: delay 200 ms ± 0 ms \(relay\)$/)
    assert.match(lines[1]!, /\] network: a b: --tc-delay 0\.2,0\.2, drawn: a 200 ± 0 ms \(seed 7\)$/)
  })

  it("plain: past 100 agents, one progress line per tenth of them", () => {
    const { out, text } = capture()
    const sink = Terminal.plain(out)
    for (let i = 1; i <= 1000; i++) sink({ type: "agent-ready", agent: `a${i}`, ready: i, total: 1000, ...at(i) })
    const lines = text().trimEnd().split("\n")
    assert.strictEqual(lines.length, 10)
    assert.match(lines[0]!, /agent a100 ready \(100\/1000\)$/)
    assert.match(lines.at(-1)!, /agent a1000 ready \(1000\/1000\)$/)
  })

  it("tty: a live progress line rewritten in place, log lines printed above it", () => {
    const { out, text } = capture()
    let now = 1_000_000
    const sink = Terminal.tty(out, () => now)
    for (const e of deployAndTearDown) {
      now = e.at
      sink(e)
    }
    const screen = text()
    assert.include(screen, "\r\x1b[Kagents ready 0/2 (0.0s)")
    assert.include(screen, "\r\x1b[Kagents ready 1/2 (0.1s)")
    // A log line clears the progress line, prints, and redraws it.
    assert.include(screen, "\r\x1b[K[00:16:40.200] between\n\r\x1b[Kagents ready 1/2 (0.2s)")
    assert.include(screen, "agents ready 2/2 (0.3s)\n")
    assert.include(screen, "agents down 2/2 (0.2s)\n")
  })

  it("json: every event, parseable", () => {
    const { out, text } = capture()
    const sink = Terminal.json(out)
    for (const e of deployAndTearDown) sink(e)
    const parsed = text().trimEnd().split("\n").map((l) => JSON.parse(l) as RunEvents.Stamped)
    assert.deepStrictEqual(parsed, deployAndTearDown)
  })

  /** An agent's line that would retitle the window, clear the screen, ring, overwrite itself and hide text. */
  const hostile = "ok\x1b]0;pwned\x07\x1b[2J\tdone\rfake\x9b31m\x00\x7f"
  const shownAs = "ok\\x1b]0;pwned\\x07\\x1b[2J\tdone\\rfake\\x9b31m\\x00\\x7f"
  const hostileEvents: ReadonlyArray<RunEvents.Stamped> = [
    { type: "output", agent: "a", stream: "stdout", line: hostile, ...at(0) },
    { type: "output", agent: "a", stream: "stderr", line: "two\nlines", ...at(1) },
    { type: "log", level: "Error", message: `failed:\n${hostile}`, ...at(2) }
  ]

  for (const [name, make] of [["plain", Terminal.plain], ["tty", Terminal.tty]] as const) {
    it(`${name}: agent output is shown, not obeyed: control characters but tab become visible escapes`, () => {
      const { out, text } = capture()
      const sink = make(out)
      for (const e of hostileEvents) sink(e)
      // Nothing of the agents' text reaches the terminal as a control character (tab and our own newlines aside).
      assert.notMatch(text(), /[^\P{Cc}\t\n]/u)
      const lines = text().split("\n")
      assert.include(lines, `[a] ${shownAs}`)
      assert.include(lines, "[a] two\\nlines")
      // A log message keeps its lines.
      assert.isTrue(lines.some((l) => l.endsWith("error: failed:")), text())
      assert.include(lines, shownAs)
    })
  }

  it("json: agent output as it came (JSON escapes it)", () => {
    const { out, text } = capture()
    Terminal.json(out)(hostileEvents[0]!)
    assert.notInclude(text(), "\x1b")
    assert.strictEqual((JSON.parse(text()) as { line: string }).line, hostile)
  })
})
