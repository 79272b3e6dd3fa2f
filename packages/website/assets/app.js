// The run's page, kept live: the events from /api/run every 2 s, and each chart from Prometheus' query API
// (through the website's /api/prometheus proxy) every scrape interval. uPlot draws the charts; no framework.
"use strict"
;(() => {
  const palette = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"]
  const windowSeconds = 15 * 60

  const describe = (e) => {
    switch (e.type) {
      case "run-start":
        return `run of "${e.scenario}" on ${e.backend}`
      case "deploy-start":
        return `deploying ${e.total} agent(s)`
      case "agent-ready":
        return `agent ${e.agent} ready (${e.ready}/${e.total})`
      case "deploy-done":
        return `${e.total} agent(s) deployed in ${e.millis} ms`
      case "exec":
        return `${e.agent}: $ ${e.command}`
      case "exit":
        return `${e.agent}: ${e.command} exited with ${e.exitCode}`
      case "output":
        return `${e.agent} ${e.stream}: ${e.line}`
      case "daemon-up":
        return `${e.agent}: daemon ${e.name} up (pid ${e.pid})`
      case "daemon-down":
        return `${e.agent}: daemon ${e.name} down`
      case "log":
        return e.message
      case "teardown-start":
        return "teardown"
      case "agent-down":
        return `agent ${e.agent} down (${e.down}/${e.total})`
      case "teardown-failed":
        return `teardown step ${e.step} failed: ${e.message}`
      case "run-end":
        return e.message
      case "verdict":
        return `criterion ${e.verdict.name}: ${e.verdict.observed ?? e.verdict.reason} (${e.verdict.status})`
      case "verdicts":
        return `verdicts: ${e.verdicts.map((v) => `${v.name} ${v.status}`).join(", ")}`
      default:
        return e.type
    }
  }

  const eventList = document.getElementById("event-list")
  const refreshEvents = async () => {
    const run = await (await fetch("/api/run")).json()
    // Panels in their own files (verdicts.js, …) render their part of the model from this event.
    document.dispatchEvent(new CustomEvent("tezt-cloud:run", { detail: run }))
    const items = run.events.toReversed().map((e) => {
      const li = document.createElement("li")
      li.dataset.type = e.type
      const time = document.createElement("time")
      time.textContent = new Date(e.at).toLocaleTimeString()
      li.append(time, " ", describe(e))
      // A failed scenario's trace: the error's frames and the spans it crossed, the scenario's own lines among them.
      if (e.type === "run-end" && typeof e.trace === "string") {
        const trace = document.createElement("pre")
        trace.className = "trace"
        trace.textContent = e.trace
        li.append(trace)
      }
      return li
    })
    eventList.replaceChildren(...items)
  }

  // A series is named by the labels that tell it from the others (job and instance are often the same for all).
  const labelsOf = (result) => {
    const keys = [...new Set(result.flatMap((s) => Object.keys(s.metric)))].filter((k) => k !== "__name__")
    const varying = keys.filter((k) => new Set(result.map((s) => s.metric[k])).size > 1)
    const shown = varying.length > 0 ? varying : keys
    return result.map((s) => shown.map((k) => `${k}=${s.metric[k] ?? ""}`).join(", ") || (s.metric.__name__ ?? "value"))
  }

  // Query results to uPlot's columns: one shared time axis, one column per series (null where it has no sample).
  const toColumns = (result) => {
    const times = [...new Set(result.flatMap((s) => s.values.map(([t]) => t)))].toSorted((a, b) => a - b)
    const index = new Map(times.map((t, i) => [t, i]))
    const columns = result.map((s) => {
      const column = Array.from(times, () => null)
      for (const [t, v] of s.values) column[index.get(t)] = Number(v)
      return column
    })
    return [times, ...columns]
  }

  const plots = new Map()
  const chartsEl = document.getElementById("charts")
  const step = Math.max(1, Number(chartsEl?.dataset.scrapeInterval ?? 5))

  const refreshChart = async (figure) => {
    const end = Math.floor(Date.now() / 1000)
    const params = new URLSearchParams({
      query: figure.dataset.query,
      start: String(end - windowSeconds),
      end: String(end),
      step: String(step)
    })
    const response = await fetch(`/api/prometheus/query_range?${params}`)
    const body = await response.json()
    if (body.status !== "success") {
      figure.dataset.error = body.error ?? String(response.status)
      return
    }
    delete figure.dataset.error
    const result = body.data.result
    const data = toColumns(result)
    const names = labelsOf(result)
    const labels = names.join("\n")
    let plot = plots.get(figure.id)
    if (plot !== undefined && plot.labels !== labels) {
      plot.chart.destroy()
      plot = undefined
    }
    if (plot === undefined) {
      const target = figure.querySelector(".plot")
      const options = {
        width: Math.max(300, target.clientWidth),
        height: 220,
        scales: { x: { time: true } },
        series: [
          {},
          ...names.map((name, i) => ({
            label: name,
            stroke: palette[i % palette.length],
            width: 2,
            spanGaps: true
          }))
        ]
      }
      plot = { chart: new uPlot(options, data, target), labels }
      plots.set(figure.id, plot)
    } else {
      plot.chart.setData(data)
    }
    figure.dataset.series = String(result.length)
    figure.dataset.points = String(data.slice(1).reduce((n, column) => n + column.filter((v) => v !== null).length, 0))
  }

  const refreshCharts = () =>
    Promise.all([...document.querySelectorAll("figure.chart")].map((f) => refreshChart(f).catch(() => undefined)))

  const loop = (f, millis) => {
    const tick = () => f().catch(() => undefined).finally(() => setTimeout(tick, millis))
    tick()
  }
  loop(refreshEvents, 2000)
  if (chartsEl) loop(refreshCharts, step * 1000)
})()
