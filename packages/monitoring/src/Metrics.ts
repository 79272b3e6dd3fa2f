/**
 * The run's pushed metrics (`Cloud.pushMetric`): the last value per (name, labels), served on the website's
 * `/metrics` in the Prometheus text exposition format 0.0.4, which the run's Prometheus scrapes.
 *
 * **Details**
 *
 * `# HELP` and `# TYPE` come once per metric family, before its series (Tezt cloud repeats them per label set and
 * adds timestamps; Prometheus stamps samples at scrape time instead). Names and label names are checked against
 * Prometheus' grammar and label values and help texts are escaped, so no input can break the exposition: a bad
 * name is a `MetricInvalid` error and nothing is recorded. A family keeps the type it was first given; pushing it
 * with another type is an error.
 */
import { CloudError, type RunServices } from "@tezt-cloud/core"
import { Context, Effect, Layer } from "effect"

type MetricSample = RunServices.MetricSample
type MetricType = NonNullable<MetricSample["type"]>

/** The `Content-Type` of the exposition. */
export const contentType = "text/plain; version=0.0.4; charset=utf-8"

/** A metric family as the website charts it. */
export interface Family {
  readonly name: string
  readonly help: string | undefined
  readonly type: MetricType | undefined
  readonly series: ReadonlyArray<{ readonly labels: Record<string, string>; readonly value: number }>
}

export class Metrics extends Context.Service<Metrics, {
  /** Records `sample` as the last value of its (name, labels). */
  push(sample: MetricSample): Effect.Effect<void, CloudError.CloudError>
  /** The exposition text of every family. */
  readonly render: Effect.Effect<string>
  readonly families: Effect.Effect<ReadonlyArray<Family>>
  /** The last value of every series, as pushed. */
  readonly samples: Effect.Effect<ReadonlyArray<MetricSample>>
}>()("@tezt-cloud/monitoring/Metrics") {
  /** An empty registry. */
  static readonly layer = Layer.sync(Metrics, () => make())
}

const metricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/

/** Why `name` is not a valid metric name, or `undefined` when it is. */
export const checkName = (name: unknown): string | undefined =>
  typeof name !== "string" || !metricName.test(name)
    ? `${JSON.stringify(name)} is not a valid metric name: use letters, digits, '_' and ':', not starting with a digit`
    : undefined

/** Why `name` is not a valid label name, or `undefined` when it is. */
export const checkLabel = (name: string): string | undefined =>
  !labelName.test(name)
    ? `label ${JSON.stringify(name)} is not a valid label name: use letters, digits and '_', not starting with a digit`
    : name.startsWith("__")
    ? `label ${JSON.stringify(name)} starts with "__", which Prometheus reserves`
    : undefined

/** A label value inside double quotes: backslash, double quote and line feed escaped. */
export const escapeLabelValue = (value: string): string =>
  /[\\"\n]/.test(value) ? value.replaceAll("\\", "\\\\").replaceAll("\"", "\\\"").replaceAll("\n", "\\n") : value

/** A help text: backslash and line feed escaped. */
export const escapeHelp = (help: string): string => help.replaceAll("\\", "\\\\").replaceAll("\n", "\\n")

/** A sample value as Prometheus reads it (`NaN`, `+Inf`, `-Inf` included). */
export const formatValue = (value: number): string =>
  Number.isNaN(value) ? "NaN" : value === Infinity ? "+Inf" : value === -Infinity ? "-Inf" : String(value)

interface Series {
  readonly labels: Record<string, string>
  /** `name{labels}`, escaped: the series' identity and the start of its line. */
  readonly head: string
  value: number
}

interface FamilyState {
  readonly name: string
  help: string | undefined
  type: MetricType | undefined
  readonly series: Map<string, Series>
}

/** The registry behind `Metrics.layer`; also usable directly (benchmarks, tests). */
export const make = () => {
  const families = new Map<string, FamilyState>()
  // Label names already checked: a scenario pushes the same few names over and over.
  const goodLabels = new Set<string>()
  let cached: string | undefined

  const fail = (name: unknown, message: string) => Effect.fail(CloudError.metric(String(name), message))

  const push = (sample: MetricSample): Effect.Effect<void, CloudError.CloudError> => {
    const { name, value } = sample
    const family = families.get(name)
    if (family === undefined) {
      const bad = checkName(name)
      if (bad !== undefined) return fail(name, bad)
    }
    if (typeof value !== "number") return fail(name, `the value ${JSON.stringify(value)} is not a number`)
    if (sample.type !== undefined && sample.type !== "counter" && sample.type !== "gauge") {
      return fail(name, `the type ${JSON.stringify(sample.type)} is not "counter" or "gauge"`)
    }
    if (family?.type !== undefined && sample.type !== undefined && family.type !== sample.type) {
      return fail(name, `it is a ${family.type}: it cannot also be pushed as a ${sample.type}`)
    }
    const labels = sample.labels ?? {}
    const keys = Object.keys(labels)
    let head = name
    if (keys.length > 0) {
      if (keys.length > 1) keys.sort()
      const parts: Array<string> = []
      for (const key of keys) {
        if (!goodLabels.has(key)) {
          const bad = checkLabel(key)
          if (bad !== undefined) return fail(name, bad)
          goodLabels.add(key)
        }
        const labelValue = labels[key]
        if (typeof labelValue !== "string") {
          return fail(name, `the value of label ${key} is not a string: ${JSON.stringify(labelValue)}`)
        }
        parts.push(`${key}="${escapeLabelValue(labelValue)}"`)
      }
      head = `${name}{${parts.join(",")}}`
    }
    return Effect.sync(() => {
      let state = family
      if (state === undefined) {
        state = { name, help: undefined, type: undefined, series: new Map() }
        families.set(name, state)
      }
      if (sample.type !== undefined) state.type = sample.type
      if (sample.help !== undefined && sample.help !== "") state.help = sample.help
      const series = state.series.get(head)
      if (series === undefined) state.series.set(head, { labels: { ...labels }, head, value })
      else series.value = value
      cached = undefined
    })
  }

  const renderNow = (): string => {
    if (cached !== undefined) return cached
    const lines: Array<string> = []
    for (const family of families.values()) {
      if (family.help !== undefined) lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`)
      if (family.type !== undefined) lines.push(`# TYPE ${family.name} ${family.type}`)
      for (const series of family.series.values()) lines.push(`${series.head} ${formatValue(series.value)}`)
    }
    cached = lines.length === 0 ? "" : lines.join("\n") + "\n"
    return cached
  }

  return Metrics.of({
    push,
    render: Effect.sync(renderNow),
    families: Effect.sync(() =>
      [...families.values()].map((f) => ({
        name: f.name,
        help: f.help,
        type: f.type,
        series: [...f.series.values()].map((s) => ({ labels: s.labels, value: s.value }))
      }))
    ),
    samples: Effect.sync(() =>
      [...families.values()].flatMap((f) =>
        [...f.series.values()].map((s) => ({
          name: f.name,
          value: s.value,
          labels: s.labels,
          help: f.help,
          type: f.type
        }))
      )
    )
  })
}
