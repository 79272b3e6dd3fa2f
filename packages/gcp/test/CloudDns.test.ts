/**
 * Cloud DNS A records on the GCE emulator's Cloud DNS (in process, no hosts): a domain's record is replaced in one
 * atomic change (the old set deleted and the new one added together), domains are normalized, the most specific
 * zone holds them, and a domain outside every zone is skipped with Tezt cloud's warning. A `--proxy` run's proxy
 * gets `<ns>.<the tezt-cloud zone's domain>` (unless `--no-dns`; no such zone: a warning) and its `--dns-domain`s.
 */
import { assert, describe, it as plain, layer } from "@effect/vitest"
import { Emulator, Faults, Hosts } from "@tezt-cloud/gce-emulator"
import { CloudDns } from "@tezt-cloud/gcp"
import { Effect, Layer } from "effect"

const project = "p"

const emulator = Emulator.GceEmulator.layer({ port: 0 }).pipe(
  Layer.provide(Layer.mergeAll(Hosts.layerNone(), Faults.Faults.layer()))
)

const dns = Effect.map(
  Emulator.GceEmulator,
  ({ url }) =>
    CloudDns.make({ endpoint: url, project, zone: "europe-west1-b", region: "europe-west1", image: undefined })
)

/** A call of the emulator's DNS API, as a user of gcloud would make it. */
const api = (method: string, path: string, body?: unknown) =>
  Effect.gen(function*() {
    const { url } = yield* Emulator.GceEmulator
    return yield* Effect.promise(async () => {
      const r = await fetch(`${url}/dns/v1/projects/${project}/${path}`, {
        method,
        ...(body === undefined ? {} : { body: JSON.stringify(body) })
      })
      assert.strictEqual(r.status, 200, await r.clone().text())
      return (await r.json()) as Record<string, unknown>
    })
  })

/**
 * The managed zone `name` for `dnsName`, made unless an earlier test made it: the tests share one emulator, in any
 * order (`--sequence.shuffle`).
 */
const ensureZone = (name: string, dnsName: string) =>
  Effect.gen(function*() {
    const { url } = yield* Emulator.GceEmulator
    const status = yield* Effect.promise(() =>
      fetch(`${url}/dns/v1/projects/${project}/managedZones/${name}`).then((r) => r.status)
    )
    if (status !== 200) yield* api("POST", "managedZones", { name, dnsName, description: "" })
  })

const aRecords = (zone: string, name: string) =>
  Effect.gen(function*() {
    const d = yield* dns
    return (yield* d.records(zone, name)).filter((r) => r.type === "A")
  })

describe("CloudDns on the emulator", () => {
  layer(emulator, { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.effect("a domain's A record is replaced in one change; the most specific zone holds it", () =>
      Effect.gen(function*() {
        yield* ensureZone("tezt-cloud", "example.com.")
        yield* ensureZone("dev", "dev.example.com.")
        const d = yield* dns

        const first = yield* d.point(" Node1.Example.COM ", "10.0.0.1")
        assert.deepStrictEqual(first, { _tag: "Set", zone: "tezt-cloud", replaced: [] })
        assert.deepStrictEqual(
          (yield* aRecords("tezt-cloud", "node1.example.com.")).map((r) => [r.name, r.type, r.ttl, r.rrdatas]),
          [["node1.example.com.", "A", 300, ["10.0.0.1"]]]
        )

        const second = yield* d.point("node1.example.com.", "10.0.0.2")
        assert.deepStrictEqual(second, { _tag: "Set", zone: "tezt-cloud", replaced: ["10.0.0.1"] })
        assert.deepStrictEqual((yield* aRecords("tezt-cloud", "node1.example.com.")).map((r) => r.rrdatas), [[
          "10.0.0.2"
        ]])
        const changes = (yield* api("GET", "managedZones/tezt-cloud/changes")).changes as Array<{
          additions?: Array<{ rrdatas: Array<string> }>
          deletions?: Array<{ rrdatas: Array<string> }>
        }>
        const last = changes.at(-1)!
        assert.deepStrictEqual(last.deletions?.map((r) => r.rrdatas), [["10.0.0.1"]], "the old set goes…")
        assert.deepStrictEqual(last.additions?.map((r) => r.rrdatas), [["10.0.0.2"]], "…in the same change")

        assert.deepStrictEqual(yield* d.point("node1.example.com", "10.0.0.2"), {
          _tag: "Unchanged",
          zone: "tezt-cloud"
        })
        assert.strictEqual((yield* d.point("a.dev.example.com", "10.0.0.3"))._tag, "Set")
        assert.lengthOf(yield* aRecords("dev", "a.dev.example.com."), 1, "the more specific zone")
        assert.lengthOf(yield* aRecords("tezt-cloud", "a.dev.example.com."), 0)

        assert.isTrue(yield* d.remove("node1.example.com"))
        assert.deepStrictEqual(yield* aRecords("tezt-cloud", "node1.example.com."), [])
        assert.isFalse(yield* d.remove("node1.example.com"))
      }))

    it.effect("a domain outside every managed zone is skipped with a warning (a suffix must be whole labels)", () =>
      Effect.gen(function*() {
        yield* ensureZone("b-com", "b.com.")
        const d = yield* dns
        const outside = yield* d.point("www.other.org", "10.0.0.9")
        assert.deepStrictEqual(outside, {
          _tag: "Skipped",
          warning: "The domain 'www.other.org.' is not a subdomain of an authorized GCP zone. Skipping."
        })
        assert.strictEqual((yield* d.point("ab.com", "10.0.0.9"))._tag, "Skipped")
        assert.strictEqual((yield* d.point("a.b.com", "10.0.0.9"))._tag, "Set")
      }))

    it.effect("a proxy: <ns>.<the tezt-cloud zone's domain> and its --dns-domains; --no-dns: these only", () =>
      Effect.gen(function*() {
        yield* ensureZone("tezt-cloud", "example.com.")
        yield* ensureZone("b-com", "b.com.")
        const { url } = yield* Emulator.GceEmulator
        const target = { endpoint: url, project, zone: "europe-west1-b", region: "europe-west1", image: undefined }
        const options = { namespace: "Px", noDns: false, domains: ["www.b.com"] }
        const lines = yield* CloudDns.registerProxy(target, options, "10.1.0.1")
        assert.deepStrictEqual(lines, [
          { line: "dns: px.example.com. → 10.1.0.1 (zone tezt-cloud)", warning: false },
          { line: "dns: www.b.com. → 10.1.0.1 (zone b-com)", warning: false }
        ])
        const quiet = yield* CloudDns.registerProxy(target, { ...options, noDns: true }, "10.1.0.2")
        assert.deepStrictEqual(quiet.map((l) => l.line), ["dns: www.b.com. → 10.1.0.2 (zone b-com, was 10.1.0.1)"])
        assert.deepStrictEqual((yield* aRecords("tezt-cloud", "px.example.com.")).map((r) => r.rrdatas), [[
          "10.1.0.1"
        ]])
        // A project without the zone: the proxy gets no name of its own, which is a warning.
        const none = yield* CloudDns.registerProxy({ ...target, project: "q" }, { ...options, domains: [] }, "10.1.0.3")
        assert.lengthOf(none, 1)
        assert.isTrue(none[0]!.warning)
        assert.include(none[0]!.line, "project q has no managed zone tezt-cloud")
      }))
  })
})

describe("CloudDns.normalize", () => {
  plain("trims, lowercases and ends with a dot", () => {
    assert.strictEqual(CloudDns.normalize(" A.Example.org "), "a.example.org.")
    assert.strictEqual(CloudDns.normalize("a.example.org."), "a.example.org.")
  })
})
