// The run as a timeline (`--open-telemetry`): the tool's own spans from /api/run every 2 s, one lane for the run
// itself and one per agent, each span a bar from its start to its end (to now while it runs), overlapping spans
// on rows of their own. Plain DOM, no library.
"use strict"
;(() => {
  const root = document.getElementById("timeline")
  if (!root) return
  const maxRows = 12

  const style = document.createElement("style")
  style.textContent = `
#timeline .lane { display: flex; border-top: 1px solid var(--line, #e5e7eb); }
#timeline .lane-name { width: 9rem; flex: none; padding: 0.2rem 0.5rem 0 0; color: var(--muted, #6b7280);
  overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
#timeline .rows { position: relative; flex: 1; }
#timeline .row { position: relative; height: 1.3rem; }
#timeline .span { position: absolute; top: 0.15rem; height: 1rem; min-width: 2px; border-radius: 2px;
  background: #93c5fd; font-size: 0.7rem; line-height: 1rem; overflow: hidden; white-space: nowrap;
  box-sizing: border-box; padding: 0 2px; }
#timeline .span[data-status=error] { background: #fca5a5; }
#timeline .span[data-status=interrupted] { background: #fde68a; }
#timeline .span[data-status=running] { background: #a7f3d0; }
#timeline .axis { display: flex; justify-content: space-between; margin-left: 9rem; color: var(--muted, #6b7280);
  font-size: 0.75rem; }
`
  document.head.append(style)

  // A span's lane: its agent's, else its parent's (a backend's work under an agent's command), else the run's.
  const lanesOf = (spans) => {
    const lanes = new Map()
    for (const s of spans) {
      const own = typeof s.attributes.agent === "string" ? s.attributes.agent : undefined
      lanes.set(s.spanId, own ?? lanes.get(s.parentSpanId) ?? "run")
    }
    return lanes
  }

  // Interval packing: each span on the first row whose last span ended before it starts.
  const pack = (spans) => {
    const rows = []
    for (const s of spans) {
      const row = rows.find((r) => r.end <= s.start) ?? (rows.length < maxRows ? undefined : rows[rows.length - 1])
      if (row === undefined) rows.push({ end: s.stop, spans: [s] })
      else {
        row.spans.push(s)
        row.end = Math.max(row.end, s.stop)
      }
    }
    return rows
  }

  const seconds = (ms) => `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`

  const render = (records) => {
    const now = Date.now()
    const spans = records.map((s) => ({ ...s, stop: s.end ?? now })).toSorted((a, b) => a.start - b.start)
    root.dataset.spans = String(spans.length)
    if (spans.length === 0) {
      root.replaceChildren("No span yet.")
      return
    }
    const t0 = spans[0].start
    const t1 = Math.max(...spans.map((s) => s.stop), t0 + 1)
    const pct = (t) => `${((100 * (t - t0)) / (t1 - t0)).toFixed(3)}%`
    const laneOf = lanesOf(spans)
    const lanes = new Map([["run", []]])
    for (const s of spans) {
      const lane = laneOf.get(s.spanId)
      if (!lanes.has(lane)) lanes.set(lane, [])
      lanes.get(lane).push(s)
    }
    const laneEls = [...lanes].filter(([, list]) => list.length > 0).map(([name, list]) => {
      const lane = document.createElement("div")
      lane.className = "lane"
      lane.dataset.lane = name
      const label = document.createElement("div")
      label.className = "lane-name"
      label.textContent = name
      const rows = document.createElement("div")
      rows.className = "rows"
      for (const row of pack(list)) {
        const rowEl = document.createElement("div")
        rowEl.className = "row"
        for (const s of row.spans) {
          const bar = document.createElement("div")
          bar.className = "span"
          bar.dataset.name = s.name
          bar.dataset.status = s.status
          if (name !== "run") bar.dataset.agent = name
          bar.style.left = pct(s.start)
          bar.style.width = `calc(${pct(s.stop)} - ${pct(s.start)})`
          const what = typeof s.attributes.command === "string" ? ` ${s.attributes.command}` : ""
          bar.textContent = `${s.name}${what}`
          bar.title = `${s.name}${what}\n${seconds(s.stop - s.start)}${s.end === undefined ? " so far" : ""}, ` +
            `${s.status}${s.error ? `: ${s.error}` : ""}\n${JSON.stringify(s.attributes)}`
          rowEl.append(bar)
        }
        rows.append(rowEl)
      }
      lane.append(label, rows)
      return lane
    })
    const axis = document.createElement("div")
    axis.className = "axis"
    axis.append(...[0, 0.25, 0.5, 0.75, 1].map((f) => {
      const tick = document.createElement("span")
      tick.textContent = seconds(f * (t1 - t0))
      return tick
    }))
    root.replaceChildren(...laneEls, axis)
  }

  const refresh = async () => {
    const run = await (await fetch("/api/run")).json()
    if (Array.isArray(run.spans)) render(run.spans)
  }
  const tick = () => refresh().catch(() => undefined).finally(() => setTimeout(tick, 2000))
  tick()
})()
