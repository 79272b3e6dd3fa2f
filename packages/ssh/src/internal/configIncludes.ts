/**
 * An ssh config file with its `Include`s read in, as OpenSSH reads them: each argument a path (`~` expanded,
 * relative to `~/.ssh`) or a glob, its matches in sorted order, nested at most 16 deep, a missing file no config.
 * An `Include` inside a `Host` or `Match` block is read only when that block applies to the host (`applies`), and
 * the block's header is repeated after it, so the lines that follow stay in their block.
 *
 * **Details**
 *
 * The `Match` criteria the config reader does not evaluate (`exec`, `canonical`, `tagged`, `localnetwork`…) are
 * listed as one warning line each, naming the file and line: such a block is not applied.
 */
import * as fs from "node:fs"
import * as path from "node:path"

const maxDepth = 16

/** The `Match` criteria the reader evaluates. */
const evaluated = new Set(["all", "host", "originalhost", "user", "localuser", "final"])

export interface Expanded {
  /** The config's text, its `Include`s replaced by what they include. */
  readonly text: string
  /** One line per `Match` block that is not applied, naming its file and line. */
  readonly warnings: ReadonlyArray<string>
}

const directive = (line: string) => {
  const m = /^\s*([A-Za-z]+)(?:\s*=\s*|\s+)(.*?)\s*$/.exec(line)
  return m === null ? undefined : { keyword: m[1]!.toLowerCase(), value: m[2]! }
}

/** Space-separated words, a double-quoted one kept whole. */
const words = (value: string): Array<string> => [...value.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!)

/** A `Match` line's criteria keywords: each takes one argument, but `all`, `canonical` and `final`. */
const keywords = (args: ReadonlyArray<string>): Array<string> => {
  const found: Array<string> = []
  for (let i = 0; i < args.length; i++) {
    // A negated criterion (`!host`) is not evaluated by the reader: it is kept as written, so it is listed.
    const keyword = args[i]!.toLowerCase()
    found.push(keyword)
    if (!["all", "canonical", "final", "!all", "!canonical", "!final"].includes(keyword)) i++
  }
  return found
}

/**
 * `file` with its `Include`s read in. `applies(before, header)`: whether the block `header` opens, after the config
 * text `before`, applies to the host. Fails (with a message) on an unreadable file or an `Include` nested too deep.
 */
export const expand = (
  file: string,
  home: string,
  applies: (before: string, header: string) => boolean
): Expanded => {
  const out: Array<string> = []
  const warnings: Array<string> = []
  const read = (current: string, depth: number) => {
    let header: string | undefined
    fs.readFileSync(current, "utf8").split(/\r?\n/).forEach((line, index) => {
      const d = directive(line)
      const where = `${current}:${index + 1}`
      if (d?.keyword === "host" || d?.keyword === "match") header = line
      if (d?.keyword === "match") {
        const criteria = keywords(words(d.value))
        const skipped = criteria.filter((c) => !evaluated.has(c))
        if (skipped.length > 0) {
          warnings.push(
            `${where}: this Match block is not applied (${skipped.join(", ")} is not evaluated): ` +
              `put what it sets in a Host block, or in a file given with --ssh-config`
          )
        }
      }
      if (d?.keyword !== "include") {
        out.push(line)
        return
      }
      if (depth >= maxDepth) throw new Error(`${where}: Include nested more than ${maxDepth} deep`)
      if (header !== undefined && !applies(out.join("\n"), header)) return
      for (const word of words(d.value)) {
        const pattern = word.replace(/^~(?=\/|$)/, home)
        const absolute = path.isAbsolute(pattern) ? pattern : path.join(home, ".ssh", pattern)
        for (const match of fs.globSync(absolute).toSorted()) {
          if (fs.statSync(match).isFile()) read(match, depth + 1)
        }
      }
      // Back in the including block (or, outside any, in one that always applies).
      out.push(header ?? "Match all")
    })
  }
  read(file, 0)
  return { text: out.join("\n"), warnings }
}
