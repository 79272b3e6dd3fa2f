/**
 * The GCE resources of an agent, and how they are named and labelled: one VM (instance) per agent, and one
 * firewall rule opening its ports to it alone. What belongs to a namespace is found by its label, exactly, never
 * by a name prefix: namespaces `a` and `ab` never see each other's resources.
 *
 * **Details**
 *
 * - Labels: `tezt-cloud=<ns>` on every instance (and address), `tezt-cloud-agent=<agent>`, and
 *   `tezt-cloud-spec=<hash>` of what the VM is made of (machine, disk, image, sshd port, key): a later run of the
 *   namespace reuses a kept VM only when it is the same. Label values allow lowercase letters, digits, `_` and `-`
 *   only, so names are written with an injective encoding (`_` → `__`, `.` → `_-`, an uppercase letter → `_` and
 *   the letter): `a.b`, `a-b` and `A-b` get three different labels. Firewall rules have no labels: theirs is the
 *   same text in their `description`, compared whole.
 * - Names: `<ns>-<agent>` in GCE's alphabet, then six hex digits of a hash of the exact pair (GCE names are
 *   global to the project: `a` + `b-c` and `a-b` + `c` must not meet).
 * - The VM: the `--os` image (`cos-stable` or `debian-12`, or `$TEZT_CLOUD_GCP_IMAGE`), `--machine-type`,
 *   `--disk-type`, `--disk-size-gb`, an ephemeral external address (no reserved address to forget and pay for),
 *   the namespace's public key in `ssh-keys`, and a startup script that installs the monitoring daemons the run
 *   starts on agents (`prometheus-process-exporter`, `netdata`; Debian only) and runs an sshd for root with that
 *   key on `--vm-base-port` (where the agents are reached). With a time to live, `scheduling.maxRunDuration` and
 *   `instanceTerminationAction: DELETE`: GCE deletes a forgotten VM itself.
 * - The firewall rule: tcp to the VM's sshd port, the agent's port range, and netdata's 19999 with
 *   `--monitoring`, from anywhere, for the VM's own network tag only.
 */
import * as crypto from "node:crypto"
import type { Firewall, Instance } from "./GceClient.ts"

export const namespaceLabel = "tezt-cloud"
export const agentLabel = "tezt-cloud-agent"
export const specLabel = "tezt-cloud-spec"

const hash = (text: string, length: number) => crypto.createHash("sha256").update(text).digest("hex").slice(0, length)

/** A name as a label value: injective up to 63 characters, then a prefix and a hash of the whole. */
export const labelValue = (name: string): string => {
  const encoded = [...name].map((c) =>
    c === "_" ? "__" : c === "." ? "_-" : /[A-Z]/.test(c) ? `_${c.toLowerCase()}` : c
  ).join("")
  return encoded.length <= 63 ? encoded : `${encoded.slice(0, 50)}-${hash(name, 12)}`
}

/** The filter of everything labelled with namespace `namespace` (an exact match of the label). */
export const namespaceFilter = (namespace: string) => `labels.${namespaceLabel} = "${labelValue(namespace)}"`

/** Whether a labelled resource belongs to `namespace`. */
export const labelled = (labels: Readonly<Record<string, string>> | null | undefined, namespace: string) =>
  labels?.[namespaceLabel] === labelValue(namespace)

/** The `description` of a namespace's firewall rules (they have no labels). */
export const firewallDescription = (namespace: string) => `${namespaceLabel}=${namespace}`

/** Whether a firewall rule belongs to `namespace`. */
export const firewallOf = (rule: Firewall, namespace: string) => rule.description === firewallDescription(namespace)

const slug = (s: string) => s.toLowerCase().replaceAll(/[^a-z0-9-]+/g, "-")

/** The VM (and firewall rule) of agent `agent` of namespace `namespace`. */
export const instanceName = (namespace: string, agent: string): string => {
  const base = `${/^[a-z]/.test(slug(namespace)) ? "" : "tc-"}${slug(namespace)}-${slug(agent)}`
  return `${base.slice(0, 55).replace(/-+$/, "")}-${hash(`${namespace}\0${agent}`, 6)}`
}

/** Boot images by `--os`. */
export const images: Readonly<Record<string, string>> = {
  cos: "projects/cos-cloud/global/images/family/cos-stable",
  debian: "projects/debian-cloud/global/images/family/debian-12"
}

/** Tezt cloud's disk defaults. */
export const defaultDiskType = "pd-ssd"
export const defaultDiskSizeGb = 200

/** netdata's port, opened with `--monitoring`. */
export const netdataPort = 19999

/** What one agent's VM is made of. */
export interface Spec {
  readonly namespace: string
  readonly agent: string
  readonly zone: string
  readonly machineType: string
  readonly image: string
  readonly diskType: string
  readonly diskSizeGb: number
  /** Seconds before GCE deletes it; none: it lives until deleted. */
  readonly maxRunDuration: number | undefined
  /** The port of the sshd the agents are reached at. */
  readonly sshPort: number
  /** The namespace's public key (`ssh-ed25519 AAAA… comment`). */
  readonly publicKey: string
  /** The agent's port range. */
  readonly ports: { readonly start: number; readonly end: number }
  readonly monitoring: boolean
  /** Debian packages the VM installs at boot, before its sshd answers (the monitoring daemons the run starts). */
  readonly packages: ReadonlyArray<string>
}

/** The hash of what a VM is made of (its time to live apart: changing it does not make a new VM). */
export const specHash = (spec: Spec) =>
  hash(
    JSON.stringify([
      spec.machineType,
      spec.image,
      spec.diskType,
      spec.diskSizeGb,
      spec.sshPort,
      spec.publicKey,
      spec.packages
    ]),
    16
  )

/** The firewall rule's ports as iptables' `multiport` writes them (`a,b:c`). */
const hostPorts = (spec: Spec) => firewallPorts(spec).map((p) => p.replace("-", ":")).join(",")

/** Where the startup script keeps the authorized key of the agents' sshd. */
const keysFile = "/var/lib/tezt-cloud/authorized_keys"

/**
 * The startup script of a VM (every boot): the monitoring packages where apt exists (Debian; COS has none), then
 * an sshd for root with the namespace's key on the agents' port, so that an agent that answers has them.
 */
export const startupScript = (spec: Spec) =>
  [
    "#!/bin/sh",
    "# tezt-cloud: what its agents need, then the sshd they are reached at",
    ...(spec.packages.length === 0 ? [] : [
      `if command -v apt-get >/dev/null; then`,
      `  export DEBIAN_FRONTEND=noninteractive`,
      `  dpkg -s ${spec.packages.join(" ")} >/dev/null 2>&1 || ` +
      `{ apt-get update -q && apt-get install -y -q --no-install-recommends ${spec.packages.join(" ")}; }`,
      `fi`
    ]),
    // COS drops incoming connections but ssh's in its own host firewall: the rule's ports are let in there too.
    `if command -v iptables >/dev/null; then`,
    `  iptables -w -C INPUT -p tcp -m multiport --dports ${hostPorts(spec)} -j ACCEPT 2>/dev/null || ` +
    `iptables -w -I INPUT -p tcp -m multiport --dports ${hostPorts(spec)} -j ACCEPT`,
    `fi`,
    `mkdir -p /var/lib/tezt-cloud /run/sshd`,
    `printf '%s\\n' '${spec.publicKey.replaceAll("'", "")}' > ${keysFile}`,
    `chmod 600 ${keysFile}`,
    `/usr/sbin/sshd -p ${spec.sshPort} -o AuthorizedKeysFile=${keysFile} -o PermitRootLogin=prohibit-password ` +
    `-o PidFile=/run/tezt-cloud-sshd.pid`
  ].join("\n") + "\n"

/** The instance resource of an agent. */
export const instance = (spec: Spec): Instance => {
  const name = instanceName(spec.namespace, spec.agent)
  return {
    name,
    description: `tezt-cloud agent ${spec.agent} of namespace ${spec.namespace}`,
    machineType: `zones/${spec.zone}/machineTypes/${spec.machineType}`,
    labels: {
      [namespaceLabel]: labelValue(spec.namespace),
      [agentLabel]: labelValue(spec.agent),
      [specLabel]: specHash(spec)
    },
    tags: { items: [name] },
    disks: [{
      boot: true,
      autoDelete: true,
      initializeParams: {
        sourceImage: spec.image,
        diskType: `zones/${spec.zone}/diskTypes/${spec.diskType}`,
        diskSizeGb: String(spec.diskSizeGb)
      }
    }],
    networkInterfaces: [{
      network: "global/networks/default",
      accessConfigs: [{ name: "External NAT", type: "ONE_TO_ONE_NAT", networkTier: "PREMIUM" }]
    }],
    metadata: {
      items: [
        { key: "ssh-keys", value: `root:${spec.publicKey}` },
        { key: "startup-script", value: startupScript(spec) }
      ]
    },
    ...(spec.maxRunDuration === undefined ? {} : {
      scheduling: {
        maxRunDuration: { seconds: String(spec.maxRunDuration) },
        instanceTerminationAction: "DELETE"
      }
    })
  }
}

/** The tcp ports an agent's firewall rule opens. */
export const firewallPorts = (spec: Spec): Array<string> => [
  ...new Set([
    String(spec.sshPort),
    `${spec.ports.start}-${spec.ports.end}`,
    ...(spec.monitoring ? [String(netdataPort)] : [])
  ])
]

/** The firewall rule of an agent: its ports, to its VM only. */
export const firewall = (spec: Spec): Firewall => {
  const name = instanceName(spec.namespace, spec.agent)
  return {
    name,
    description: firewallDescription(spec.namespace),
    network: "global/networks/default",
    direction: "INGRESS",
    sourceRanges: ["0.0.0.0/0"],
    targetTags: [name],
    allowed: [{ IPProtocol: "tcp", ports: firewallPorts(spec) }]
  }
}

/** Whether an existing rule opens the same ports as `rule` would. */
export const sameRule = (existing: Firewall, rule: Firewall) =>
  JSON.stringify(existing.allowed?.map((a) => [a.IPProtocol, a.ports ?? []])) ===
    JSON.stringify(rule.allowed?.map((a) => [a.IPProtocol, a.ports ?? []])) &&
  JSON.stringify(existing.targetTags ?? []) === JSON.stringify(rule.targetTags ?? [])

/** The address agents of a VM are reached at: its external address, else its internal one. */
export const addressOf = (vm: Instance): string | undefined => {
  const nic = vm.networkInterfaces?.[0]
  return nic?.accessConfigs?.[0]?.natIP ?? nic?.networkIP ?? undefined
}
