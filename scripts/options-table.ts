/**
 * Prints the README's option table from `CloudConfig.options`, the single source of the options. The README test
 * fails when the README's copy differs: run `sh scripts/with-node.sh node scripts/options-table.ts` and paste.
 */
import { CloudConfig } from "@tezt-cloud/core"

export const optionsTable = (): string => {
  const rows = CloudConfig.options.map((o) => {
    const negation = o.kind !== "flag" || o.negation === null ? "" : ` / \`--${o.negation ?? `no-${o.flag}`}\``
    const aliases = (o.aliases ?? []).map((a) => ` (\`--${a}\`)`).join("")
    const value = o.kind === "flag"
      ? ""
      : o.kind === "strings"
      ? " V (repeatable)"
      : o.choices
      ? ` ${o.choices.join("\\|")}`
      : o.kind === "int"
      ? " N"
      : " V"
    const key = o.key === undefined ? "CLI only" : `\`${o.key}\``
    return `| \`--${o.flag}\`${value}${negation}${aliases} | ${key} | ${o.default} | ${o.description} |`
  })
  return ["| option | config-file key | default | meaning |", "| --- | --- | --- | --- |", ...rows].join("\n")
}

if (import.meta.main) process.stdout.write(optionsTable() + "\n")
