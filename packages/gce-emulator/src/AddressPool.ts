/**
 * The loopback addresses instances and reserved addresses get, `127.0.0.2`–`127.0.0.254` unless told otherwise
 * (`--addresses FIRST-LAST`). An address is handed out once until released; one another process already listens
 * on (at the hosts' port) is skipped. Addresses go round: the next one handed out is the first free one after the
 * last one handed out, so that a released address comes back only after every other free one. A deleted
 * instance's address is then not at once another new instance's, whose listeners whoever looks at the old
 * address (a test counting what a deleted VM left) would take for the old one's.
 */
import { Effect } from "effect"

export interface Range {
  readonly first: string
  readonly last: string
}

export const defaultRange: Range = { first: "127.0.0.2", last: "127.0.0.254" }

const toInt = (ip: string) => ip.split(".").reduce((n, part) => n * 256 + Number(part), 0)
const toIp = (n: number) => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join(".")

/** Parses `FIRST-LAST` (two loopback IPv4 addresses); an `Error` says what is wrong. */
export const parseRange = (text: string): Range => {
  const m = /^(\d+\.\d+\.\d+\.\d+)-(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  const ok = (ip: string) => ip.split(".").every((p) => Number(p) <= 255) && ip.startsWith("127.")
  if (m === null || !ok(m[1]!) || !ok(m[2]!) || toInt(m[1]!) > toInt(m[2]!)) {
    throw new Error(`'${text}' is not FIRST-LAST of loopback addresses, e.g. 127.0.0.2-127.0.0.254`)
  }
  return { first: m[1]!, last: m[2]! }
}

export interface AddressPool {
  readonly range: Range
  /** `preferred` if it is ours and free, else the next free address (round the range); `undefined` when none is left. */
  allocate(preferred?: string): Effect.Effect<string | undefined>
  release(address: string): Effect.Effect<void>
  contains(address: string): boolean
  inUse(address: string): boolean
}

/** A pool over `range`; `free` tells whether an address is usable outside the emulator. */
export const make = (range: Range, free: (address: string) => Effect.Effect<boolean>): AddressPool => {
  const used = new Set<string>()
  const first = toInt(range.first)
  const last = toInt(range.last)
  const size = last - first + 1
  /** Where the next search starts: after the last address handed out. */
  const cursor = { next: 0 }
  const contains = (address: string) => {
    const n = toInt(address)
    return /^\d+\.\d+\.\d+\.\d+$/.test(address) && n >= first && n <= last
  }
  return {
    range,
    contains,
    inUse: (address) => used.has(address),
    allocate: Effect.fn("AddressPool.allocate")(function*(preferred?: string) {
      if (preferred !== undefined) {
        if (!contains(preferred) || used.has(preferred)) return undefined
        used.add(preferred)
        return preferred
      }
      for (let i = 0; i < size; i++) {
        const offset = (cursor.next + i) % size
        const address = toIp(first + offset)
        if (used.has(address)) continue
        // Reserved before the probe: concurrent allocations never get the same address.
        used.add(address)
        cursor.next = (offset + 1) % size
        if (yield* free(address)) return address
      }
      return undefined
    }),
    release: (address) => Effect.sync(() => void used.delete(address))
  }
}
