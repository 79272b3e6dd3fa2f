/**
 * The Cloud DNS methods of the emulator, over plain HTTP as the API defines them: managed zones, atomic changes
 * (replace an A record: delete the old set, add the new one, TTL 300), record sets listed by name and type.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer, Schedule } from "effect"
import { Emulator, Faults, Hosts } from "../src/index.ts"

const project = "proj"

const Endpoint = Emulator.GceEmulator

const endpoint = Emulator.GceEmulator.layer({ port: 0 }).pipe(
  Layer.provide(Layer.mergeAll(Hosts.layerNone(), Faults.Faults.layer()))
)

/** `method url body` against the emulator's DNS API: status and JSON. */
const request = (method: string, path: string, body?: unknown) =>
  Effect.gen(function*() {
    const { url } = yield* Endpoint
    return yield* Effect.promise(async () => {
      const r = await fetch(`${url}/dns/v1/projects/${project}/${path}`, {
        method,
        ...(body === undefined ? {} : { body: JSON.stringify(body) })
      })
      return { status: r.status, body: (await r.json()) as Record<string, unknown> & { error?: { message: string } } }
    })
  })

const a = (name: string, address: string) => ({ name, type: "A", ttl: 300, rrdatas: [address] })

describe("gce-emulator: Cloud DNS", () => {
  layer(endpoint, { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.effect("managed zones: create (with SOA and NS sets), get, list by dnsName; refusals", () =>
      Effect.gen(function*() {
        const created = yield* request("POST", "managedZones", {
          name: "tezt-cloud",
          dnsName: "example.com.",
          description: ""
        })
        assert.strictEqual(created.status, 200)
        assert.strictEqual(created.body.kind, "dns#managedZone")
        assert.match(String(created.body.id), /^\d+$/)
        assert.lengthOf(created.body.nameServers as Array<string>, 4)
        assert.strictEqual(
          (yield* request("POST", "managedZones", { name: "tezt-cloud", dnsName: "other.com." })).status,
          409
        )
        assert.strictEqual(
          (yield* request("POST", "managedZones", { name: "nodot", dnsName: "example.org" })).status,
          400
        )
        const unknown = yield* request("POST", "managedZones", { name: "z2", dnsName: "example.org.", bogus: 1 })
        assert.strictEqual(unknown.status, 400)
        assert.include(unknown.body.error!.message, "bogus")
        const got = yield* request("GET", "managedZones/tezt-cloud")
        assert.strictEqual(got.body.dnsName, "example.com.")
        const listed = yield* request("GET", "managedZones?dnsName=example.com.")
        assert.deepStrictEqual((listed.body.managedZones as Array<{ name: string }>).map((z) => z.name), ["tezt-cloud"])
        assert.strictEqual((yield* request("GET", "managedZones/nope")).status, 404)
        const sets = yield* request("GET", "managedZones/tezt-cloud/rrsets")
        assert.deepStrictEqual(
          (sets.body.rrsets as Array<{ type: string }>).map((r) => r.type).toSorted(),
          ["NS", "SOA"]
        )
      }))

    it.effect("changes: an A record added, then replaced atomically; a stale deletion applies nothing", () =>
      Effect.gen(function*() {
        yield* request("POST", "managedZones", { name: "run", dnsName: "run.example.net." })
        const added = yield* request("POST", "managedZones/run/changes", {
          additions: [a("ns1.run.example.net.", "127.0.0.5")]
        })
        assert.strictEqual(added.status, 200)
        assert.strictEqual(added.body.kind, "dns#change")
        assert.strictEqual(added.body.status, "done")
        const change = yield* request("GET", `managedZones/run/changes/${String(added.body.id)}`)
        assert.strictEqual(change.body.status, "done")
        const replaced = yield* request("POST", "managedZones/run/changes", {
          deletions: [a("ns1.run.example.net.", "127.0.0.5")],
          additions: [a("ns1.run.example.net.", "127.0.0.6")]
        })
        assert.strictEqual(replaced.status, 200)
        const listed = yield* request("GET", "managedZones/run/rrsets?name=ns1.run.example.net.&type=A")
        assert.deepStrictEqual(listed.body.rrsets, [{
          kind: "dns#resourceRecordSet",
          ...a("ns1.run.example.net.", "127.0.0.6")
        }])
        const stale = yield* request("POST", "managedZones/run/changes", {
          deletions: [a("ns1.run.example.net.", "127.0.0.5")],
          additions: [a("ns1.run.example.net.", "127.0.0.7")]
        })
        assert.strictEqual(stale.status, 412)
        const again = yield* request("GET", "managedZones/run/rrsets?name=ns1.run.example.net.")
        assert.deepStrictEqual((again.body.rrsets as Array<{ rrdatas: Array<string> }>)[0]!.rrdatas, ["127.0.0.6"])
        const duplicate = yield* request("POST", "managedZones/run/changes", {
          additions: [a("ns1.run.example.net.", "127.0.0.8")]
        })
        assert.strictEqual(duplicate.status, 409)
        const outside = yield* request("POST", "managedZones/run/changes", {
          additions: [a("www.example.org.", "127.0.0.9")]
        })
        assert.strictEqual(outside.status, 400)
        const missing = yield* request("POST", "managedZones/run/changes", {
          deletions: [a("gone.run.example.net.", "127.0.0.9")]
        })
        assert.strictEqual(missing.status, 404)
      }))

    it.effect("with an Operations delay, a change reads pending, then done", () =>
      Effect.gen(function*() {
        const { url } = yield* Endpoint
        const put = (faults: unknown) =>
          Effect.promise(() => fetch(`${url}/emulator/v1/faults`, { method: "PUT", body: JSON.stringify(faults) }))
        yield* put({ operationDelayMillis: 1500 })
        yield* request("POST", "managedZones", { name: "slow", dnsName: "slow.example.net." })
        const change = yield* request("POST", "managedZones/slow/changes", {
          additions: [a("x.slow.example.net.", "127.0.0.5")]
        })
        assert.strictEqual(change.body.status, "pending")
        const done = yield* request("GET", `managedZones/slow/changes/${String(change.body.id)}`).pipe(
          Effect.repeat({ until: (r) => r.body.status === "done", schedule: Schedule.spaced("100 millis") }),
          Effect.timeout("30 seconds")
        )
        assert.strictEqual(done.body.status, "done")
      }).pipe(Effect.ensuring(Effect.gen(function*() {
        const { url } = yield* Endpoint
        yield* Effect.promise(() => fetch(`${url}/emulator/v1/faults`, { method: "PUT", body: "{}" }))
      }))))
  })
})
