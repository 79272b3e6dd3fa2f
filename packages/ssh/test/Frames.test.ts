/**
 * The executor's frames as read from the host, which is not trusted: frames split anywhere are read whole, and
 * the first frame that is not one (unknown type, a length past its type's bound, a pid or code that is not one)
 * ends the stream with a reason, before anything is kept for its payload.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Frames from "../src/internal/frames.ts"

const read = (chunks: ReadonlyArray<Buffer>) => {
  const frames: Array<string> = []
  const corrupt: Array<string> = []
  const parse = Frames.parser(
    (type, id, payload) => frames.push(`${type}${id}:${payload.toString("latin1")}`),
    (reason) => corrupt.push(reason)
  )
  for (const chunk of chunks) parse(chunk)
  return { frames, corrupt }
}

/** A frame's header with any type and length, and its payload. */
const raw = (type: number, id: number, length: number, payload = "") => {
  const header = Buffer.alloc(9)
  header[0] = type
  header.writeUInt32BE(id, 1)
  header.writeUInt32BE(length, 5)
  return Buffer.concat([header, Buffer.from(payload, "latin1")])
}

describe("executor frames", () => {
  it("frames split anywhere are read whole, in order", () => {
    const stream = Buffer.concat([
      Frames.encode("R", 0, "4242"),
      Frames.encode("S", 1, "77"),
      Frames.encode("O", 1, "hello\n"),
      Frames.encode("A", 1),
      Frames.encode("E", 1, Buffer.alloc(1000, "e")),
      Frames.encode("O", 1, Buffer.alloc(Frames.maxOutputPayload, "o")),
      Frames.encode("X", 1, "255")
    ])
    for (const size of [1, 7, 9, 1000, stream.length]) {
      const chunks = Array.from(
        { length: Math.ceil(stream.length / size) },
        (_, i) => stream.subarray(i * size, (i + 1) * size)
      )
      const { corrupt, frames } = read(chunks)
      assert.deepStrictEqual(corrupt, [])
      assert.deepStrictEqual(frames.map((f) => f.slice(0, 12)), [
        "R0:4242",
        "S1:77",
        "O1:hello\n",
        "A1:",
        "E1:eeeeeeeee",
        "O1:ooooooooo",
        "X1:255"
      ])
    }
  })

  it("a huge length is refused from its header alone: nothing waits for (or keeps) its payload", () => {
    const { corrupt, frames } = read([Frames.encode("O", 1, "ok"), raw(0x4f, 1, 0xffffffff).subarray(0, 9)])
    assert.deepStrictEqual(frames, ["O1:ok"])
    assert.deepStrictEqual(corrupt, ["a frame of type 'O' of 4294967295 bytes (at most 65536)"])
  })

  it("the first bad frame ends the stream, with one reason naming what was wrong", () => {
    const cases: ReadonlyArray<readonly [Buffer, string]> = [
      [raw(0x5a, 1, 0), "a frame of unknown type 'Z'"],
      [raw(0x00, 1, 0), "a frame of unknown type 0x00"],
      [raw(0x41, 1, 1, "x"), "a frame of type 'A' of 1 bytes (at most 0)"],
      [raw(0x46, 1, 5000, "x".repeat(5000)), "a frame of type 'F' of 5000 bytes (at most 4096)"],
      [raw(0x53, 1, 3, "abc"), "a frame of type 'S' whose payload is not a number in range"],
      [raw(0x53, 1, 1, "0"), "a frame of type 'S' whose payload is not a number in range"],
      [raw(0x58, 1, 3, "256"), "a frame of type 'X' whose payload is not a number in range"],
      [raw(0x58, 1, 2, "-1"), "a frame of type 'X' whose payload is not a number in range"],
      [raw(0x52, 0, 11, "12345678901"), "a frame of type 'R' of 11 bytes (at most 10)"]
    ]
    for (const [bad, reason] of cases) {
      const { corrupt, frames } = read([Buffer.concat([Frames.encode("O", 1, "a"), bad, Frames.encode("O", 1, "b")])])
      assert.deepStrictEqual(frames, ["O1:a"], reason)
      assert.deepStrictEqual(corrupt, [reason])
    }
  })
})
