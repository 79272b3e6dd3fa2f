/**
 * What the run's website shows, as Tezt cloud's does: every agent's configuration and registered binaries, the
 * commands to reach it, the monitoring links (with "disabled, use --x" hints), charts of the pushed metrics and
 * agent health, the verdicts on the scenario's success criteria, and the run's events. One model feeds both the
 * HTML page and `/api/run`.
 */
import { type Agent, Criteria, type RunEvents, type Telemetry } from "@tezt-cloud/core"
import type { RunMonitor } from "@tezt-cloud/monitoring"
import { Effect } from "effect"

/**
 * An agent's configuration as its backend uses it: machine type, disk, OS and maximum run duration only where
 * agents are VMs (GCP; in-memory test agents show every field), the image only where agents run one (containers,
 * VMs); process sandboxes (local or on an ssh host) have neither.
 */
export interface AgentModel {
  readonly name: string
  /** The backend of the agent, as its descriptor names it (`localhost`, `docker`, `ssh-host`, `gcp`…). */
  readonly backend: string
  readonly machineType?: string
  readonly disk?: string
  readonly image?: string
  readonly maxRunDuration?: string
  readonly binariesPath: string
  readonly os?: string
  readonly ports: string
  readonly binaries: ReadonlyArray<string>
  /** A command that opens a shell on the agent. */
  readonly connect: string
}

/** A chart: a PromQL query over the last minutes, one line per series. */
export interface Chart {
  readonly id: string
  readonly title: string
  readonly query: string
  /** What fills the chart when it may stay empty. */
  readonly hint?: string
}

export interface Model {
  readonly namespace: string
  readonly scenario: string | undefined
  readonly backend: string | undefined
  readonly agents: ReadonlyArray<AgentModel>
  readonly links: ReadonlyArray<RunMonitor.Link>
  /** Charts need Prometheus; `undefined` when it is off. */
  readonly charts: ReadonlyArray<Chart> | undefined
  readonly scrapeInterval: number
  readonly events: ReadonlyArray<RunEvents.Stamped>
  /** The latest verdicts on the success criteria (`verdicts.js` shows them), once one is judged. */
  readonly verdicts?: ReturnType<typeof Criteria.latest>
  /** The tool's own spans for the timeline (assets/timeline.js), with `--open-telemetry` only. */
  readonly spans?: ReadonlyArray<Telemetry.SpanRecord> | undefined
}

/** How many events `/api/run` and the page carry. */
export const eventsShown = 300

/** How many spans (the most recent) `/api/run` carries for the timeline. */
export const spansShown = 1000

/** The backends whose agents are VMs, and those whose agents run an image (see `AgentModel`). */
const vmBackends = new Set(["gcp", "none"])
const imageBackends = new Set(["gcp", "none", "docker"])

export const agentModel = (agent: Agent.Agent, binaries: ReadonlyArray<string>): AgentModel => {
  const c = agent.config
  const d = agent.descriptor
  const backend = d.backend === "proxy" && typeof d.inner === "string" ? d.inner : d.backend
  const vm = vmBackends.has(backend)
  return {
    name: agent.name,
    backend,
    ...(vm
      ? {
        machineType: c.machineType,
        disk: `${c.diskType ?? "default type"}, ${c.diskSizeGb === undefined ? "default size" : `${c.diskSizeGb} GB`}`,
        maxRunDuration: c.maxRunDuration === undefined ? "no limit" : `${c.maxRunDuration}s`,
        os: c.os
      }
      : {}),
    ...(imageBackends.has(backend)
      ? { image: c.dockerImage._tag === "OctezRelease" ? `Octez ${c.dockerImage.tag} release` : c.dockerImage.alias }
      : {}),
    binariesPath: c.binariesPath,
    ports: `${agent.ports.start}–${agent.ports.end}`,
    binaries,
    connect: agent.connect
  }
}

/** The charts of the run: one per pushed metric family, plus scrape health and the exporters'. */
const charts = (view: RunMonitor.View, families: ReadonlyArray<{ readonly name: string }>): Array<Chart> => [
  ...families.map((f) => ({ id: `metric-${f.name}`, title: f.name, query: f.name })),
  { id: "health-up", title: "Targets up (1) or down (0), per job and instance", query: "up" },
  ...(view.config.monitoring
    ? [{
      id: "health-cpu",
      title: "CPU used (%), per agent (netdata)",
      query: "sum by (app) (netdata_system_cpu_percentage_average{dimension!=\"idle\"})"
    }]
    : []),
  ...(view.config.processMonitoring
    ? [{
      id: "health-process-cpu",
      title: "CPU of registered binaries (cores), per agent",
      query: "sum by (app, groupname) (rate(namedprocess_namegroup_cpu_seconds_total[1m]))",
      hint: "Empty until the scenario registers a binary (Cloud.registerBinary) whose processes run on an agent."
    }]
    : [])
]

/** The model of the page, from the stack's view and the run's recent events. */
export const model = (view: RunMonitor.View, events: ReadonlyArray<RunEvents.Stamped>) =>
  Effect.gen(function*() {
    const binaries = yield* view.binaries
    const families = yield* view.metrics.families
    const start = events.findLast((e) => e.type === "run-start")
    return {
      namespace: view.config.namespace,
      scenario: start?.type === "run-start" ? start.scenario : undefined,
      backend: start?.type === "run-start" ? start.backend : undefined,
      agents: view.agents.map((a) => agentModel(a, binaries.get(a.name) ?? [])),
      links: yield* view.links,
      charts: view.config.prometheus ? charts(view, families) : undefined,
      scrapeInterval: view.config.prometheusScrapeInterval,
      events: events.slice(-eventsShown),
      verdicts: Criteria.latest(events),
      ...(view.spans === undefined ? {} : { spans: (yield* view.spans).slice(-spansShown) })
    } satisfies Model
  })

export const escape = (text: string): string =>
  text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll("\"", "&quot;")
    .replaceAll("'", "&#39;")

const row = (label: string, value: string | undefined) =>
  value === undefined ? "" : `<tr><th>${escape(label)}</th><td>${escape(value)}</td></tr>\n`

const agentSection = (a: AgentModel) =>
  `<article class="agent" data-agent="${escape(a.name)}">
<h3>${escape(a.name)}</h3>
<table>
${row("Backend", a.backend)}${row("Machine type", a.machineType)}${row("Disk", a.disk)}${row("Image", a.image)}${
    row("Max run duration", a.maxRunDuration)
  }${row("Binaries path", a.binariesPath)}${row("OS", a.os)}${
    row("Ports", a.ports)
  }<tr><th>Registered binaries</th><td class="binaries">${
    a.binaries.length === 0 ? "none" : a.binaries.map((b) => `<code>${escape(b)}</code>`).join(" ")
  }</td></tr>
</table>
</article>`

const linkItem = (link: RunMonitor.Link) =>
  "url" in link
    ? `<li data-link="${escape(link.name)}"><a href="${escape(link.url)}">${escape(link.name)}</a> <code>${
      escape(link.url)
    }</code></li>`
    : `<li data-link="${escape(link.name)}" class="disabled">${escape(link.disabled)}</li>`

const connectItem = (a: AgentModel) =>
  `<li><h3>${escape(a.name)}</h3><pre class="command"><code>${escape(a.connect)}</code></pre></li>`

const chartsSection = (m: Model) =>
  m.charts === undefined
    ? `<p class="disabled">Charts need Prometheus. Use --prometheus to activate it.</p>`
    : `<div id="charts" data-scrape-interval="${m.scrapeInterval}">${
      m.charts.map((c) =>
        `<figure class="chart" id="${escape(c.id)}" data-query="${escape(c.query)}" data-points="0">` +
        `<figcaption>${escape(c.title)}</figcaption>` +
        (c.hint === undefined ? "" : `<p class="hint">${escape(c.hint)}</p>`) +
        `<div class="plot"></div></figure>`
      ).join("\n")
    }</div>`

/** The HTML page; the script keeps its charts and events live. */
export const render = (m: Model): string =>
  `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tezt-cloud ${escape(m.namespace)}</title>
<link rel="stylesheet" href="/assets/uPlot.min.css">
<link rel="stylesheet" href="/assets/style.css">
</head>
<body>
<nav><strong>tezt-cloud</strong> <span id="namespace">${escape(m.namespace)}</span>
<a href="#configurations">Configurations</a> <a href="#monitoring">Monitoring</a> <a href="#charts-section">Charts</a>
<a href="#verdicts-section">Verdicts</a> <a href="#timeline-section">Timeline</a> <a href="#debugging">Debugging</a> <a href="#events">Events</a> <a href="/metrics">/metrics</a></nav>
<main>
<header><h1>${escape(m.scenario ?? "tezt-cloud run")}</h1>
<p>Namespace <code>${escape(m.namespace)}</code>${
    m.backend === undefined ? "" : `, agents are ${escape(m.backend)}`
  }, ${m.agents.length} agent${m.agents.length === 1 ? "" : "s"}.</p></header>
<section id="configurations"><h2>Configurations</h2>
${m.agents.map(agentSection).join("\n")}
</section>
<section id="monitoring"><h2>Monitoring</h2>
<ul class="links">
${m.links.map(linkItem).join("\n")}
<li data-link="metrics"><a href="/metrics">Pushed metrics</a> (Prometheus text format)</li>
</ul>
</section>
<section id="charts-section"><h2>Charts</h2>
${chartsSection(m)}
</section>
<section id="verdicts-section"><h2>Verdicts</h2>
<div id="verdicts"><p class="hint">No success criterion judged yet (Cloud.addCriterion).</p></div>
</section>
<section id="timeline-section"><h2>Timeline</h2>
${
    m.spans === undefined
      ? `<p class="disabled">The timeline shows the tool's own spans. Use --open-telemetry to activate it.</p>`
      : `<div id="timeline" data-spans="0"></div>`
  }
</section>
<section id="debugging"><h2>Debugging</h2>
<p>Open a shell on an agent:</p>
<ul class="commands">
${m.agents.map(connectItem).join("\n")}
</ul>
</section>
<section id="events"><h2>Events</h2>
<ol id="event-list" reversed></ol>
</section>
</main>
<script src="/assets/uPlot.iife.min.js"></script>
<script src="/assets/verdicts.js"></script>
<script src="/assets/app.js"></script>
<script src="/assets/timeline.js"></script>
</body>
</html>
`
