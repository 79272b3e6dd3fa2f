/**
 * How a run looks in a terminal. On a TTY: log lines plus one live progress line while agents are deployed and
 * torn down (ready / total, elapsed). Elsewhere: one plain line per event (past `everyAgentUpTo` agents, one per
 * tenth of them: 1000 agents print 10 progress lines, not 1000). With `--json`: every event as one JSON line on
 * stdout, for machines.
 *
 * Text that comes from agents (their output, remote errors in messages) is shown, never obeyed: in the plain and
 * TTY displays every control character but tab (escape sequences that recolour, retitle or clear the terminal, a
 * carriage return that overwrites a line…) is printed as a visible escape such as `\x1b`. JSON escapes them
 * itself.
 */
import { type RunEvents, Verdict } from "@tezt-cloud/core"

type Out = { write(text: string): unknown }

const time = (at: number) => new Date(at).toISOString().slice(11, 23)

/** Up to this many agents, plain output has a line for each agent ready or down. */
export const everyAgentUpTo = 100

/** Whether the `done`th of `total` agents gets a plain line: all of them for small runs, each tenth otherwise. */
const shown = (done: number, total: number) =>
  total <= everyAgentUpTo || done === total || done % Math.ceil(total / 10) === 0

/** Control characters (C0, DEL, and the C1 ones some terminals obey as escapes) but tab, and newline when kept. */
const controls = /[^\P{Cc}\t\n]/gu
const controlsAndNewline = /[^\P{Cc}\t]/gu

/**
 * `text` with every control character but tab shown as a visible escape (`\x1b`, `\r`, `\n`…), so a terminal
 * prints it and obeys none of it. `keepNewlines`: a multi-line message stays on several lines.
 */
export const printable = (text: string, keepNewlines = false): string =>
  text.replace(keepNewlines ? controls : controlsAndNewline, (c) => {
    const code = c.charCodeAt(0)
    return code === 0x0d ? "\\r" : code === 0x0a ? "\\n" : `\\x${code.toString(16).padStart(2, "0")}`
  })

/** The plain line of an event, made printable, or `undefined` when the event is only shown as progress. */
const line = (event: RunEvents.Stamped): string | undefined => {
  const text = rawLine(event)
  // An output line is one line; other events' text (log messages) may span several.
  return text === undefined ? undefined : printable(text, event.type !== "output")
}

const rawLine = (event: RunEvents.Stamped): string | undefined => {
  switch (event.type) {
    case "run-start":
      return `[${
        time(event.at)
      }] ${event.scenario} (namespace ${event.namespace}, backend ${event.backend}; artifacts in ${event.artifactsDir})`
    case "deploy-start":
      return event.total === 0
        ? undefined
        : `[${time(event.at)}] deploying ${event.total} agent${event.total === 1 ? "" : "s"}`
    case "agent-ready":
      return shown(event.ready, event.total)
        ? `[${time(event.at)}] agent ${event.agent} ready (${event.ready}/${event.total})`
        : undefined
    case "deploy-done":
      return event.total === 0
        ? undefined
        : `[${time(event.at)}] ${event.total} agent${event.total === 1 ? "" : "s"} ready in ${
          (event.millis / 1000).toFixed(1)
        }s`
    case "teardown-start":
      return event.total === 0
        ? undefined
        : `[${time(event.at)}] tearing down ${event.total} agent${event.total === 1 ? "" : "s"}`
    case "agent-down":
      return shown(event.down, event.total)
        ? `[${time(event.at)}] agent ${event.agent} down (${event.down}/${event.total})`
        : undefined
    case "output":
      return `[${event.agent}] ${event.line}`
    case "daemon-up":
      return `[${time(event.at)}] ${event.agent}: daemon ${event.name} started (pid ${event.pid})`
    case "network":
      return `[${time(event.at)}] network: ${event.agent}: ${event.fault}${
        event.seed === undefined ? "" : ` (seed ${event.seed})`
      }`
    case "verdict": {
      const v = event.verdict
      return `[${time(event.at)}] criterion ${v.name}: ${
        Verdict.observedText(v)
      } ${v.comparison} ${v.threshold}: ${v.status}`
    }
    case "verdicts":
      return `[${time(event.at)}] verdicts:\n${Verdict.table(event.verdicts)}`
    case "teardown-failed":
      return `[${time(event.at)}] teardown step ${event.step} failed: ${event.message}`
    case "log": {
      const level = event.level === "Info" ? "" : `${event.level.toLowerCase()}: `
      return `[${time(event.at)}] ${level}${event.message}`
    }
    case "exec":
    case "exit":
    case "daemon-down":
    case "run-end":
      return undefined
  }
}

/**
 * Whether a judgment during the run is news: a criterion judged every second prints a line when its status
 * changes, not each time (`events.jsonl` and `--json` keep them all).
 */
const verdictChanges = () => {
  const last = new Map<string, string>()
  return (event: RunEvents.Stamped) => {
    if (event.type !== "verdict") return true
    const { name, status } = event.verdict
    if (last.get(name) === status) return false
    last.set(name, status)
    return true
  }
}

/** One line per event (a judgment during the run, when its status changes). */
export const plain = (out: Out): RunEvents.Sink => {
  const news = verdictChanges()
  return (event) => {
    if (!news(event)) return
    const text = line(event)
    if (text !== undefined) out.write(text + "\n")
  }
}

/** Every event as JSON. */
export const json = (out: Out): RunEvents.Sink => (event) => {
  out.write(JSON.stringify(event) + "\n")
}

/**
 * A live progress line under the log lines. Ready/down counts replace each other on the same line; other events
 * print above it.
 */
export const tty = (out: Out, now: () => number = Date.now): RunEvents.Sink => {
  const news = verdictChanges()
  let progress: { label: string; done: number; total: number; since: number; timer: NodeJS.Timeout } | undefined
  const render = (p: NonNullable<typeof progress>) =>
    `${p.label} ${p.done}/${p.total} (${((now() - p.since) / 1000).toFixed(1)}s)`
  const draw = () => {
    if (progress !== undefined) out.write(`\r\x1b[K${render(progress)}`)
  }
  const clear = () => {
    if (progress !== undefined) out.write("\r\x1b[K")
  }
  return (event) => {
    switch (event.type) {
      case "deploy-start":
      case "teardown-start":
        if (event.total > 0) {
          const label = event.type === "deploy-start" ? "agents ready" : "agents down"
          // Redraw every 100 ms so the elapsed time moves even when no agent changes state.
          progress = { label, done: 0, total: event.total, since: event.at, timer: setInterval(draw, 100).unref() }
          draw()
        }
        return
      case "agent-ready":
      case "agent-down":
        if (progress === undefined) return
        progress.done = event.type === "agent-ready" ? event.ready : event.down
        draw()
        if (progress.done >= progress.total) {
          clearInterval(progress.timer)
          out.write(`\r\x1b[K${render(progress)}\n`)
          progress = undefined
        }
        return
      case "deploy-done":
        return
      default: {
        const text = news(event) ? line(event) : undefined
        if (text === undefined) return
        clear()
        out.write(text + "\n")
        draw()
      }
    }
  }
}

/** The sink a terminal gets: JSON with `--json`, a live display on a TTY, plain lines otherwise. */
export const sinkFor = (asJson: boolean): RunEvents.Sink =>
  asJson
    ? json(process.stdout)
    : process.stdout.isTTY
    ? tty(process.stdout)
    : plain(process.stdout)
