/**
 * The `filter` of Compute's list and aggregatedList calls, over a resource's JSON: comparisons
 * `field = value`, `field != value`, `field : value` (`:*` tests presence), the regular-expression forms
 * `field eq re` / `field ne re`, joined by `AND` (or juxtaposition) and `OR`, with parentheses. `OR` binds
 * tighter than `AND`, as in Google's list filters. Field paths are dotted: `labels.owner`, `status`,
 * `scheduling.automaticRestart`.
 *
 * Equality is exact: `labels.ns = x` never matches `xy`.
 */

export type Predicate = (resource: unknown) => boolean

type Token =
  | { readonly kind: "open" | "close" | "and" | "or" | "not" }
  | { readonly kind: "word"; readonly text: string; readonly quoted: boolean }
  | { readonly kind: "op"; readonly op: "=" | "!=" | ":" | "eq" | "ne" }

const tokenize = (text: string): Array<Token> => {
  const tokens: Array<Token> = []
  let i = 0
  while (i < text.length) {
    const c = text[i]!
    if (/\s/.test(c)) {
      i++
    } else if (c === "(" || c === ")") {
      tokens.push({ kind: c === "(" ? "open" : "close" })
      i++
    } else if (c === "!" && text[i + 1] === "=") {
      tokens.push({ kind: "op", op: "!=" })
      i += 2
    } else if (c === "=" || c === ":") {
      tokens.push({ kind: "op", op: c })
      i++
    } else if (c === "\"" || c === "'") {
      let j = i + 1
      let value = ""
      while (j < text.length && text[j] !== c) {
        if (text[j] === "\\" && j + 1 < text.length) j++
        value += text[j]
        j++
      }
      if (j >= text.length) throw new Error("unterminated quote")
      tokens.push({ kind: "word", text: value, quoted: true })
      i = j + 1
    } else {
      let j = i
      while (j < text.length && !/[\s()=:!]/.test(text[j]!)) j++
      if (j === i) throw new Error(`unexpected '${c}'`)
      const word = text.slice(i, j)
      const upper = word.toUpperCase()
      if (word === "AND") tokens.push({ kind: "and" })
      else if (word === "OR") tokens.push({ kind: "or" })
      else if (word === "NOT") tokens.push({ kind: "not" })
      else if (upper === "EQ" || upper === "NE") tokens.push({ kind: "op", op: upper === "EQ" ? "eq" : "ne" })
      else tokens.push({ kind: "word", text: word, quoted: false })
      i = j
    }
  }
  return tokens
}

/** The value at a dotted path of a JSON resource. */
const lookup = (resource: unknown, path: string): unknown => {
  let value: unknown = resource
  for (const part of path.split(".")) {
    if (typeof value !== "object" || value === null) return undefined
    value = (value as Record<string, unknown>)[part]
  }
  return value
}

const text = (value: unknown): ReadonlyArray<string> =>
  value === undefined || value === null
    ? []
    : Array.isArray(value)
    ? value.flatMap(text)
    : typeof value === "object"
    ? []
    : [String(value)]

const compare = (field: string, op: Token & { kind: "op" }, expected: string): Predicate => {
  switch (op.op) {
    case "=":
      return (r) => text(lookup(r, field)).includes(expected)
    case "!=":
      return (r) => !text(lookup(r, field)).includes(expected)
    case ":":
      return expected === "*"
        ? (r) => lookup(r, field) !== undefined
        : (r) => text(lookup(r, field)).includes(expected)
    case "eq":
    case "ne": {
      const re = new RegExp(`^(?:${expected})$`)
      return op.op === "eq"
        ? (r) => text(lookup(r, field)).some((v) => re.test(v))
        : (r) => !text(lookup(r, field)).some((v) => re.test(v))
    }
  }
}

/** Parses a filter; throws an `Error` saying what is wrong. The empty filter keeps everything. */
export const parse = (filter: string): Predicate => {
  const tokens = tokenize(filter)
  let at = 0
  const peek = () => tokens[at]
  const next = () => tokens[at++]

  // sequence := factor ((AND)? factor)* ; factor := unary (OR unary)* ; unary := NOT? primary
  const sequence = (): Predicate => {
    const parts: Array<Predicate> = [factor()]
    for (;;) {
      const t = peek()
      if (t === undefined || t.kind === "close") break
      if (t.kind === "and") next()
      parts.push(factor())
    }
    return (r) => parts.every((p) => p(r))
  }
  const factor = (): Predicate => {
    const parts: Array<Predicate> = [unary()]
    while (peek()?.kind === "or") {
      next()
      parts.push(unary())
    }
    return parts.length === 1 ? parts[0]! : (r) => parts.some((p) => p(r))
  }
  const unary = (): Predicate => {
    if (peek()?.kind === "not") {
      next()
      const inner = primary()
      return (r) => !inner(r)
    }
    return primary()
  }
  const primary = (): Predicate => {
    const t = next()
    if (t === undefined) throw new Error("the expression ends too early")
    if (t.kind === "open") {
      const inner = sequence()
      if (next()?.kind !== "close") throw new Error("missing ')'")
      return inner
    }
    if (t.kind !== "word" || t.quoted) throw new Error("expected a field name")
    const op = next()
    if (op?.kind !== "op") throw new Error(`expected a comparison after '${t.text}'`)
    const value = next()
    if (value?.kind !== "word") throw new Error(`expected a value after '${t.text} ${op.op}'`)
    return compare(t.text, op, value.text)
  }

  if (tokens.length === 0) return () => true
  const predicate = sequence()
  if (at < tokens.length) throw new Error("unexpected ')'")
  return predicate
}
