/**
 * "Did you mean …?": the known name closest to a mistyped one (a config-file key, a group), by the number of
 * letters inserted, removed, changed or swapped, ignoring case and `-`/`_`. Only close names are suggested: at most
 * two edits, and fewer than a third of the word.
 */

/** Edits (insert, delete, substitute, swap two adjacent letters) that turn `a` into `b`. */
export const distance = (a: string, b: string): number => {
  const rows: Array<Array<number>> = Array.from(
    { length: a.length + 1 },
    (_row, i) => Array.from({ length: b.length + 1 }, (_column, j) => (i === 0 ? j : j === 0 ? i : 0))
  )
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let best = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, rows[i - 2]![j - 2]! + 1)
      }
      rows[i]![j] = best
    }
  }
  return rows[a.length]![b.length]!
}

const normal = (name: string) => name.toLowerCase().replaceAll(/[-_]/g, "")

/** The name of `known` closest to `word`, when one is close enough to be what was meant. */
export const closest = (word: string, known: ReadonlyArray<string>): string | undefined => {
  const target = normal(word)
  const limit = Math.min(2, Math.floor(target.length / 3))
  let best: { readonly name: string; readonly edits: number } | undefined
  for (const name of known) {
    const edits = distance(target, normal(name))
    if (edits <= limit && (best === undefined || edits < best.edits)) best = { name, edits }
  }
  return best?.name
}

/** ` (did you mean "name"?)` for the closest known name, or nothing. */
export const didYouMean = (word: string, known: ReadonlyArray<string>): string => {
  const name = closest(word, known)
  return name === undefined ? "" : ` (did you mean "${name}"?)`
}
