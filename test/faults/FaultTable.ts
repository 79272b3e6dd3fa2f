/**
 * The fault suite's table: one row per fault × backend × outcome, with its runs, the runs that left something
 * (leaks), the hung runs and the median time from the last signal to the exit. Markdown, so that the README shows
 * the table of a real run as printed.
 */
import type { Outcome } from "./FaultRun.ts"

const median = (values: ReadonlyArray<number>) => {
  const sorted = values.toSorted((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

const seconds = (millis: number) => `${(millis / 1000).toFixed(2)} s`

/** The outcome without its clean up's suffix: the rows group the exit, the clean up is a column of its own. */
const exitOf = (outcome: string) => outcome.replace(/ \+ clean up.*$/, "")

export const render = (outcomes: ReadonlyArray<Outcome>): string => {
  const rows = new Map<string, Array<Outcome>>()
  for (const o of outcomes) {
    const key = [o.plan.fault, o.plan.backend, exitOf(o.outcome)].join("\t")
    rows.set(key, [...(rows.get(key) ?? []), o])
  }
  const lines = [
    "| fault | backend | outcome | runs | clean up | leaks | hangs | median exit time |",
    "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"
  ]
  for (const [key, group] of [...rows].toSorted(([a], [b]) => a.localeCompare(b))) {
    const [fault, backend, outcome] = key.split("\t")
    const cleanUps = group.filter((o) => o.outcome.includes("+ clean up")).length
    const leaks = group.filter((o) => o.leaked).length
    const hangs = group.filter((o) => o.hung).length
    lines.push(
      `| ${fault} | ${backend} | ${outcome} | ${group.length} | ${cleanUps} | ${leaks} | ${hangs} | ` +
        `${seconds(median(group.map((o) => o.exitMillis)))} |`
    )
  }
  const backends = [...new Set(outcomes.map((o) => o.plan.backend))]
  for (const backend of backends) {
    const of = outcomes.filter((o) => o.plan.backend === backend)
    lines.push(
      `| **all** | ${backend} | | ${of.length} | ${of.filter((o) => o.outcome.includes("+ clean up")).length} | ` +
        `${of.filter((o) => o.leaked).length} | ${of.filter((o) => o.hung).length} | ` +
        `${seconds(median(of.map((o) => o.exitMillis)))} |`
    )
  }
  return lines.join("\n")
}
