/**
 * Success criteria on a run's metrics, and their verdicts: the scenario declares each one (`Cloud.addCriterion`) as
 * a PromQL expression, a comparison with a threshold and, optionally, a window and a period; the run judges them
 * against its Prometheus once the scenario has ended (and every period while it runs, see `Criteria`), before
 * anything is torn down, prints the verdict table, keeps it as `verdicts.json` and fails when one is not met.
 *
 * **Details**
 *
 * Every series the expression returns must meet the threshold; the one shown is the worst (the lowest for `>=`
 * and `>`, the highest for `<=` and `<`). No series at all is a failure ("no samples"), and so is `NaN`. With a
 * `window`, the expression is judged over the last `window` through a subquery (`avg_over_time((q)[10m:])`: the
 * average by default, or `min` or `max`). With `every`, it is judged during the run too: a failure then (with
 * samples) fails the criterion even if the final judgment meets it, since the criterion is meant to hold
 * throughout.
 */
import { Duration, Effect } from "effect"
import * as path from "node:path"
import * as AtomicFile from "./AtomicFile.ts"
import * as CloudError from "./CloudError.ts"

/** How an observed value must compare with the threshold. */
export type Comparison = ">=" | ">" | "<=" | "<" | "==" | "!="

export const comparisons: ReadonlyArray<Comparison> = [">=", ">", "<=", "<", "==", "!="]

/** How the values of a window make one. */
export type Aggregate = "avg" | "min" | "max"

/** A success criterion, e.g. blocks per minute ≥ 5 over the last 10 minutes. */
export interface Criterion {
  /** Its name in the verdict table: unique in the run. */
  readonly name: string
  /** A PromQL expression; each series it returns is compared with the threshold. */
  readonly query: string
  readonly comparison: Comparison
  readonly threshold: number
  /** Judges the expression over the last `window` (as `over` says) instead of its last value. */
  readonly window?: Duration.Input | undefined
  /** How the window's values make one: `avg` (the default), `min` or `max`. */
  readonly over?: Aggregate | undefined
  /** Also judges it every `every` (at least a second) while the scenario runs: it must hold each time. */
  readonly every?: Duration.Input | undefined
}

/** One series of the expression's value: its labels and its value as Prometheus writes it (`12.5`, `NaN`, `+Inf`). */
export interface Sample {
  readonly metric: Record<string, string>
  readonly value: string
}

/** A criterion judged. */
export interface Verdict {
  readonly name: string
  /** The PromQL judged: the query, within its window's subquery when it has one. */
  readonly expression: string
  readonly comparison: Comparison
  readonly threshold: number
  /** The value judged (the worst series'), as Prometheus writes it; none without samples. */
  readonly observed?: string | undefined
  /** The labels of the series judged, when the expression returned several. */
  readonly series?: Record<string, string> | undefined
  /** `pending`: judged during the run without samples yet (a final verdict is never pending). */
  readonly status: "met" | "failed" | "pending"
  /** Why it failed when the value does not say it: no samples, a failed query, a breach during the run. */
  readonly reason?: string | undefined
  /** When it was judged (milliseconds since the epoch). */
  readonly at: number
}

/** Where criteria are judged: the run's Prometheus (or, on `TestCloud`, canned values). */
export interface Source {
  /** Refuses a criterion it cannot judge (PromQL it does not parse), when it is declared. */
  check(criterion: Criterion): Effect.Effect<void, CloudError.CloudError>
  /** Waits (bounded) until what the scenario did last is scraped, so its last samples count. */
  readonly settle: Effect.Effect<void, CloudError.CloudError>
  /** The criterion's expression now, one sample per series. */
  samples(criterion: Criterion): Effect.Effect<ReadonlyArray<Sample>, CloudError.CloudError>
}

/** `millis` as a PromQL duration in its largest exact unit: `10m`, `90s`, `1500ms`. */
export const promqlDuration = (millis: number): string => {
  const units: ReadonlyArray<readonly [string, number]> = [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], [
    "s",
    1000
  ]]
  for (const [unit, size] of units) if (millis % size === 0) return `${millis / size}${unit}`
  return `${millis}ms`
}

/** The milliseconds of a duration given, `NaN` when it is not one. */
export const millisOf = (input: Duration.Input | undefined): number | undefined => {
  if (input === undefined) return undefined
  const millis = Duration.fromInput(input)
  return millis._tag === "Some" ? Duration.toMillis(millis.value) : Number.NaN
}

/** The PromQL judged for `criterion`: its query, or its window's subquery. */
export const expression = (criterion: Criterion): string => {
  const window = millisOf(criterion.window)
  return window === undefined
    ? criterion.query
    : `${criterion.over ?? "avg"}_over_time((${criterion.query})[${promqlDuration(Math.round(window))}:])`
}

/** Why `criterion` cannot be judged, or `undefined` when it can. */
export const invalid = (criterion: Criterion): string | undefined => {
  if (typeof criterion.name !== "string" || criterion.name.trim() === "") return "its name is empty"
  if (typeof criterion.query !== "string" || criterion.query.trim() === "") return "its query is empty"
  if (!comparisons.includes(criterion.comparison)) {
    return `comparison ${JSON.stringify(criterion.comparison)} is not one of ${comparisons.join(" ")}`
  }
  if (typeof criterion.threshold !== "number" || !Number.isFinite(criterion.threshold)) {
    return `threshold ${String(criterion.threshold)} is not a finite number`
  }
  if (criterion.over !== undefined && !["avg", "min", "max"].includes(criterion.over)) {
    return `over ${JSON.stringify(criterion.over)} is not avg, min or max`
  }
  if (criterion.over !== undefined && criterion.window === undefined) return "over needs a window"
  const window = millisOf(criterion.window)
  if (window !== undefined && !(window >= 1 && Number.isFinite(window))) {
    return `window ${String(criterion.window)} is not a duration of at least a millisecond`
  }
  const every = millisOf(criterion.every)
  if (every !== undefined && !(every >= 1000 && Number.isFinite(every))) {
    return `every ${String(criterion.every)} is not a duration of at least a second`
  }
  return undefined
}

/** A value as Prometheus writes it (`NaN`, `+Inf`, `-Inf`, `1e+06`) as a number. */
export const parseValue = (value: string): number =>
  value === "+Inf" || value === "Inf" ? Infinity : value === "-Inf" ? -Infinity : Number(value)

/** Whether `observed` meets `threshold` by `comparison` (`NaN` meets nothing, not even `!=`). */
export const compare = (observed: number, comparison: Comparison, threshold: number): boolean => {
  if (Number.isNaN(observed)) return false
  switch (comparison) {
    case ">=":
      return observed >= threshold
    case ">":
      return observed > threshold
    case "<=":
      return observed <= threshold
    case "<":
      return observed < threshold
    case "==":
      return observed === threshold
    case "!=":
      return observed !== threshold
  }
}

/**
 * The series of `samples` a verdict shows: the first that fails, else the worst (the closest to failing for the
 * order comparisons), else the first.
 */
const judged = (criterion: Criterion, samples: ReadonlyArray<Sample>): Sample => {
  const failing = samples.find((s) => !compare(parseValue(s.value), criterion.comparison, criterion.threshold))
  if (failing !== undefined) return failing
  const sign = criterion.comparison === ">=" || criterion.comparison === ">"
    ? 1
    : criterion.comparison === "<=" || criterion.comparison === "<"
    ? -1
    : 0
  return samples.reduce((worst, s) => sign * parseValue(s.value) < sign * parseValue(worst.value) ? s : worst)
}

/** The verdict on `criterion` from the samples of its expression at `at`; `final`: no samples is a failure. */
export const judge = (
  criterion: Criterion,
  samples: ReadonlyArray<Sample>,
  at: number,
  final = true
): Verdict => {
  const base = {
    name: criterion.name,
    expression: expression(criterion),
    comparison: criterion.comparison,
    threshold: criterion.threshold,
    at
  }
  if (samples.length === 0) return { ...base, status: final ? "failed" : "pending", reason: "no samples" }
  const sample = judged(criterion, samples)
  const met = compare(parseValue(sample.value), criterion.comparison, criterion.threshold)
  return {
    ...base,
    observed: sample.value,
    ...(samples.length > 1 ? { series: sample.metric } : {}),
    status: met ? "met" : "failed",
    ...(!met && Number.isNaN(parseValue(sample.value)) ? { reason: "NaN meets no threshold" } : {})
  }
}

/** A verdict on a criterion whose expression could not be read: failed, saying why. */
export const unread = (criterion: Criterion, error: CloudError.CloudError, at: number): Verdict => ({
  ...judge(criterion, [], at),
  reason: `query failed: ${error.message}`
})

const labels = (series: Record<string, string>) =>
  `{${
    Object.entries(series).filter(([k]) => k !== "__name__").map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ")
  }}`

/** The observed value of a verdict as its table shows it: the value and the series, or why there is none. */
export const observedText = (v: Verdict): string =>
  v.observed === undefined
    ? `(${v.reason ?? "none"})`
    : `${v.observed}${v.series === undefined ? "" : ` ${labels(v.series)}`}`

/** The verdict table, aligned: criterion, expression, observed value, threshold, verdict (and why, when failed). */
export const table = (verdicts: ReadonlyArray<Verdict>): string => {
  const rows = [
    ["criterion", "expression", "observed", "threshold", "verdict"],
    ...verdicts.map((v) => [
      v.name,
      v.expression,
      observedText(v),
      `${v.comparison} ${v.threshold}`,
      v.status === "failed" && v.observed !== undefined && v.reason !== undefined ? `failed (${v.reason})` : v.status
    ])
  ]
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  return rows.map((r) => r.map((cell, i) => i === r.length - 1 ? cell : cell.padEnd(widths[i]!)).join("  ")).join(
    "\n"
  )
}

/** One line for a failed run: how many criteria failed, and each with its value. */
export const summary = (verdicts: ReadonlyArray<Verdict>): string => {
  const failed = verdicts.filter((v) => v.status !== "met")
  return `${failed.length} of ${verdicts.length} criteria not met: ${
    failed.map((v) => `${v.name} (${observedText(v)}, wanted ${v.comparison} ${v.threshold})`).join("; ")
  }`
}

/** Writes `verdicts.json` into `dir`: the verdicts and whether all were met. */
export const write = (dir: string, verdicts: ReadonlyArray<Verdict>) =>
  Effect.try({
    try: () =>
      AtomicFile.writeAtomic(
        path.join(dir, "verdicts.json"),
        JSON.stringify({ met: verdicts.every((v) => v.status === "met"), verdicts }, null, 2) + "\n"
      ),
    catch: (e) =>
      CloudError.state(path.join(dir, "verdicts.json"), `cannot write the verdicts: ${CloudError.messageOf(e)}`, {
        cause: e
      })
  })
