/**
 * Output as lines in bounded memory: lines split across chunks, `\r\n`, a last line without newline, characters
 * split between chunks; a line longer than the bound comes in pieces, cut between characters, that join back to
 * the line, delivered as the output arrives (never held whole).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { OutputLines } from "../src/index.ts"

const collect = (chunks: ReadonlyArray<string | Uint8Array>, max?: number) => {
  const lines: Array<string> = []
  const split = OutputLines.splitter((line) => lines.push(line), max)
  for (const chunk of chunks) split(typeof chunk === "string" ? Buffer.from(chunk) : chunk)
  split.end()
  return lines
}

describe("OutputLines", () => {
  it("lines across chunks, \\r\\n, empty lines, a last line without newline", () => {
    assert.deepStrictEqual(collect(["a\nb", "c\r\n\n", "d\re\n", "last"]), ["a", "bc", "", "d\re", "last"])
    assert.deepStrictEqual(collect(["x\n"]), ["x"])
    assert.deepStrictEqual(collect([]), [])
  })

  it("a character split between two chunks is decoded whole", () => {
    const bytes = Buffer.from("héllo ✓\n")
    assert.deepStrictEqual(collect([bytes.subarray(0, 2), bytes.subarray(2, 9), bytes.subarray(9)]), ["héllo ✓"])
  })

  it("a line of exactly the bound is one line; one byte more is two pieces", () => {
    assert.deepStrictEqual(collect(["12345678\n"], 8), ["12345678"])
    assert.deepStrictEqual(collect(["123456789\n"], 8), ["12345678", "9"])
    assert.deepStrictEqual(collect(["1234", "5678", "9abcdefgh", "ijk\nz"], 8), ["12345678", "9abcdefg", "hijk", "z"])
    // Short lines around a long one, in one chunk and across chunks.
    assert.deepStrictEqual(collect(["ab\n123456789012\ncd\n"], 8), ["ab", "12345678", "9012", "cd"])
    assert.deepStrictEqual(collect(["x", "y\nab\n123456789012\ncd\ne", "f\r", "\n"], 8), [
      "xy",
      "ab",
      "12345678",
      "9012",
      "cd",
      "ef"
    ])
  })

  it("pieces are cut between UTF-8 characters, and join back to the line", () => {
    const line = "é✓😀".repeat(50)
    for (const max of [5, 6, 7, 8, 9]) {
      const pieces = collect([line, "\n"], max)
      assert.strictEqual(pieces.join(""), line, `max ${max}`)
      for (const piece of pieces) {
        assert.isAtMost(Buffer.byteLength(piece), max)
        assert.notInclude(piece, "\uFFFD")
      }
    }
  })

  it("output without newlines is delivered in pieces as it arrives: never more than the bound is held", () => {
    const lines: Array<string> = []
    const split = OutputLines.splitter((line) => lines.push(line))
    const chunk = Buffer.alloc(64 * 1024, "x")
    for (let i = 0; i < 40; i++) split(chunk)
    // 2.5 MiB in: two pieces of 1 MiB out already, the rest (0.5 MiB) waits for more.
    assert.deepStrictEqual(lines.map((l) => l.length), [1024 * 1024, 1024 * 1024])
    split(Buffer.from("\n"))
    assert.deepStrictEqual(lines.map((l) => l.length), [1024 * 1024, 1024 * 1024, 512 * 1024])
  })

  it.effect("split: the same on a stream of bytes", () =>
    Effect.gen(function*() {
      const lines = yield* Stream.make(Buffer.from("ab"), Buffer.from("c\r\nxyz123"), Buffer.from("45\nend")).pipe(
        OutputLines.split(4),
        Stream.runCollect
      )
      assert.deepStrictEqual(lines, ["abc", "xyz1", "2345", "end"])
    }))
})
