/**
 * Names and labels of the GCP backend's resources: exact per namespace (never a prefix, never a collision between
 * namespaces GCE's alphabet would merge), within GCE's limits; the VM and firewall rule an agent gets.
 */
import { assert, describe, it } from "@effect/vitest"
import { GceResources } from "@tezt-cloud/gcp"

const spec = (over: Partial<GceResources.Spec> = {}): GceResources.Spec => ({
  namespace: "x",
  agent: "agent-000",
  zone: "europe-west1-b",
  machineType: "n1-standard-2",
  image: GceResources.images.cos!,
  diskType: "pd-ssd",
  diskSizeGb: 200,
  maxRunDuration: 7200,
  sshPort: 30000,
  publicKey: "ssh-ed25519 AAAAC3Nza tezt-cloud x",
  ports: { start: 30050, end: 30099 },
  monitoring: false,
  packages: [],
  ...over
})

describe("GceResources", () => {
  it("label values are injective over namespaces (a.b, a-b, a_b, A-b, a__b), in GCE's label alphabet", () => {
    const names = ["a.b", "a-b", "a_b", "A-b", "a__b", "a_-b", "x", "xy", "X"]
    const values = names.map(GceResources.labelValue)
    assert.strictEqual(new Set(values).size, names.length, values.join(" "))
    for (const v of values) assert.match(v, /^[a-z0-9_-]{1,63}$/)
    const long = GceResources.labelValue("N".repeat(63))
    assert.isAtMost(long.length, 63)
    assert.notStrictEqual(long, GceResources.labelValue(`${"N".repeat(62)}M`))
  })

  it("the namespace filter compares the label whole, and labelled() agrees", () => {
    assert.strictEqual(GceResources.namespaceFilter("a.B"), `labels.tezt-cloud = "a_-_b"`)
    assert.isTrue(GceResources.labelled({ "tezt-cloud": "x" }, "x"))
    assert.isFalse(GceResources.labelled({ "tezt-cloud": "xy" }, "x"))
    assert.isFalse(GceResources.labelled({ "tezt-cloud": "x" }, "xy"))
    assert.isFalse(GceResources.labelled(undefined, "x"))
  })

  it("instance names are GCE names, distinct where namespace and agent split differently", () => {
    const pairs = [["a", "b-c"], ["a-b", "c"], ["A", "b-c"], ["9lives", "x"], ["n".repeat(63), "agent-999"]] as const
    const names = pairs.map(([ns, agent]) => GceResources.instanceName(ns, agent))
    assert.strictEqual(new Set(names).size, names.length, names.join(" "))
    for (const n of names) assert.match(n, /^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$/)
    assert.match(GceResources.instanceName("x", "agent-000"), /^x-agent-000-[0-9a-f]{6}$/)
  })

  it("a VM: labels, image, disk, machine, key, TTL with DELETE; none without a TTL", () => {
    const vm = GceResources.instance(spec())
    assert.deepStrictEqual(vm.labels?.["tezt-cloud"], "x")
    assert.deepStrictEqual(vm.labels?.["tezt-cloud-agent"], "agent-000")
    assert.strictEqual(vm.machineType, "zones/europe-west1-b/machineTypes/n1-standard-2")
    assert.strictEqual(vm.disks?.[0]?.initializeParams?.sourceImage, GceResources.images.cos)
    assert.strictEqual(vm.disks?.[0]?.initializeParams?.diskSizeGb, "200")
    assert.deepStrictEqual(vm.scheduling, {
      maxRunDuration: { seconds: "7200" },
      instanceTerminationAction: "DELETE"
    })
    const keys = vm.metadata?.items?.find((i) => i.key === "ssh-keys")
    assert.strictEqual(keys?.value, "root:ssh-ed25519 AAAAC3Nza tezt-cloud x")
    const script = vm.metadata?.items?.find((i) => i.key === "startup-script")?.value ?? ""
    assert.include(script, "/usr/sbin/sshd -p 30000")
    assert.include(script, "--dports 30000,30050:30099 -j ACCEPT", "COS's own firewall lets the rule's ports in")
    assert.notInclude(script, "apt-get", "nothing to install without monitoring")
    assert.isUndefined(GceResources.instance(spec({ maxRunDuration: undefined })).scheduling)
    assert.include(
      GceResources.startupScript(spec({ packages: ["prometheus-process-exporter"] })),
      "apt-get install -y -q --no-install-recommends prometheus-process-exporter"
    )
  })

  it("the spec hash ignores the TTL (a kept VM is reused) but not the machine", () => {
    assert.strictEqual(GceResources.specHash(spec()), GceResources.specHash(spec({ maxRunDuration: 60 })))
    assert.notStrictEqual(GceResources.specHash(spec()), GceResources.specHash(spec({ machineType: "e2-small" })))
  })

  it("a firewall rule opens sshd, the agent's range and netdata with --monitoring, to its VM only", () => {
    const rule = GceResources.firewall(spec())
    assert.deepStrictEqual(rule.allowed, [{ IPProtocol: "tcp", ports: ["30000", "30050-30099"] }])
    assert.deepStrictEqual(rule.targetTags, [GceResources.instanceName("x", "agent-000")])
    assert.isTrue(GceResources.firewallOf(rule, "x"))
    assert.isFalse(GceResources.firewallOf(rule, "xy"))
    assert.deepStrictEqual(GceResources.firewall(spec({ monitoring: true })).allowed?.[0]?.ports, [
      "30000",
      "30050-30099",
      "19999"
    ])
  })
})
