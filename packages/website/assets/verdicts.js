// The verdicts panel: the scenario's success criteria as last judged (live while the scenario runs, then the final
// table), from the run's model that app.js fetches and hands out as the "tezt-cloud:run" event.
"use strict"
;(() => {
  const colours = { met: "#16a34a", failed: "#dc2626", pending: "#6b7280" }

  const cell = (tag, text, className) => {
    const element = document.createElement(tag)
    if (className !== undefined) {
      const code = document.createElement("code")
      code.textContent = text
      element.append(code)
      element.className = className
    } else element.textContent = text
    element.style.textAlign = "left"
    element.style.padding = "0.15rem 1.5rem 0.15rem 0"
    return element
  }

  const labels = (series) =>
    Object.entries(series).filter(([k]) => k !== "__name__").map(([k, v]) => `${k}="${v}"`).join(", ")

  const observed = (v) =>
    v.observed === undefined
      ? `(${v.reason ?? "none"})`
      : `${v.observed}${v.series === undefined ? "" : ` {${labels(v.series)}}`}`

  const render = (judged) => {
    const panel = document.getElementById("verdicts")
    if (panel === null || judged === undefined || judged === null) return
    const caption = document.createElement("p")
    const failed = judged.verdicts.filter((v) => v.status === "failed").length
    caption.className = "summary"
    caption.textContent = judged.final
      ? `Judged when the scenario ended: ${judged.verdicts.length - failed} met, ${failed} failed.`
      : "Judged while the scenario runs (the final verdicts come when it ends)."
    const table = document.createElement("table")
    table.className = "verdicts"
    const head = document.createElement("tr")
    for (const title of ["Criterion", "Expression", "Observed", "Threshold", "Verdict"]) head.append(cell("th", title))
    const rows = judged.verdicts.map((v) => {
      const row = document.createElement("tr")
      row.dataset.criterion = v.name
      row.dataset.status = v.status
      const status = cell("td", v.status === "failed" && v.reason !== undefined ? `failed (${v.reason})` : v.status)
      status.className = "status"
      status.style.color = colours[v.status] ?? ""
      status.style.fontWeight = "bold"
      row.append(
        cell("td", v.name),
        cell("td", v.expression, "expression"),
        cell("td", observed(v)),
        cell("td", `${v.comparison} ${v.threshold}`),
        status
      )
      return row
    })
    table.append(head, ...rows)
    panel.dataset.final = String(judged.final)
    panel.replaceChildren(caption, table)
  }

  document.addEventListener("tezt-cloud:run", (event) => render(event.detail.verdicts))
})()
