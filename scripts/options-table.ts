/**
 * Prints the README's option tables from `CloudConfig.options`, the single source of the options: one for the
 * options any run may read, then one per backend for the options it owns. The README test fails when the
 * README's copy differs: run `sh scripts/with-node.sh node scripts/options-table.ts` and paste.
 */
import { CloudConfig } from "@tezt-cloud/core"

const row = (o: CloudConfig.OptionSpec) => {
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
}

const table = (rows: ReadonlyArray<CloudConfig.OptionSpec>) =>
  ["| option | config-file key | default | meaning |", "| --- | --- | --- | --- |", ...rows.map(row)].join("\n")

export const optionsTable = (): string => {
  const tags = Object.keys(CloudConfig.backendTags) as ReadonlyArray<CloudConfig.BackendTag>
  return [
    table(CloudConfig.options.filter((o) => o.backend === undefined)),
    ...tags.map((tag) =>
      `Options of ${CloudConfig.backendTags[tag]}, tagged \`[${tag}]\` in \`--help\`:\n\n${
        table(CloudConfig.options.filter((o) => o.backend === tag))
      }`
    )
  ].join("\n\n")
}

if (import.meta.main) process.stdout.write(optionsTable() + "\n")
